//! Validation of queue names, tags, messages and message attributes, as SQS does it.

use super::*;

pub(super) fn check_visibility(timeout: u32) -> Result<(), QueueError> {
    if timeout > MAX_VISIBILITY_TIMEOUT {
        return Err(QueueError::InvalidParameterValue(format!(
            "Value {timeout} for parameter VisibilityTimeout is invalid. Reason: Must be between 0 and {MAX_VISIBILITY_TIMEOUT}."
        )));
    }
    Ok(())
}

/// Checks a queue name: 1..=80 of `[A-Za-z0-9_-]` (FIFO `.fifo` names are not supported).
pub fn validate_queue_name(name: &str) -> Result<(), QueueError> {
    let valid_chars = name
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_');
    if !name.is_empty() && name.len() <= 80 && valid_chars {
        return Ok(());
    }
    Err(QueueError::InvalidParameterValue(format!(
        "Value {name} for parameter QueueName is invalid. Reason: Can only include alphanumeric characters, hyphens, or underscores. 1 to 80 in length (FIFO queues are not supported by this endpoint)."
    )))
}

/// `current` with `added` merged in, if every tag is valid and the count stays within
/// [`MAX_TAGS`].
pub fn with_tags(
    current: &BTreeMap<String, String>,
    added: &BTreeMap<String, String>,
    queue: &str,
) -> Result<BTreeMap<String, String>, QueueError> {
    let (key_max, value_max) = TAG_LIMITS;
    for (key, value) in added {
        let key_len = key.chars().count();
        if key_len == 0 || key_len > key_max {
            return Err(QueueError::InvalidParameterValue(format!(
                "Tag keys must be between 1 and {key_max} characters long: {key:?}."
            )));
        }
        if value.chars().count() > value_max {
            return Err(QueueError::InvalidParameterValue(format!(
                "Tag values may be at most {value_max} characters long (key {key:?})."
            )));
        }
    }
    let mut merged = current.clone();
    merged.extend(added.iter().map(|(k, v)| (k.clone(), v.clone())));
    if merged.len() > MAX_TAGS {
        return Err(QueueError::InvalidParameterValue(format!(
            "Too many tags added for queue {queue}: a queue carries at most {MAX_TAGS}."
        )));
    }
    Ok(merged)
}

/// Checks a message against SQS limits and the queue's size limit.
pub fn validate_message(message: &NewMessage, settings: &QueueSettings) -> Result<(), QueueError> {
    if let Some(delay) = message.delay_seconds
        && delay > MAX_DELAY_SECONDS
    {
        return Err(QueueError::InvalidParameterValue(format!(
            "Value {delay} for parameter DelaySeconds is invalid. Reason: DelaySeconds must be >= 0 and <= {MAX_DELAY_SECONDS}."
        )));
    }
    if message.body.is_empty() {
        return Err(QueueError::MissingParameter("MessageBody"));
    }
    if let Some(bad) = message.body.chars().find(|&c| !allowed_body_char(c)) {
        return Err(QueueError::InvalidMessageContents(format!(
            "Invalid binary character '#x{:X}' was found in the message body, the set of allowed characters is #x9 | #xA | #xD | #x20 to #xD7FF | #xE000 to #xFFFD | #x10000 to #x10FFFF",
            u32::from(bad)
        )));
    }
    validate_attributes(&message.attributes)?;
    let size = message.body.len()
        + message
            .attributes
            .iter()
            .map(|(name, attribute)| attribute.size(name))
            .sum::<usize>();
    if size > settings.maximum_message_size as usize {
        return Err(QueueError::InvalidParameterValue(format!(
            "One or more parameters are invalid. Reason: Message must be shorter than {} bytes.",
            settings.maximum_message_size
        )));
    }
    Ok(())
}

pub(super) fn allowed_body_char(c: char) -> bool {
    matches!(c, '\u{9}' | '\u{A}' | '\u{D}' | '\u{20}'..='\u{D7FF}' | '\u{E000}'..='\u{FFFD}' | '\u{10000}'..)
}

pub(super) fn validate_attributes(
    attributes: &BTreeMap<String, MessageAttribute>,
) -> Result<(), QueueError> {
    if attributes.len() > MAX_MESSAGE_ATTRIBUTES {
        return Err(QueueError::InvalidParameterValue(format!(
            "Number of message attributes [{}] exceeds the allowed maximum [{MAX_MESSAGE_ATTRIBUTES}].",
            attributes.len()
        )));
    }
    for (name, attribute) in attributes {
        let name_ok = !name.is_empty()
            && name.len() <= 256
            && name
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.'));
        if !name_ok {
            return Err(QueueError::InvalidParameterValue(format!(
                "The message attribute name '{name}' is invalid. Attribute name can contain A-Z, a-z, 0-9, underscore (_), hyphen (-), and period (.) characters."
            )));
        }
        let family = attribute.data_type.split('.').next().unwrap_or_default();
        let matches_value = matches!(
            (family, &attribute.value),
            ("String" | "Number", AttributeValue::String(_))
                | ("Binary", AttributeValue::Binary(_))
        );
        if !matches_value {
            return Err(QueueError::InvalidParameterValue(format!(
                "The message attribute '{name}' has an invalid message attribute type '{}' for its value.",
                attribute.data_type
            )));
        }
    }
    Ok(())
}
