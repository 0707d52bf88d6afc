//! The end of a run's accounting: the queue census around the final completion poll, the
//! dead letters, and `ledger.json` (`docs/ledger.md`).

use std::time::Duration;

use crate::aws::QueueRef;
use crate::config::profile::Profile;
use crate::ledger::census::{self, QueueCensus};
use crate::ledger::summary::{IntendedTimes, SummaryInput, summarize};
use crate::ledger::{AcceptedIds, IdFormat};
use crate::results::RunDir;
use crate::results::jsonl::{JsonLines, JsonLinesWriter};
use crate::sandbox::Sandbox;

use super::target::Resolved;

/// Longest the dead-letter drain at the end may take.
const DLQ_DRAIN: Duration = Duration::from_secs(20);
/// Most dead-lettered messages read at the end.
const DLQ_MAX: usize = 1_000_000;
/// Between the census's reads and the final completion poll: a completion reported just
/// after a read still counts.
const CENSUS_SETTLE: Duration = Duration::from_secs(1);

/// What the ledger is computed from.
pub struct LedgerInput<'a> {
    pub dir: &'a RunDir,
    pub target: &'a Resolved,
    pub accepted: &'a AcceptedIds,
    pub ids: &'a IdFormat,
    pub names: &'a [String],
    pub profile: &'a Profile,
    pub seed: u64,
    pub start_ms: u64,
}

/// Dead letters, the final queue depth, and `ledger.json`. Returns a one-line summary.
pub async fn finish_ledger(
    input: LedgerInput<'_>,
    census: Result<Option<QueueCensus>, String>,
) -> String {
    let LedgerInput {
        dir,
        target,
        accepted,
        ids,
        names,
        profile,
        seed,
        start_ms,
    } = input;
    let completions_path = &dir.completions();
    if target.completions.is_empty() {
        return "no completion source in [target]: end-to-end accounting not measured".into();
    }
    let mut notes = Vec::new();
    if let (Some(dlq), Some(c)) = (&target.dlq, &target.clients) {
        let deadline = tokio::time::Instant::now() + DLQ_DRAIN;
        match crate::ledger::source::drain_dlq(&c.sqs, dlq, "/id", DLQ_MAX, deadline.into_std())
            .await
        {
            Ok((records, _)) => {
                if let Err(e) = JsonLinesWriter::append(completions_path)
                    .and_then(|mut w| w.write_all(&records))
                {
                    notes.push(format!("dead letters not written: {e}"));
                }
            }
            Err(e) => notes.push(format!("dead-letter queue not read: {e}")),
        }
    }
    // The census's second half: one more read after the final poll and the DLQ drain.
    let census = match census {
        Ok(Some(mut census)) => {
            if let (Some(q), Some(c)) = (&target.queue, &target.clients) {
                match queue_depth(&c.sqs, q).await {
                    Ok(n) => census.after = Some(n),
                    Err(e) => notes.push(format!("last queue read failed: {e}")),
                }
            }
            Some(census)
        }
        Ok(None) => None,
        Err(e) => {
            notes.push(format!("final queue depth not measured: {e}"));
            None
        }
    };
    let still_queued = census.as_ref().and_then(QueueCensus::upper);
    let queued_ids: Option<std::collections::HashSet<String>> = census
        .as_ref()
        .and_then(|c| c.ids.as_ref())
        .map(|ids| ids.iter().cloned().collect());
    // Streamed: the completions of a long run are never held in memory at once.
    let mut completions = match JsonLines::<crate::ledger::CompletionRecord>::open(completions_path)
    {
        Ok(c) => c,
        Err(e) => return format!("completions not readable: {e}"),
    };
    let mut intended = IntendedTimes::new(profile, seed, start_ms);
    let progress = crate::term::counter("balancing the ledger: completions");
    let (mut summary, _hist) = summarize(
        SummaryInput {
            accepted,
            ids,
            stream_names: names,
            still_queued,
            queued_ids: queued_ids.as_ref(),
        },
        completions.by_ref().inspect(|_| progress.inc(1)),
        Some(&mut intended),
    );
    drop(progress);
    if let Err(e) = completions.finish() {
        return format!("completions not readable: {e}");
    }
    summary.queue = census.clone();
    if let Err(e) = dir.write_ledger(&summary) {
        notes.push(format!("ledger.json not written: {e}"));
    }
    let mut line = format!(
        "{} accepted, {} completed, {} dead-lettered, {}, {} lost, {} duplicated",
        summary.accepted,
        summary.completed,
        summary.dead_lettered,
        match (
            still_queued,
            census.as_ref().is_some_and(|c| c.ids.is_some())
        ) {
            (Some(n), true) => format!("{n} still queued (ids listed)"),
            (Some(n), false) => format!("up to {n} still queued"),
            (None, _) => "still queued unknown".into(),
        },
        summary.lost,
        summary.duplicates
    );
    if let Some(p99) = summary.latency.p99_ms {
        line.push_str(&format!("; end-to-end p99 {p99} ms"));
    }
    for n in notes {
        line.push_str(&format!("; {n}"));
    }
    line
}

/// The census's reads before the final completion poll (until two agree) and, on the
/// sandbox, the ids in the queue; then a second so a completion reported right after the
/// reads reaches that poll. `Ok(None)`: nothing to count (no ledger, or no queue).
pub async fn census_before(
    target: &Resolved,
    sandbox: Option<&Sandbox>,
) -> Result<Option<QueueCensus>, String> {
    let (Some(q), Some(c)) = (&target.queue, &target.clients) else {
        return Ok(None);
    };
    if target.completions.is_empty() {
        return Ok(None);
    }
    let (before, error) = census::settle(|| queue_depth(&c.sqs, q), Duration::from_secs(1)).await;
    if before.is_empty() {
        return Err(error.map_or_else(String::new, |e| format!("{e:#}")));
    }
    let ids = sandbox.and_then(Sandbox::queued_job_ids);
    tokio::time::sleep(CENSUS_SETTLE).await;
    Ok(Some(QueueCensus {
        before,
        after: None,
        ids,
    }))
}

/// Visible + in flight + delayed.
pub async fn queue_depth(sqs: &aws_sdk_sqs::Client, queue: &QueueRef) -> anyhow::Result<u64> {
    use aws_sdk_sqs::types::QueueAttributeName as A;
    let url = queue.url(sqs).await?;
    let out = sqs
        .get_queue_attributes()
        .queue_url(url)
        .attribute_names(A::ApproximateNumberOfMessages)
        .attribute_names(A::ApproximateNumberOfMessagesNotVisible)
        .attribute_names(A::ApproximateNumberOfMessagesDelayed)
        .send()
        .await
        .map_err(|e| anyhow::anyhow!("{}", aws_sdk_sqs::error::DisplayErrorContext(e)))?;
    let attrs = out.attributes.unwrap_or_default();
    Ok([
        A::ApproximateNumberOfMessages,
        A::ApproximateNumberOfMessagesNotVisible,
        A::ApproximateNumberOfMessagesDelayed,
    ]
    .iter()
    .filter_map(|a| attrs.get(a)?.parse::<u64>().ok())
    .sum())
}
