//! `kind = "sqs"`: queue attributes through GetQueueAttributes.

use std::time::Instant;

use aws_sdk_sqs::types::QueueAttributeName;

use super::ProbeError;
use super::spec::{SqsMetric, SqsProbe};
use crate::aws::{AwsError, QueueRef};

/// Samples one figure of a queue; queue names are resolved once, on first use.
#[derive(Debug)]
pub struct SqsSampler {
    client: aws_sdk_sqs::Client,
    spec: SqsProbe,
    queue_url: Option<String>,
    dlq_url: Option<String>,
    /// When the queue was last seen empty (for `oldest_age`).
    last_empty: Option<Instant>,
}

impl SqsSampler {
    /// A sampler for `spec`.
    pub fn new(client: aws_sdk_sqs::Client, spec: SqsProbe) -> Self {
        SqsSampler {
            client,
            spec,
            queue_url: None,
            dlq_url: None,
            last_empty: None,
        }
    }

    async fn resolve(
        client: &aws_sdk_sqs::Client,
        cache: &mut Option<String>,
        queue: &QueueRef,
    ) -> Result<String, AwsError> {
        if let Some(u) = cache {
            return Ok(u.clone());
        }
        let url = queue.url(client).await?;
        *cache = Some(url.clone());
        Ok(url)
    }

    /// Reads the configured figure.
    pub async fn sample(&mut self) -> Result<f64, ProbeError> {
        use QueueAttributeName as A;
        let (url, names) = match self.spec.metric {
            SqsMetric::DlqVisible => {
                let dlq =
                    self.spec.dlq.as_ref().ok_or_else(|| {
                        ProbeError::Config("metric `dlq_visible` needs `dlq`".into())
                    })?;
                let url = Self::resolve(&self.client, &mut self.dlq_url, dlq).await?;
                (url, vec![A::ApproximateNumberOfMessages])
            }
            metric => {
                let url =
                    Self::resolve(&self.client, &mut self.queue_url, &self.spec.queue).await?;
                let names = match metric {
                    SqsMetric::Visible => vec![A::ApproximateNumberOfMessages],
                    SqsMetric::InFlight => vec![A::ApproximateNumberOfMessagesNotVisible],
                    SqsMetric::Delayed => vec![A::ApproximateNumberOfMessagesDelayed],
                    _ => vec![
                        A::ApproximateNumberOfMessages,
                        A::ApproximateNumberOfMessagesNotVisible,
                        A::ApproximateNumberOfMessagesDelayed,
                    ],
                };
                (url, names)
            }
        };
        let asked_at = Instant::now();
        let resp = self
            .client
            .get_queue_attributes()
            .queue_url(&url)
            .set_attribute_names(Some(names.clone()))
            .send()
            .await
            .map_err(|e| AwsError::call("sqs:GetQueueAttributes", e).on(&url))?;
        let attributes = resp.attributes();
        let mut total = 0u64;
        for name in &names {
            let text = attributes.and_then(|a| a.get(name)).ok_or_else(|| {
                ProbeError::NotANumber(format!("the queue did not report {}", name.as_str()))
            })?;
            total += text
                .parse::<u64>()
                .map_err(|_| ProbeError::NotANumber(format!("{} = {text:?}", name.as_str())))?;
        }
        if self.spec.metric != SqsMetric::OldestAge {
            return Ok(total as f64);
        }
        if total == 0 {
            self.last_empty = Some(asked_at);
            return Ok(0.0);
        }
        let since = self.last_empty.ok_or_else(|| {
            ProbeError::NotANumber("oldest_age: the queue has not been seen empty yet".into())
        })?;
        Ok(asked_at.duration_since(since).as_secs_f64().round())
    }
}
