//! SQS helpers: one queue attribute, queue tags, every queue of the account.

use std::collections::BTreeMap;

use super::{AwsError, next_page};

/// Reads one queue attribute (`None` when the queue does not report it).
pub async fn queue_attribute(
    sqs: &aws_sdk_sqs::Client,
    url: &str,
    name: &str,
) -> Result<Option<String>, AwsError> {
    let resp = sqs
        .get_queue_attributes()
        .queue_url(url)
        .attribute_names(aws_sdk_sqs::types::QueueAttributeName::from(name))
        .send()
        .await
        .map_err(|e| AwsError::call("sqs:GetQueueAttributes", e).on(url))?;
    Ok(resp
        .attributes()
        .and_then(|a| a.get(&aws_sdk_sqs::types::QueueAttributeName::from(name)))
        .cloned())
}

/// Sets one queue attribute.
pub async fn set_queue_attribute(
    sqs: &aws_sdk_sqs::Client,
    url: &str,
    name: &str,
    value: &str,
) -> Result<(), AwsError> {
    sqs.set_queue_attributes()
        .queue_url(url)
        .attributes(aws_sdk_sqs::types::QueueAttributeName::from(name), value)
        .send()
        .await
        .map_err(|e| AwsError::call("sqs:SetQueueAttributes", e).on(url))?;
    Ok(())
}

/// The tags of a queue (ListQueueTags).
pub async fn queue_tags(
    sqs: &aws_sdk_sqs::Client,
    url: &str,
) -> Result<BTreeMap<String, String>, AwsError> {
    let resp = sqs
        .list_queue_tags()
        .queue_url(url)
        .send()
        .await
        .map_err(|e| AwsError::call("sqs:ListQueueTags", e).on(url))?;
    Ok(resp
        .tags()
        .map(|t| t.iter().map(|(k, v)| (k.clone(), v.clone())).collect())
        .unwrap_or_default())
}

/// Sets one tag of a queue (TagQueue).
pub async fn tag_queue(
    sqs: &aws_sdk_sqs::Client,
    url: &str,
    key: &str,
    value: &str,
) -> Result<(), AwsError> {
    sqs.tag_queue()
        .queue_url(url)
        .tags(key, value)
        .send()
        .await
        .map_err(|e| AwsError::call("sqs:TagQueue", e).on(url))?;
    Ok(())
}

/// Removes one tag of a queue (UntagQueue; a missing tag is not an error).
pub async fn untag_queue(sqs: &aws_sdk_sqs::Client, url: &str, key: &str) -> Result<(), AwsError> {
    sqs.untag_queue()
        .queue_url(url)
        .tag_keys(key)
        .send()
        .await
        .map_err(|e| AwsError::call("sqs:UntagQueue", e).on(url))?;
    Ok(())
}

/// Every queue URL of the account and region (ListQueues, paginated, bounded).
pub async fn list_queues(sqs: &aws_sdk_sqs::Client) -> Result<Vec<String>, AwsError> {
    let mut urls = Vec::new();
    let mut token: Option<String> = None;
    for _page in 0..1000 {
        let resp = sqs
            .list_queues()
            .max_results(1000)
            .set_next_token(token.take())
            .send()
            .await
            .map_err(|e| AwsError::call("sqs:ListQueues", e))?;
        urls.extend(resp.queue_urls().iter().cloned());
        token = next_page(resp.next_token());
        if token.is_none() {
            break;
        }
    }
    Ok(urls)
}
