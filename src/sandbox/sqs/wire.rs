//! The AWS JSON 1.0 protocol as aws-sdk-sqs speaks it: request and response shapes,
//! AWS-shaped errors, and the conversions between queue attributes (string maps) and
//! [`QueueSettings`]. Pure: no IO here.

use std::collections::{BTreeMap, HashMap};

use http::StatusCode;
use serde::{Deserialize, Serialize};

use super::digest::{base64_decode, base64_encode, message_attributes_md5};
use super::model::{
    AttributeValue, Delivery, MAX_RECEIVE_BATCH, MAX_VISIBILITY_TIMEOUT, MAX_WAIT_SECONDS,
    MessageAttribute, NewMessage, QueueError, QueueSettings, QueueStats, RedrivePolicy,
};

/// Every AWS error this endpoint can return.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorKind {
    /// The queue named by a request does not exist.
    QueueDoesNotExist,
    /// CreateQueue with an existing name and different attributes.
    QueueNameExists,
    /// A receipt handle that is malformed or from another queue.
    ReceiptHandleIsInvalid,
    /// ChangeMessageVisibility on a message that is not in flight.
    MessageNotInflight,
    /// A batch call without entries.
    EmptyBatchRequest,
    /// A batch call with two entries of the same id.
    BatchEntryIdsNotDistinct,
    /// A batch entry id with bad characters or length.
    InvalidBatchEntryId,
    /// A batch call with more than 10 entries.
    TooManyEntriesInBatchRequest,
    /// A batch whose messages together exceed the queue's size limit.
    BatchRequestTooLong,
    /// An unknown queue attribute name.
    InvalidAttributeName,
    /// A queue attribute value out of range or malformed.
    InvalidAttributeValue,
    /// A request parameter out of range or malformed.
    InvalidParameterValue,
    /// A required request parameter is absent.
    MissingParameter,
    /// A message body with characters SQS refuses.
    InvalidMessageContents,
    /// A limit was hit (here: a full sandbox queue with overflow `Reject`).
    OverLimit,
    /// A feature this endpoint does not implement (e.g. FIFO queues).
    UnsupportedOperation,
    /// An `X-Amz-Target` naming no action we know.
    UnknownOperation,
    /// A body that is not the JSON the action expects.
    Serialization,
    /// A `Deny` statement of the queue policy matches the caller and action.
    AccessDenied,
}

impl ErrorKind {
    /// `__type` shape id, `x-amzn-query-error` code (which the SDK prefers), HTTP status.
    pub fn shape(self) -> (&'static str, Option<&'static str>, StatusCode) {
        use ErrorKind::*;
        let bad = StatusCode::BAD_REQUEST;
        match self {
            QueueDoesNotExist => (
                "com.amazonaws.sqs#QueueDoesNotExist",
                Some("AWS.SimpleQueueService.NonExistentQueue"),
                bad,
            ),
            QueueNameExists => (
                "com.amazonaws.sqs#QueueNameExists",
                Some("QueueAlreadyExists"),
                bad,
            ),
            ReceiptHandleIsInvalid => (
                "com.amazonaws.sqs#ReceiptHandleIsInvalid",
                Some("ReceiptHandleIsInvalid"),
                bad,
            ),
            MessageNotInflight => (
                "com.amazonaws.sqs#MessageNotInflight",
                Some("AWS.SimpleQueueService.MessageNotInflight"),
                bad,
            ),
            EmptyBatchRequest => (
                "com.amazonaws.sqs#EmptyBatchRequest",
                Some("AWS.SimpleQueueService.EmptyBatchRequest"),
                bad,
            ),
            BatchEntryIdsNotDistinct => (
                "com.amazonaws.sqs#BatchEntryIdsNotDistinct",
                Some("AWS.SimpleQueueService.BatchEntryIdsNotDistinct"),
                bad,
            ),
            InvalidBatchEntryId => (
                "com.amazonaws.sqs#InvalidBatchEntryId",
                Some("AWS.SimpleQueueService.InvalidBatchEntryId"),
                bad,
            ),
            TooManyEntriesInBatchRequest => (
                "com.amazonaws.sqs#TooManyEntriesInBatchRequest",
                Some("AWS.SimpleQueueService.TooManyEntriesInBatchRequest"),
                bad,
            ),
            BatchRequestTooLong => (
                "com.amazonaws.sqs#BatchRequestTooLong",
                Some("AWS.SimpleQueueService.BatchRequestTooLong"),
                bad,
            ),
            InvalidAttributeName => (
                "com.amazonaws.sqs#InvalidAttributeName",
                Some("InvalidAttributeName"),
                bad,
            ),
            InvalidAttributeValue => (
                "com.amazonaws.sqs#InvalidAttributeValue",
                Some("InvalidAttributeValue"),
                bad,
            ),
            InvalidParameterValue => (
                "com.amazonaws.sqs#InvalidParameterValue",
                Some("InvalidParameterValue"),
                bad,
            ),
            MissingParameter => (
                "com.amazonaws.sqs#MissingParameter",
                Some("MissingParameter"),
                bad,
            ),
            InvalidMessageContents => (
                "com.amazonaws.sqs#InvalidMessageContents",
                Some("InvalidMessageContents"),
                bad,
            ),
            AccessDenied => (
                "com.amazonaws.sqs#AccessDenied",
                Some("AccessDenied"),
                StatusCode::FORBIDDEN,
            ),
            OverLimit => (
                "com.amazonaws.sqs#OverLimit",
                Some("OverLimit"),
                StatusCode::FORBIDDEN,
            ),
            UnsupportedOperation => (
                "com.amazonaws.sqs#UnsupportedOperation",
                Some("AWS.SimpleQueueService.UnsupportedOperation"),
                bad,
            ),
            UnknownOperation => (
                "com.amazon.coral.service#UnknownOperationException",
                None,
                bad,
            ),
            Serialization => ("com.amazon.coral.service#SerializationException", None, bad),
        }
    }

    /// The short code batch results carry in `Failed[].Code`.
    pub fn batch_code(self) -> &'static str {
        let (_, query, _) = self.shape();
        let code = query.unwrap_or("InternalError");
        code.strip_prefix("AWS.SimpleQueueService.").unwrap_or(code)
    }
}

/// An error as the endpoint reports it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{kind:?}: {message}")]
pub struct ApiError {
    /// Which AWS error.
    pub kind: ErrorKind,
    /// Human-readable explanation.
    pub message: String,
}

impl ApiError {
    /// An error of `kind` with `message`.
    pub fn new(kind: ErrorKind, message: impl Into<String>) -> Self {
        Self {
            kind,
            message: message.into(),
        }
    }

    fn invalid(message: impl Into<String>) -> Self {
        Self::new(ErrorKind::InvalidParameterValue, message)
    }

    /// The JSON body: `{"__type": ..., "message": ...}`.
    pub fn body(&self) -> Vec<u8> {
        let (type_name, _, _) = self.kind.shape();
        let body = serde_json::json!({ "__type": type_name, "message": self.message });
        body.to_string().into_bytes()
    }

    /// The `x-amzn-query-error` header value, `Code;Sender`.
    pub fn query_error_header(&self) -> Option<String> {
        let (_, code, _) = self.kind.shape();
        code.map(|code| format!("{code};Sender"))
    }

    /// The HTTP status.
    pub fn status(&self) -> StatusCode {
        self.kind.shape().2
    }

    /// The entry of a batch result reporting this error for entry `id`.
    pub fn batch_entry(&self, id: &str) -> BatchResultErrorEntry {
        BatchResultErrorEntry {
            id: id.to_owned(),
            sender_fault: true,
            code: self.kind.batch_code().to_owned(),
            message: self.message.clone(),
        }
    }
}

impl From<QueueError> for ApiError {
    fn from(error: QueueError) -> Self {
        let message = error.to_string();
        let kind = match error {
            QueueError::NoSuchQueue(_) => ErrorKind::QueueDoesNotExist,
            QueueError::QueueNameExists(_) => ErrorKind::QueueNameExists,
            QueueError::InvalidReceiptHandle(_) => ErrorKind::ReceiptHandleIsInvalid,
            QueueError::MessageNotInFlight => ErrorKind::MessageNotInflight,
            QueueError::MessageUnavailable(_) | QueueError::InvalidParameterValue(_) => {
                ErrorKind::InvalidParameterValue
            }
            QueueError::QueueFull { .. } => ErrorKind::OverLimit,
            QueueError::InvalidAttributeValue { .. } => ErrorKind::InvalidAttributeValue,
            QueueError::MissingParameter(_) => ErrorKind::MissingParameter,
            QueueError::InvalidMessageContents(_) => ErrorKind::InvalidMessageContents,
        };
        Self { kind, message }
    }
}

/// Unwraps a required request field or reports it missing.
pub fn required<T>(value: Option<T>, name: &str) -> Result<T, ApiError> {
    value.ok_or_else(|| {
        ApiError::new(
            ErrorKind::MissingParameter,
            format!("The request must contain the parameter {name}."),
        )
    })
}

/// Parses a request body (empty means `{}`).
pub fn parse<T: for<'de> Deserialize<'de>>(body: &[u8]) -> Result<T, ApiError> {
    let body = if body.is_empty() { b"{}" } else { body };
    serde_json::from_slice(body)
        .map_err(|error| ApiError::new(ErrorKind::Serialization, error.to_string()))
}

/// The queue name in a queue URL: its last path segment (any host, any account).
pub fn queue_name_from_url(url: &str) -> Result<&str, ApiError> {
    let name = url
        .trim_end_matches('/')
        .rsplit('/')
        .next()
        .unwrap_or_default();
    if name.is_empty() {
        return Err(ApiError::invalid(format!(
            "Value {url} for parameter QueueUrl is invalid."
        )));
    }
    Ok(name)
}

/// Checks an integer request parameter is within `low..=high`.
pub fn in_range(name: &str, value: i64, low: u32, high: u32) -> Result<u32, ApiError> {
    u32::try_from(value)
        .ok()
        .filter(|value| (low..=high).contains(value))
        .ok_or_else(|| {
            ApiError::invalid(format!(
                "Value {value} for parameter {name} is invalid. Reason: Must be between {low} and {high}, if provided."
            ))
        })
}

// ---------------------------------------------------------------------------------------------
// Requests

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

/// Region and account, to turn queue names into ARNs and back.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ArnContext {
    /// e.g. `us-east-1`.
    pub region: String,
    /// e.g. `000000000000`.
    pub account_id: String,
}

impl ArnContext {
    /// `arn:aws:sqs:<region>:<account>:<name>`.
    pub fn arn(&self, name: &str) -> String {
        format!("arn:aws:sqs:{}:{}:{name}", self.region, self.account_id)
    }
}

/// Converts a message from the wire into the model's form.
pub fn new_message(request: SendMessageRequest) -> Result<NewMessage, ApiError> {
    if request.message_group_id.is_some() {
        return Err(ApiError::invalid(
            "The request include parameter MessageGroupId which is not valid for this queue type (only standard queues are supported).",
        ));
    }
    let delay_seconds = request
        .delay_seconds
        .map(|n| in_range("DelaySeconds", n, 0, super::model::MAX_DELAY_SECONDS))
        .transpose()?;
    let attributes = request
        .message_attributes
        .into_iter()
        .map(|(name, value)| {
            let attribute = message_attribute(&name, value)?;
            Ok((name, attribute))
        })
        .collect::<Result<_, ApiError>>()?;
    let trace_header = request
        .message_system_attributes
        .get("AWSTraceHeader")
        .and_then(|value| value.string_value.clone());
    Ok(NewMessage {
        body: request.message_body.unwrap_or_default(),
        attributes,
        delay_seconds,
        trace_header,
    })
}

fn message_attribute(name: &str, wire: WireAttribute) -> Result<MessageAttribute, ApiError> {
    let value = match (wire.string_value, wire.binary_value) {
        (Some(text), None) => AttributeValue::String(text),
        (None, Some(encoded)) => {
            AttributeValue::Binary(base64_decode(&encoded).ok_or_else(|| {
                ApiError::invalid(format!(
                    "The message attribute '{name}' has an invalid binary value."
                ))
            })?)
        }
        _ => {
            return Err(ApiError::invalid(format!(
                "The message attribute '{name}' must contain exactly one of StringValue or BinaryValue."
            )));
        }
    };
    if wire.data_type.is_empty() {
        return Err(ApiError::invalid(format!(
            "The message attribute '{name}' must contain a non-empty attribute type."
        )));
    }
    Ok(MessageAttribute {
        data_type: wire.data_type,
        value,
    })
}

fn wire_attribute(attribute: &MessageAttribute) -> WireAttribute {
    let (string_value, binary_value) = match &attribute.value {
        AttributeValue::String(text) => (Some(text.clone()), None),
        AttributeValue::Binary(bytes) => (None, Some(base64_encode(bytes))),
    };
    WireAttribute {
        data_type: attribute.data_type.clone(),
        string_value,
        binary_value,
        ..WireAttribute::default()
    }
}

/// What a receiver asked to see of each message.
#[derive(Debug, Clone, Default)]
pub struct Projection {
    /// System attribute names (`All` or individual names).
    pub system: Vec<String>,
    /// Message attribute names (`All`, `.*`, `prefix.*` or exact names).
    pub user: Vec<String>,
}

impl Projection {
    /// From a ReceiveMessage request (both the old and the new attribute-name fields).
    pub fn of(request: &ReceiveMessageRequest) -> Self {
        let mut system = request.attribute_names.clone();
        system.extend(request.message_system_attribute_names.iter().cloned());
        Self {
            system,
            user: request.message_attribute_names.clone(),
        }
    }

    fn wants_system(&self, name: &str) -> bool {
        self.system.iter().any(|n| n == "All" || n == name)
    }

    fn wants_user(&self, name: &str) -> bool {
        self.user.iter().any(|pattern| match pattern.as_str() {
            "All" | ".*" => true,
            _ => match pattern.strip_suffix(".*") {
                Some(prefix) => name.starts_with(prefix) && name[prefix.len()..].starts_with('.'),
                None => pattern == name,
            },
        })
    }

    /// A delivery as the receiver sees it.
    pub fn render(&self, delivery: Delivery, account_id: &str) -> WireMessage {
        let message = delivery.message;
        let mut system = BTreeMap::new();
        let mut put = |name: &str, value: Option<String>| {
            if let Some(value) = value.filter(|_| self.wants_system(name)) {
                system.insert(name.to_owned(), value);
            }
        };
        put("SenderId", Some(account_id.to_owned()));
        put("SentTimestamp", Some(message.sent_at.to_string()));
        put(
            "ApproximateReceiveCount",
            Some(message.receive_count.to_string()),
        );
        put(
            "ApproximateFirstReceiveTimestamp",
            message.first_received_at.map(|at| at.to_string()),
        );
        put("AWSTraceHeader", message.trace_header.clone());
        let selected: BTreeMap<String, MessageAttribute> = message
            .attributes
            .into_iter()
            .filter(|(name, _)| self.wants_user(name))
            .collect();
        WireMessage {
            message_id: message.id,
            receipt_handle: delivery.receipt_handle,
            md5_of_body: message.md5_of_body,
            body: message.body,
            attributes: system,
            md5_of_message_attributes: message_attributes_md5(&selected),
            message_attributes: selected
                .iter()
                .map(|(name, attribute)| (name.clone(), wire_attribute(attribute)))
                .collect(),
        }
    }
}

/// Queue attribute names AWS defines that we accept in GetQueueAttributes but never set.
const UNTRACKED_ATTRIBUTES: [&str; 8] = [
    "KmsMasterKeyId",
    "KmsDataKeyReusePeriodSeconds",
    "SqsManagedSseEnabled",
    "FifoQueue",
    "ContentBasedDeduplication",
    "DeduplicationScope",
    "FifoThroughputLimit",
    "RedriveAllowPolicy",
];

/// Queue attributes we report.
const REPORTED_ATTRIBUTES: [&str; 13] = [
    "ApproximateNumberOfMessages",
    "ApproximateNumberOfMessagesNotVisible",
    "ApproximateNumberOfMessagesDelayed",
    "CreatedTimestamp",
    "LastModifiedTimestamp",
    "DelaySeconds",
    "MaximumMessageSize",
    "MessageRetentionPeriod",
    "QueueArn",
    "ReceiveMessageWaitTimeSeconds",
    "VisibilityTimeout",
    "RedrivePolicy",
    "Policy",
];

/// Everything GetQueueAttributes needs to know about one queue.
#[derive(Debug, Clone)]
pub struct QueueView<'a> {
    /// Queue name.
    pub name: &'a str,
    /// Current settings.
    pub settings: &'a QueueSettings,
    /// Counts as of now.
    pub stats: &'a QueueStats,
    /// Creation time, ms.
    pub created_at: u64,
    /// Last settings change, ms.
    pub last_modified_at: u64,
}

/// Renders the requested queue attributes (`All` for every one we track).
pub fn render_attributes(
    names: &[String],
    view: &QueueView<'_>,
    arns: &ArnContext,
) -> Result<BTreeMap<String, String>, ApiError> {
    let mut wanted: Vec<&str> = Vec::new();
    for name in names {
        if name == "All" {
            wanted.extend(REPORTED_ATTRIBUTES);
        } else if REPORTED_ATTRIBUTES.contains(&name.as_str()) {
            wanted.push(name);
        } else if !UNTRACKED_ATTRIBUTES.contains(&name.as_str()) {
            return Err(ApiError::new(
                ErrorKind::InvalidAttributeName,
                format!("Unknown Attribute {name}."),
            ));
        }
    }
    Ok(wanted
        .into_iter()
        .filter_map(|name| Some((name.to_owned(), attribute_value(name, view, arns)?)))
        .collect())
}

fn attribute_value(name: &str, view: &QueueView<'_>, arns: &ArnContext) -> Option<String> {
    let settings = view.settings;
    let value = match name {
        "ApproximateNumberOfMessages" => view.stats.visible.to_string(),
        "ApproximateNumberOfMessagesNotVisible" => view.stats.in_flight.to_string(),
        "ApproximateNumberOfMessagesDelayed" => view.stats.delayed.to_string(),
        "CreatedTimestamp" => (view.created_at / 1_000).to_string(),
        "LastModifiedTimestamp" => (view.last_modified_at / 1_000).to_string(),
        "DelaySeconds" => settings.delay_seconds.to_string(),
        "MaximumMessageSize" => settings.maximum_message_size.to_string(),
        "MessageRetentionPeriod" => settings.message_retention_period.to_string(),
        "QueueArn" => arns.arn(view.name),
        "ReceiveMessageWaitTimeSeconds" => settings.receive_wait_time_seconds.to_string(),
        "VisibilityTimeout" => settings.visibility_timeout.to_string(),
        "RedrivePolicy" => {
            let policy = settings.redrive_policy.as_ref()?;
            serde_json::json!({
                "deadLetterTargetArn": arns.arn(&policy.dead_letter_queue),
                "maxReceiveCount": policy.max_receive_count,
            })
            .to_string()
        }
        "Policy" => settings.policy.clone()?,
        _ => return None,
    };
    Some(value)
}

/// Applies CreateQueue/SetQueueAttributes attributes on top of `base`.
pub fn apply_attributes(
    base: &QueueSettings,
    attributes: &HashMap<String, String>,
) -> Result<QueueSettings, ApiError> {
    let mut settings = base.clone();
    for (name, value) in attributes {
        match name.as_str() {
            "DelaySeconds" => settings.delay_seconds = number(name, value)?,
            "VisibilityTimeout" => settings.visibility_timeout = number(name, value)?,
            "MessageRetentionPeriod" => settings.message_retention_period = number(name, value)?,
            "MaximumMessageSize" => settings.maximum_message_size = number(name, value)?,
            "ReceiveMessageWaitTimeSeconds" => {
                settings.receive_wait_time_seconds = number(name, value)?;
            }
            "RedrivePolicy" => settings.redrive_policy = redrive_policy(value)?,
            "Policy" => settings.policy = policy_document(value)?,
            "FifoQueue" if value == "false" => {}
            "FifoQueue" => {
                return Err(ApiError::new(
                    ErrorKind::UnsupportedOperation,
                    "FIFO queues are not supported by this endpoint.",
                ));
            }
            _ => {
                return Err(ApiError::new(
                    ErrorKind::InvalidAttributeName,
                    format!("Unknown Attribute {name}."),
                ));
            }
        }
    }
    settings.validate()?;
    Ok(settings)
}

fn number(name: &str, value: &str) -> Result<u32, ApiError> {
    value.trim().parse().map_err(|_| {
        ApiError::new(
            ErrorKind::InvalidAttributeValue,
            format!("Invalid value for the parameter {name}."),
        )
    })
}

/// Parses `{"deadLetterTargetArn": "...", "maxReceiveCount": n}` (count as number or string);
/// an empty string removes the policy.
fn redrive_policy(value: &str) -> Result<Option<RedrivePolicy>, ApiError> {
    if value.trim().is_empty() {
        return Ok(None);
    }
    let invalid = |reason: &str| {
        ApiError::new(
            ErrorKind::InvalidAttributeValue,
            format!("Invalid value for the parameter RedrivePolicy. Reason: {reason}."),
        )
    };
    let json: serde_json::Value = serde_json::from_str(value)
        .map_err(|_| invalid("Redrive policy is not a valid JSON map"))?;
    let arn = json
        .get("deadLetterTargetArn")
        .and_then(serde_json::Value::as_str)
        .ok_or_else(|| {
            invalid("Redrive policy does not contain mandatory attribute: deadLetterTargetArn")
        })?;
    let count = match json.get("maxReceiveCount") {
        Some(serde_json::Value::Number(n)) => n.as_u64(),
        Some(serde_json::Value::String(s)) => s.parse().ok(),
        _ => None,
    }
    .and_then(|n| u32::try_from(n).ok())
    .ok_or_else(|| invalid("Redrive policy does not contain a valid maxReceiveCount"))?;
    let name = arn.rsplit(':').next().unwrap_or_default();
    Ok(Some(RedrivePolicy {
        dead_letter_queue: name.to_owned(),
        max_receive_count: count,
    }))
}

/// An access policy: stored verbatim (its Deny statements enforced) if it is a JSON object; an empty
/// string removes it.
fn policy_document(value: &str) -> Result<Option<String>, ApiError> {
    if value.trim().is_empty() {
        return Ok(None);
    }
    match serde_json::from_str::<serde_json::Value>(value) {
        Ok(serde_json::Value::Object(_)) => Ok(Some(value.to_owned())),
        _ => Err(ApiError::new(
            ErrorKind::InvalidAttributeValue,
            "Invalid value for the parameter Policy. Reason: the policy is not a JSON object.",
        )),
    }
}

/// Checks batch-level rules: 1..=10 entries with distinct, well-formed ids.
pub fn check_batch<'a>(
    ids: impl ExactSizeIterator<Item = Option<&'a str>>,
) -> Result<(), ApiError> {
    let count = ids.len();
    if count == 0 {
        return Err(ApiError::new(
            ErrorKind::EmptyBatchRequest,
            "There should be at least one entry in the request.",
        ));
    }
    if count > MAX_RECEIVE_BATCH {
        return Err(ApiError::new(
            ErrorKind::TooManyEntriesInBatchRequest,
            format!("Maximum number of entries per request are 10. You have sent {count}."),
        ));
    }
    let mut seen = std::collections::HashSet::new();
    for id in ids {
        let id = id.unwrap_or_default();
        let well_formed = !id.is_empty()
            && id.len() <= 80
            && id
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_');
        if !well_formed {
            return Err(ApiError::new(
                ErrorKind::InvalidBatchEntryId,
                "A batch entry id can only contain alphanumeric characters, hyphens and underscores. It can be at most 80 letters long.",
            ));
        }
        if !seen.insert(id) {
            return Err(ApiError::new(
                ErrorKind::BatchEntryIdsNotDistinct,
                format!("Id {id} repeated."),
            ));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn errors_carry_the_codes_the_sdk_maps() {
        let error = ApiError::from(QueueError::NoSuchQueue("q".into()));
        assert_eq!(error.status(), StatusCode::BAD_REQUEST);
        assert_eq!(
            error.query_error_header().as_deref(),
            Some("AWS.SimpleQueueService.NonExistentQueue;Sender")
        );
        let body: serde_json::Value = serde_json::from_slice(&error.body()).unwrap();
        assert_eq!(body["__type"], "com.amazonaws.sqs#QueueDoesNotExist");
        assert_eq!(
            ErrorKind::EmptyBatchRequest.batch_code(),
            "EmptyBatchRequest"
        );
    }

    #[test]
    fn queue_urls_resolve_by_last_segment_from_any_host() {
        for url in [
            "http://127.0.0.1:4566/000000000000/jobs",
            "https://sqs.us-east-1.amazonaws.com/123456789012/jobs/",
            "jobs",
        ] {
            assert_eq!(queue_name_from_url(url), Ok("jobs"));
        }
        assert!(queue_name_from_url("").is_err());
    }

    #[test]
    fn attributes_parse_validate_and_render_back() {
        let attributes = HashMap::from([
            ("VisibilityTimeout".to_owned(), "7".to_owned()),
            (
                "RedrivePolicy".to_owned(),
                r#"{"deadLetterTargetArn":"arn:aws:sqs:us-east-1:000000000000:dlq","maxReceiveCount":"3"}"#
                    .to_owned(),
            ),
        ]);
        let settings = apply_attributes(&QueueSettings::default(), &attributes).unwrap();
        assert_eq!(settings.visibility_timeout, 7);
        let policy = settings.redrive_policy.clone().unwrap();
        assert_eq!(
            (policy.dead_letter_queue.as_str(), policy.max_receive_count),
            ("dlq", 3)
        );
        let stats = QueueStats {
            visible: 1,
            in_flight: 2,
            delayed: 3,
            oldest_age: None,
            counters: Default::default(),
        };
        let view = QueueView {
            name: "q",
            settings: &settings,
            stats: &stats,
            created_at: 5_000,
            last_modified_at: 6_000,
        };
        let arns = ArnContext {
            region: "us-east-1".into(),
            account_id: "000000000000".into(),
        };
        let all = render_attributes(&["All".to_owned()], &view, &arns).unwrap();
        assert_eq!(all["ApproximateNumberOfMessagesNotVisible"], "2");
        assert_eq!(all["CreatedTimestamp"], "5");
        assert_eq!(all["QueueArn"], "arn:aws:sqs:us-east-1:000000000000:q");
        let redrive: serde_json::Value = serde_json::from_str(&all["RedrivePolicy"]).unwrap();
        assert_eq!(redrive["maxReceiveCount"], 3);
        let bad = HashMap::from([("VisibilityTimeout".to_owned(), "99999".to_owned())]);
        assert_eq!(
            apply_attributes(&QueueSettings::default(), &bad)
                .unwrap_err()
                .kind,
            ErrorKind::InvalidAttributeValue
        );
        let unknown = HashMap::from([("Colour".to_owned(), "blue".to_owned())]);
        assert_eq!(
            apply_attributes(&QueueSettings::default(), &unknown)
                .unwrap_err()
                .kind,
            ErrorKind::InvalidAttributeName
        );
        assert!(render_attributes(&["Colour".to_owned()], &view, &arns).is_err());
    }

    #[test]
    fn batches_need_one_to_ten_distinct_well_formed_ids() {
        let kind = |ids: &[&str]| {
            check_batch(ids.iter().map(|id| Some(*id)))
                .err()
                .map(|error| error.kind)
        };
        assert_eq!(kind(&[]), Some(ErrorKind::EmptyBatchRequest));
        assert_eq!(
            kind(&["a"; 11]),
            Some(ErrorKind::TooManyEntriesInBatchRequest)
        );
        assert_eq!(kind(&["a", "a"]), Some(ErrorKind::BatchEntryIdsNotDistinct));
        assert_eq!(kind(&["a b"]), Some(ErrorKind::InvalidBatchEntryId));
        assert_eq!(kind(&["a", "b-1", "c_2"]), None);
    }

    #[test]
    fn projection_selects_attributes_by_name_prefix_and_all() {
        let projection = Projection {
            system: vec![],
            user: vec!["trace.*".into(), "exact".into()],
        };
        assert!(projection.wants_user("trace.id"));
        assert!(!projection.wants_user("tracer"));
        assert!(projection.wants_user("exact"));
        assert!(!projection.wants_user("other"));
        let all = Projection {
            system: vec!["All".into()],
            user: vec!["All".into()],
        };
        assert!(all.wants_user("anything") && all.wants_system("SentTimestamp"));
    }
}
