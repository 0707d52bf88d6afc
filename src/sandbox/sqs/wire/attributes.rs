//! Conversions: wire messages and message attributes to the model's, and queue attributes
//! (string maps) to and from [`QueueSettings`].

use super::*;

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
        .map(|n| {
            in_range(
                "DelaySeconds",
                n,
                0,
                crate::sandbox::sqs::model::MAX_DELAY_SECONDS,
            )
        })
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

    pub(super) fn wants_system(&self, name: &str) -> bool {
        self.system.iter().any(|n| n == "All" || n == name)
    }

    pub(super) fn wants_user(&self, name: &str) -> bool {
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
