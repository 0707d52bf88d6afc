//! `transport = "eventbridge"`: a batch of events is one `PutEvents` call to the stream's
//! bus (the schedule and the accounting: [`super::batch`]). Each entry's `Detail` is the
//! rendered body (a JSON object with the event's `{id}`, checked when the profile is read),
//! with the stream's `Source` and `DetailType`. PutEvents answers per entry: an entry with an
//! `ErrorCode` failed (`ThrottlingException` counts as throttled, anything else as rejected).

use aws_sdk_eventbridge::types::PutEventsRequestEntry;

use super::batch::{Outcome, classify, entry_failure};
use crate::metrics::ErrorClass;

/// One stream's bus, and a client without retries.
#[derive(Debug, Clone)]
pub struct EventBus {
    client: aws_sdk_eventbridge::Client,
    bus: String,
    source: String,
    detail_type: String,
}

impl EventBus {
    /// Events to `bus` (a name or an ARN) with this source and detail type, through a copy
    /// of `client` whose retries are off.
    pub fn new(
        client: &aws_sdk_eventbridge::Client,
        bus: &str,
        source: &str,
        detail_type: &str,
    ) -> Self {
        let client = aws_sdk_eventbridge::Client::from_conf(
            client
                .config()
                .to_builder()
                .retry_config(aws_sdk_eventbridge::config::retry::RetryConfig::disabled())
                .build(),
        );
        EventBus {
            client,
            bus: bus.to_owned(),
            source: source.to_owned(),
            detail_type: detail_type.to_owned(),
        }
    }

    /// One PutEvents of `(id, detail)` entries.
    pub(super) async fn send(&self, entries: Vec<(String, String)>) -> Outcome {
        let n = entries.len();
        let entries = entries.into_iter().map(|(_, detail)| {
            PutEventsRequestEntry::builder()
                .event_bus_name(&self.bus)
                .source(&self.source)
                .detail_type(&self.detail_type)
                .detail(detail)
                .build()
        });
        let out = self
            .client
            .put_events()
            .set_entries(Some(entries.collect()))
            .send()
            .await
            .map_err(|e| classify(&e))?;
        Ok(entry_outcomes(
            out.entries()
                .iter()
                .map(|e| e.error_code().filter(|c| !c.is_empty())),
            n,
        ))
    }
}

/// Per entry sent, its failure class: PutEvents answers entries in the order sent, each
/// with an `EventId` or an `ErrorCode`. An entry the answer leaves out was not accepted.
fn entry_outcomes<'a>(
    codes: impl Iterator<Item = Option<&'a str>>,
    sent: usize,
) -> Vec<Option<ErrorClass>> {
    let mut out: Vec<Option<ErrorClass>> = codes
        .take(sent)
        .map(|code| code.map(entry_failure))
        .collect();
    out.resize(sent, Some(ErrorClass::Other));
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_entry_is_judged_by_its_own_code() {
        let codes = [
            None,
            Some("ThrottlingException"),
            Some("MalformedDetail"),
            None,
        ];
        assert_eq!(
            entry_outcomes(codes.into_iter(), 4),
            [
                None,
                Some(ErrorClass::Throttled),
                Some(ErrorClass::Rejected),
                None
            ]
        );
        // A short answer: the entries it leaves out were not accepted.
        assert_eq!(
            entry_outcomes([None].into_iter(), 3),
            [None, Some(ErrorClass::Other), Some(ErrorClass::Other)]
        );
    }
}
