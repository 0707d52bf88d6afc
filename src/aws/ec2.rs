//! DescribeInstances helpers.

use std::collections::BTreeMap;

use aws_sdk_ec2::types::Filter;

use super::{AwsError, next_page};

/// One instance DescribeInstances returned.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Instance {
    /// The instance id.
    pub id: String,
    /// Its tags.
    pub tags: BTreeMap<String, String>,
}

/// Every instance matching `filters` (paginated, bounded), with its tags.
pub async fn describe_instances(
    ec2: &aws_sdk_ec2::Client,
    filters: Vec<Filter>,
) -> Result<Vec<Instance>, AwsError> {
    let mut out = Vec::new();
    let mut token: Option<String> = None;
    for _page in 0..100 {
        let resp = ec2
            .describe_instances()
            .set_filters(Some(filters.clone()))
            .set_next_token(token.take())
            .send()
            .await
            .map_err(|e| AwsError::call("ec2:DescribeInstances", e))?;
        for i in resp.reservations().iter().flat_map(|r| r.instances()) {
            let Some(id) = i.instance_id() else { continue };
            let tags = i
                .tags()
                .iter()
                .filter_map(|t| Some((t.key()?.to_owned(), t.value().unwrap_or("").to_owned())))
                .collect();
            out.push(Instance {
                id: id.to_owned(),
                tags,
            });
        }
        token = next_page(resp.next_token());
        if token.is_none() {
            break;
        }
    }
    Ok(out)
}

/// The state name (`running`, `stopped`, ...) of each instance id.
pub async fn instance_states(
    ec2: &aws_sdk_ec2::Client,
    ids: &[String],
) -> Result<BTreeMap<String, String>, AwsError> {
    let resp = ec2
        .describe_instances()
        .set_instance_ids(Some(ids.to_vec()))
        .send()
        .await
        .map_err(|e| AwsError::call("ec2:DescribeInstances", e).on(ids.join(", ")))?;
    Ok(resp
        .reservations()
        .iter()
        .flat_map(|r| r.instances())
        .filter_map(|i| {
            Some((
                i.instance_id()?.to_owned(),
                i.state()?.name()?.as_str().to_owned(),
            ))
        })
        .collect())
}
