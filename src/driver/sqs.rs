//! `transport = "sqs"`: a batch of events is one `SendMessageBatch` into the stream's queue
//! (the schedule and the accounting: [`super::batch`]). Each message carries its id as
//! message attribute `shakedown-id` (and in the body through `{id}`).

use aws_sdk_sqs::types::{MessageAttributeValue, SendMessageBatchRequestEntry};

use super::batch::{Outcome, classify, entry_failure};

/// The message attribute carrying each message's id.
pub const ID_ATTRIBUTE: &str = "shakedown-id";

/// One stream's queue, and a client without retries.
#[derive(Debug, Clone)]
pub struct SqsQueue {
    client: aws_sdk_sqs::Client,
    url: String,
}

impl SqsQueue {
    /// `queue` (a name, through GetQueueUrl, or a URL as is) with a copy of `client` whose
    /// retries are off.
    pub async fn resolve(client: &aws_sdk_sqs::Client, queue: &str) -> Result<Self, String> {
        let client = aws_sdk_sqs::Client::from_conf(
            client
                .config()
                .to_builder()
                .retry_config(aws_sdk_sqs::config::retry::RetryConfig::disabled())
                .build(),
        );
        let url = crate::aws::QueueRef::Plain(queue.to_owned())
            .url(&client)
            .await
            .map_err(|e| e.to_string())?;
        Ok(SqsQueue { client, url })
    }

    /// One SendMessageBatch of `(id, body)` entries.
    pub(super) async fn send(&self, entries: Vec<(String, String)>) -> Outcome {
        let n = entries.len();
        let entries = entries.into_iter().enumerate().map(|(i, (id, body))| {
            SendMessageBatchRequestEntry::builder()
                .id(i.to_string())
                .message_body(body)
                .message_attributes(
                    ID_ATTRIBUTE,
                    MessageAttributeValue::builder()
                        .data_type("String")
                        .string_value(id)
                        .build()
                        .expect("data type is set"),
                )
                .build()
                .expect("id and body are set")
        });
        let out = self
            .client
            .send_message_batch()
            .queue_url(&self.url)
            .set_entries(Some(entries.collect()))
            .send()
            .await
            .map_err(|e| classify(&e))?;
        let mut results = vec![None; n];
        for f in out.failed() {
            if let Some(slot) = f
                .id()
                .parse::<usize>()
                .ok()
                .and_then(|i| results.get_mut(i))
            {
                *slot = Some(entry_failure(f.code()));
            }
        }
        Ok(results)
    }
}
