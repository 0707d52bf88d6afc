//! The "type"-tagged tables of an experiment: `[[fault]]`, `[[probe]]`, `[[promise]]` and
//! `[[target.activities]]`, taken out of the document and each read on its own, so that
//! every error of every table is reported at once, at its key or value, whatever else in
//! the file is wrong. Then the names the promises declare they refer to are checked
//! against the faults, probes and streams there are.

use std::collections::BTreeSet;
use std::ops::Range;

use crate::analyze::spec::{ReadPromise, RefKind, build as build_promises};
use crate::chaos::plan::{ReadFaults, read_faults};
use crate::chaos::spec::FaultSpec;
use crate::config::Document;
use crate::config::diag::{Collector, name_hint};
use crate::config::profile::Profile;
use crate::probe::activity::ActivitySourceSpec;
use crate::probe::spec::{ProbeSpec, read_probes};

/// The tables, read.
pub(super) struct Tables {
    /// `None` when one of them has errors (already recorded).
    pub faults: Option<Vec<FaultSpec>>,
    /// Every `[[fault]]`'s name (as the plan names it: `<type>-<index>` when unnamed) and
    /// the span of its table.
    pub fault_names: Vec<(String, Range<usize>)>,
    pub probes: Vec<ProbeSpec>,
    /// Every `[[probe]]`'s name, also of those with errors.
    pub probe_names: Vec<String>,
    pub promises: Vec<ReadPromise>,
    /// `None` when one of them has errors (already recorded).
    pub activities: Option<Vec<ActivitySourceSpec>>,
    /// Whether there is any `[[target.activities]]` table at all.
    pub has_activities: bool,
}

/// Takes the tables out of `doc` and reads them, recording every error in `c`.
pub(super) fn read(doc: &mut Document<'_>, c: &mut Collector<'_>) -> Tables {
    let ReadFaults {
        specs: faults,
        names: fault_names,
    } = read_faults(doc, c);
    let probe_tables = doc.take_tables("probe", c);
    let probe_names = probe_tables
        .iter()
        .filter_map(|t| t.str("name").map(str::to_owned))
        .collect();
    let probes = read_probes(probe_tables, c);
    let promises = build_promises(doc.take_tables("promise", c), c);
    let mut activities = Some(Vec::new());
    let activity_tables = doc.take_tables("target.activities", c);
    let has_activities = !activity_tables.is_empty();
    for table in activity_tables {
        let places = table.clone();
        let spec = table.read::<ActivitySourceSpec>(c, &|_, _, _| None);
        let spec = spec.and_then(|spec| match spec.check_keys() {
            Ok(()) => Some(spec),
            Err((key, e)) => {
                let span = key.and_then(|k| places.value_span(k));
                c.error_with_hint(
                    span.unwrap_or_else(|| places.span()),
                    format!("{}: {e}", places.label()),
                    "docs/experiments.md, `[[target.activities]]`",
                );
                None
            }
        });
        match (spec, &mut activities) {
            (Some(spec), Some(v)) => v.push(spec),
            (Some(_), None) => {}
            (None, _) => activities = None,
        }
    }
    Tables {
        faults,
        fault_names,
        probes,
        probe_names,
        promises,
        activities,
        has_activities,
    }
}

/// Every name a promise refers to must exist: faults (`name#k` is occurrence k of `name`),
/// probes, streams. Each error at the value that names it. `faults` and `probes` are the
/// names of every table, also of those with errors (already reported).
pub(super) fn check_references(
    c: &mut Collector<'_>,
    promises: &[ReadPromise],
    faults: &[(String, Range<usize>)],
    probes: &[String],
    specs: &[ProbeSpec],
    profile: &Profile,
) {
    let faults: BTreeSet<&str> = faults.iter().map(|(n, _)| n.as_str()).collect();
    let faults: Vec<&str> = faults.into_iter().collect();
    let probes: Vec<&str> = probes.iter().map(String::as_str).collect();
    let streams: Vec<&str> = profile.streams.iter().map(|s| s.name.as_str()).collect();
    for p in promises {
        for r in &p.refs {
            let (known, what, missing) = match r.kind {
                RefKind::Fault => (&faults, "fault", "which is not a `[[fault]]`"),
                RefKind::Probe => (&probes, "probe", "which is not a `[[probe]]`"),
                RefKind::Stream => (&streams, "stream", "which no profile has"),
            };
            let base = match (r.kind, r.name.rsplit_once('#')) {
                (RefKind::Fault, Some((b, k))) if k.parse::<u32>().is_ok() => b,
                _ => r.name.as_str(),
            };
            if !known.contains(&base) {
                c.error_with_hint(
                    r.span.clone(),
                    format!("promise `{}` names {what} `{}`, {missing}", p.name, r.name),
                    name_hint(&r.name, known),
                );
            }
            // A promise reads its probes second by second: one value per CloudWatch period
            // would be read as that many seconds of the same value.
            let coarse = || {
                specs
                    .iter()
                    .find(|s| s.name == r.name)?
                    .kind
                    .coarse_period()
            };
            if r.kind == RefKind::Probe
                && let Some(period) = coarse()
            {
                c.error_with_hint(
                    r.span.clone(),
                    format!(
                        "promise `{}` reads probe `{}` second by second, and it has one value per {} (a CloudWatch period)",
                        p.name,
                        r.name,
                        crate::units::format_duration(period)
                    ),
                    "give the promise a probe sampled every second (sqs, asg, target-health, ec2), \
                     or a CloudWatch metric with `period = \"1s\"` (high resolution), or for a \
                     count or total (`stat = \"Sum\"`) `cumulative = true`; a coarse CloudWatch \
                     probe is evidence in probes.csv and can stop the run",
                );
            }
        }
    }
}
