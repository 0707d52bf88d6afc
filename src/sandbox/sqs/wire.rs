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

mod attributes;
mod shapes;

pub use attributes::*;
pub use shapes::*;

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
