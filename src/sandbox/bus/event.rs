//! Events: parsing the two accepted shapes and rendering the envelope targets receive. Pure.

use chrono::{DateTime, SecondsFormat, Utc};
use serde_json::{Map, Value, json};

/// Why an event was refused. [`EventError::code`] gives the EventBridge error code.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum EventError {
    /// The body is not JSON.
    #[error("the body is not valid JSON: {0}")]
    NotJson(String),
    /// The event is JSON but not an object.
    #[error("an event must be a JSON object")]
    NotObject,
    /// A required field is absent.
    #[error("the event has no `{0}` field")]
    Missing(&'static str),
    /// A field has the wrong JSON type.
    #[error("`{field}` must be {expected}")]
    WrongType {
        /// The field.
        field: &'static str,
        /// What it should be.
        expected: &'static str,
    },
    /// `Detail` is a string that does not hold JSON.
    #[error("the detail is not valid JSON: {0}")]
    MalformedDetail(String),
}

impl EventError {
    /// The EventBridge `ErrorCode` for a failed `PutEvents` entry.
    pub fn code(&self) -> &'static str {
        match self {
            EventError::MalformedDetail(_) => "MalformedDetail",
            _ => "InvalidArgument",
        }
    }
}

/// An accepted event.
#[derive(Debug, Clone, PartialEq)]
pub struct Event {
    /// The event id: the `x-shakedown-id` header, else the event's `id` field, else generated.
    pub id: String,
    /// The producer, e.g. `shop.orders`.
    pub source: String,
    /// What happened, e.g. `OrderPlaced`.
    pub detail_type: String,
    /// The payload (any JSON value; producers usually send an object).
    pub detail: Value,
    /// When the event happened: the event's `time`/`Time` field, else when it was accepted.
    pub time: DateTime<Utc>,
    /// The event's `resources`/`Resources` (ARNs or names), possibly empty.
    pub resources: Vec<String>,
}

impl Event {
    /// Parses one event in either shape (see [`Event::from_value`]).
    pub fn parse(body: &[u8], id: Option<&str>, now: DateTime<Utc>) -> Result<Event, EventError> {
        let v: Value =
            serde_json::from_slice(body).map_err(|e| EventError::NotJson(e.to_string()))?;
        Event::from_value(&v, id, now)
    }

    /// Builds an event from a JSON object in either accepted shape:
    ///
    /// - a `PutEvents` entry: `{"Source", "DetailType", "Detail", "Time"?, "Resources"?}` where
    ///   `Detail` is a string holding JSON (as the API requires) or, leniently, a JSON value;
    /// - a plain event: `{"source", "detail-type" (or "detailType"), "detail"?, "id"?, "time"?,
    ///   "resources"?}`, what shakedown's event profiles POST.
    ///
    /// The shape is chosen by the presence of any capitalised entry key. `id` (e.g. the
    /// `x-shakedown-id` header) takes precedence over an `id` field (of a plain event; of
    /// the detail of an entry); without either an id is generated. A missing detail is `{}`; a missing or unparsable time is `now`.
    pub fn from_value(
        v: &Value,
        id: Option<&str>,
        now: DateTime<Utc>,
    ) -> Result<Event, EventError> {
        let obj = v.as_object().ok_or(EventError::NotObject)?;
        let entry = ["Source", "DetailType", "Detail"]
            .iter()
            .any(|k| obj.contains_key(*k));
        let (source, detail_type, detail, time, resources) = if entry {
            ("Source", "DetailType", "Detail", "Time", "Resources")
        } else {
            ("source", "detail-type", "detail", "time", "resources")
        };
        let source = string(obj, source)?;
        let detail_type = if !entry && !obj.contains_key(detail_type) {
            string(obj, "detailType").map_err(|e| match e {
                EventError::Missing(_) => EventError::Missing(detail_type),
                other => other,
            })?
        } else {
            string(obj, detail_type)?
        };
        let detail = match obj.get(detail) {
            None | Some(Value::Null) => Value::Object(Map::new()),
            Some(Value::String(s)) if entry => {
                serde_json::from_str(s).map_err(|e| EventError::MalformedDetail(e.to_string()))?
            }
            Some(other) => other.clone(),
        };
        let time = obj
            .get(time)
            .and_then(Value::as_str)
            .and_then(|t| DateTime::parse_from_rfc3339(t).ok())
            .map_or(now, |t| t.with_timezone(&Utc));
        let resources = match obj.get(resources) {
            None | Some(Value::Null) => Vec::new(),
            Some(Value::Array(items)) => items
                .iter()
                .map(|r| r.as_str().map(str::to_string))
                .collect::<Option<Vec<_>>>()
                .ok_or(EventError::WrongType {
                    field: "resources",
                    expected: "an array of strings",
                })?,
            Some(_) => {
                return Err(EventError::WrongType {
                    field: "resources",
                    expected: "an array of strings",
                });
            }
        };
        // A PutEvents entry has no id of its own: the producer's travels in its detail
        // (shakedown's `transport = "eventbridge"` puts it there).
        let carried = if entry {
            detail.get("id")
        } else {
            obj.get("id")
        };
        let id = match (id, carried) {
            (Some(id), _) if !id.is_empty() => id.to_string(),
            (_, Some(Value::String(s))) if !s.is_empty() => s.clone(),
            (_, Some(Value::Number(n))) => n.to_string(),
            _ => new_event_id(),
        };
        Ok(Event {
            id,
            source,
            detail_type,
            detail,
            time,
            resources,
        })
    }

    /// The event as targets receive it: EventBridge's envelope
    /// (`version`, `id`, `detail-type`, `source`, `account`, `time`, `region`, `resources`,
    /// `detail`), with the sandbox's account `000000000000` and region `us-east-1`.
    pub fn envelope(&self) -> Value {
        json!({
            "version": "0",
            "id": self.id,
            "detail-type": self.detail_type,
            "source": self.source,
            "account": "000000000000",
            "time": self.time.to_rfc3339_opts(SecondsFormat::Secs, true),
            "region": "us-east-1",
            "resources": self.resources,
            "detail": self.detail,
        })
    }
}

fn string(obj: &Map<String, Value>, field: &'static str) -> Result<String, EventError> {
    match obj.get(field) {
        None | Some(Value::Null) => Err(EventError::Missing(field)),
        Some(Value::String(s)) => Ok(s.clone()),
        Some(_) => Err(EventError::WrongType {
            field,
            expected: "a string",
        }),
    }
}

/// A fresh random event id in UUID v4 form, like EventBridge's.
pub fn new_event_id() -> String {
    let mut b: [u8; 16] = rand::random();
    b[6] = (b[6] & 0x0f) | 0x40;
    b[8] = (b[8] & 0x3f) | 0x80;
    let h: String = b.iter().map(|x| format!("{x:02x}")).collect();
    format!(
        "{}-{}-{}-{}-{}",
        &h[0..8],
        &h[8..12],
        &h[12..16],
        &h[16..20],
        &h[20..32]
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn now() -> DateTime<Utc> {
        DateTime::parse_from_rfc3339("2025-01-02T03:04:05Z")
            .unwrap()
            .with_timezone(&Utc)
    }

    #[test]
    fn plain_shape_with_id_field() {
        let e = Event::parse(
            br#"{"id":"e-1","source":"shop","detail-type":"Placed","detail":{"n":1}}"#,
            None,
            now(),
        )
        .unwrap();
        assert_eq!(e.id, "e-1");
        assert_eq!(e.source, "shop");
        assert_eq!(e.detail_type, "Placed");
        assert_eq!(e.detail, json!({"n": 1}));
        assert_eq!(e.time, now());
    }

    #[test]
    fn header_id_wins_and_ids_are_generated_otherwise() {
        let body = br#"{"id":"field","source":"s","detailType":"T"}"#;
        assert_eq!(Event::parse(body, Some("hdr"), now()).unwrap().id, "hdr");
        let a = Event::parse(br#"{"source":"s","detail-type":"T"}"#, None, now()).unwrap();
        let b = Event::parse(br#"{"source":"s","detail-type":"T"}"#, None, now()).unwrap();
        assert_ne!(a.id, b.id);
        assert_eq!(a.id.len(), 36);
        assert_eq!(&a.id[14..15], "4");
        assert_eq!(a.detail, json!({}));
    }

    #[test]
    fn entry_shape_parses_detail_string_and_time() {
        let e = Event::parse(
            br#"{"Source":"s","DetailType":"T","Detail":"{\"k\":[1,2]}","Time":"2024-05-06T07:08:09Z","Resources":["arn:x"]}"#,
            None,
            now(),
        )
        .unwrap();
        assert_eq!(e.detail, json!({"k": [1, 2]}));
        assert_eq!(
            e.time.to_rfc3339_opts(SecondsFormat::Secs, true),
            "2024-05-06T07:08:09Z"
        );
        assert_eq!(e.resources, vec!["arn:x".to_string()]);
    }

    #[test]
    fn an_entry_takes_its_id_from_its_detail_unless_a_header_gives_one() {
        let entry =
            br#"{"Source":"s","DetailType":"T","Detail":"{\"id\":\"run-0-7\"}","id":"not-this"}"#;
        assert_eq!(Event::parse(entry, None, now()).unwrap().id, "run-0-7");
        assert_eq!(Event::parse(entry, Some("h-1"), now()).unwrap().id, "h-1");
        // A plain event keeps reading its own `id`, not its detail's.
        let plain = br#"{"source":"s","detail-type":"T","detail":{"id":"inner"},"id":"outer"}"#;
        assert_eq!(Event::parse(plain, None, now()).unwrap().id, "outer");
    }

    #[test]
    fn refusals_name_the_problem() {
        let p = |b: &[u8]| Event::parse(b, None, now()).unwrap_err();
        assert!(matches!(p(b"nope"), EventError::NotJson(_)));
        assert_eq!(p(b"[1]"), EventError::NotObject);
        assert_eq!(p(br#"{"detail-type":"T"}"#), EventError::Missing("source"));
        assert_eq!(p(br#"{"source":"s"}"#), EventError::Missing("detail-type"));
        assert_eq!(
            p(br#"{"Source":"s","Detail":"{}"}"#),
            EventError::Missing("DetailType")
        );
        assert_eq!(
            p(br#"{"source":1,"detail-type":"T"}"#),
            EventError::WrongType {
                field: "source",
                expected: "a string"
            }
        );
        let bad = p(br#"{"Source":"s","DetailType":"T","Detail":"{not json"}"#);
        assert_eq!(bad.code(), "MalformedDetail");
        assert_eq!(p(br#"{"source":"s"}"#).code(), "InvalidArgument");
    }

    #[test]
    fn envelope_has_eventbridge_fields() {
        let e = Event::parse(
            br#"{"id":"x","source":"s","detail-type":"T","detail":{"a":true}}"#,
            None,
            now(),
        )
        .unwrap();
        assert_eq!(
            e.envelope(),
            json!({
                "version": "0", "id": "x", "detail-type": "T", "source": "s",
                "account": "000000000000", "time": "2025-01-02T03:04:05Z",
                "region": "us-east-1", "resources": [], "detail": {"a": true}
            })
        );
    }
}
