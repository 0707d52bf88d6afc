//! Request and response shapes of the JSON protocol, field for field.

use super::*;

/// `CreateQueue` input.
#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
pub struct CreateQueueRequest {
    pub queue_name: Option<String>,
    pub attributes: HashMap<String, String>,
    /// Spelled `tags` on the wire (the only lower-case member of the protocol).
    #[serde(rename = "tags")]
    pub tags: BTreeMap<String, String>,
}

/// `GetQueueUrl` input.
#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
pub struct GetQueueUrlRequest {
    pub queue_name: Option<String>,
}

/// `ListQueues` input.
#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
pub struct ListQueuesRequest {
    pub queue_name_prefix: Option<String>,
    pub next_token: Option<String>,
    pub max_results: Option<i64>,
}

/// Input of actions that only name a queue (`DeleteQueue`, `PurgeQueue`).
#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
pub struct QueueUrlRequest {
    pub queue_url: Option<String>,
}

/// A message attribute as the JSON protocol carries it.
#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(rename_all = "PascalCase", default)]
pub struct WireAttribute {
    pub data_type: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub string_value: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub binary_value: Option<String>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub string_list_values: Vec<String>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub binary_list_values: Vec<String>,
}

/// `SendMessage` input, also one `SendMessageBatch` entry (plus `Id`).
#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
pub struct SendMessageRequest {
    pub id: Option<String>,
    pub queue_url: Option<String>,
    pub message_body: Option<String>,
    pub delay_seconds: Option<i64>,
    pub message_attributes: HashMap<String, WireAttribute>,
    pub message_system_attributes: HashMap<String, WireAttribute>,
    pub message_group_id: Option<String>,
}

/// `SendMessageBatch` input.
#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
pub struct SendMessageBatchRequest {
    pub queue_url: Option<String>,
    pub entries: Vec<SendMessageRequest>,
}

/// `ReceiveMessage` input.
#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
pub struct ReceiveMessageRequest {
    pub queue_url: Option<String>,
    pub attribute_names: Vec<String>,
    pub message_system_attribute_names: Vec<String>,
    pub message_attribute_names: Vec<String>,
    pub max_number_of_messages: Option<i64>,
    pub visibility_timeout: Option<i64>,
    pub wait_time_seconds: Option<i64>,
}

/// Validated `ReceiveMessage` numbers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ReceiveLimits {
    /// 1..=10.
    pub max: usize,
    /// Per-receive visibility override.
    pub visibility: Option<u32>,
    /// Long-polling wait override.
    pub wait: Option<u32>,
}

impl ReceiveMessageRequest {
    /// Checks `MaxNumberOfMessages`, `VisibilityTimeout` and `WaitTimeSeconds`.
    pub fn limits(&self) -> Result<ReceiveLimits, ApiError> {
        let max = self
            .max_number_of_messages
            .map(|n| in_range("MaxNumberOfMessages", n, 1, MAX_RECEIVE_BATCH as u32))
            .transpose()?
            .unwrap_or(1);
        let visibility = self
            .visibility_timeout
            .map(|n| in_range("VisibilityTimeout", n, 0, MAX_VISIBILITY_TIMEOUT))
            .transpose()?;
        let wait = self
            .wait_time_seconds
            .map(|n| in_range("WaitTimeSeconds", n, 0, MAX_WAIT_SECONDS))
            .transpose()?;
        Ok(ReceiveLimits {
            max: max as usize,
            visibility,
            wait,
        })
    }
}

/// `DeleteMessage` input, also one `DeleteMessageBatch` entry (plus `Id`).
#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
pub struct DeleteMessageRequest {
    pub id: Option<String>,
    pub queue_url: Option<String>,
    pub receipt_handle: Option<String>,
}

/// `DeleteMessageBatch` input.
#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
pub struct DeleteMessageBatchRequest {
    pub queue_url: Option<String>,
    pub entries: Vec<DeleteMessageRequest>,
}

/// `ChangeMessageVisibility` input, also one batch entry (plus `Id`).
#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
pub struct ChangeVisibilityRequest {
    pub id: Option<String>,
    pub queue_url: Option<String>,
    pub receipt_handle: Option<String>,
    pub visibility_timeout: Option<i64>,
}

/// `ChangeMessageVisibilityBatch` input.
#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
pub struct ChangeVisibilityBatchRequest {
    pub queue_url: Option<String>,
    pub entries: Vec<ChangeVisibilityRequest>,
}

/// `GetQueueAttributes` input.
#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
pub struct GetQueueAttributesRequest {
    pub queue_url: Option<String>,
    pub attribute_names: Vec<String>,
}

/// `SetQueueAttributes` input.
#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
pub struct SetQueueAttributesRequest {
    pub queue_url: Option<String>,
    pub attributes: HashMap<String, String>,
}

/// `TagQueue` input.
#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
pub struct TagQueueRequest {
    pub queue_url: Option<String>,
    pub tags: BTreeMap<String, String>,
}

/// `UntagQueue` input.
#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
pub struct UntagQueueRequest {
    pub queue_url: Option<String>,
    pub tag_keys: Vec<String>,
}

// ---------------------------------------------------------------------------------------------
// Responses

/// `CreateQueue` and `GetQueueUrl` output.
#[derive(Debug, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct QueueUrlResponse {
    pub queue_url: String,
}

/// `ListQueues` output.
#[derive(Debug, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct ListQueuesResponse {
    pub queue_urls: Vec<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub next_token: Option<String>,
}

/// `SendMessage` output, also one `SendMessageBatch` success (plus `Id`).
#[derive(Debug, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct SendMessageResponse {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub id: Option<String>,
    pub message_id: String,
    #[serde(rename = "MD5OfMessageBody")]
    pub md5_of_message_body: String,
    #[serde(
        rename = "MD5OfMessageAttributes",
        skip_serializing_if = "Option::is_none"
    )]
    pub md5_of_message_attributes: Option<String>,
}

/// One failed entry of a batch call.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct BatchResultErrorEntry {
    pub id: String,
    pub sender_fault: bool,
    pub code: String,
    pub message: String,
}

/// A successful entry of a delete or change-visibility batch.
#[derive(Debug, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct BatchResultEntry {
    pub id: String,
}

/// Output of every batch call.
#[derive(Debug, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct BatchResponse<T> {
    pub successful: Vec<T>,
    pub failed: Vec<BatchResultErrorEntry>,
}

/// One received message.
#[derive(Debug, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct WireMessage {
    pub message_id: String,
    pub receipt_handle: String,
    #[serde(rename = "MD5OfBody")]
    pub md5_of_body: String,
    pub body: String,
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub attributes: BTreeMap<String, String>,
    #[serde(
        rename = "MD5OfMessageAttributes",
        skip_serializing_if = "Option::is_none"
    )]
    pub md5_of_message_attributes: Option<String>,
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub message_attributes: BTreeMap<String, WireAttribute>,
}

/// `ReceiveMessage` output.
#[derive(Debug, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct ReceiveMessageResponse {
    pub messages: Vec<WireMessage>,
}

/// `GetQueueAttributes` output.
#[derive(Debug, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct GetQueueAttributesResponse {
    pub attributes: BTreeMap<String, String>,
}

/// `ListQueueTags` output (`Tags` left out when the queue has none, as AWS does).
#[derive(Debug, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct ListQueueTagsResponse {
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub tags: BTreeMap<String, String>,
}

/// Output of actions that return nothing.
#[derive(Debug, Serialize)]
pub struct Empty {}

// ---------------------------------------------------------------------------------------------
// Conversions
