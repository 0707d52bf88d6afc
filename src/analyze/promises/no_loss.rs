//! **no-loss**: every accepted message is completed, dead-lettered or still queued at the
//! end. Formulas: `docs/promises.md#no-loss`.

use super::missing;
use crate::analyze::ledger::{Ledger, LedgerBuilder};
use crate::analyze::verdict::{Builder, Status, Verdict};
use crate::analyze::view::RunView;

/// Parameters of a `no-loss` promise.
#[derive(Debug, Clone, PartialEq)]
pub struct NoLoss {
    /// Whether jobs completed more than once are acceptable (they are always reported).
    pub allow_duplicates: bool,
}

/// The keys of a `no-loss` promise.
#[derive(Debug, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawNoLoss {
    /// Whether jobs completed more than once pass (default true; always reported).
    allow_duplicates: Option<toml::Spanned<bool>>,
}

impl crate::analyze::spec::PromiseParams for RawNoLoss {
    fn build(
        self,
        r: &mut crate::analyze::spec::Reader<'_, '_>,
    ) -> (crate::analyze::spec::PromiseKind, String) {
        r.reads_completions();
        let p = NoLoss {
            allow_duplicates: r.value(&self.allow_duplicates).unwrap_or(true),
        };
        (
            crate::analyze::spec::PromiseKind::NoLoss(p),
            "no-loss".into(),
        )
    }
}

impl NoLoss {
    pub fn evaluate(&self, name: &str, view: &RunView) -> Verdict {
        let mut b = Builder::new(name, "no-loss");
        let Some(l) = &view.ledger else {
            return b.not_evaluable(missing(
                view,
                "no message ledger (accepted.jsonl)",
                "accepted.jsonl",
            ));
        };
        if l.accepted == 0 {
            return b.not_evaluable("no message was accepted: nothing to account for");
        }
        b.window(0.0, view.end())
            .figure("accepted", l.accepted)
            .figure("completed", l.completed)
            .figure("dead_lettered", l.dead_lettered)
            .figure("unaccounted", l.unaccounted)
            .figure("duplicates", l.duplicates)
            .figure("unknown_completions", l.unknown);
        if let Some(q) = l.still_queued {
            b.figure("still_queued", q);
        }
        if !l.unaccounted_sample.is_empty() {
            b.figure("unaccounted_sample", l.unaccounted_sample.join(" "));
        }
        if let Some(listed) = l.queued_listed {
            b.figure("still_queued_listed", listed);
        }
        // Streams not one of whose messages was heard of again stand apart: see `silent`.
        let silent: u64 = l.silent.iter().map(|s| s.accepted).sum();
        let rest;
        let l = if silent > 0 {
            let streams: Vec<String> = l
                .silent
                .iter()
                .map(|s| format!("`{}` ({} accepted)", s.stream, s.accepted))
                .collect();
            b.figure("silent", silent).figure(
                "silent_streams",
                l.silent
                    .iter()
                    .map(|s| s.stream.as_str())
                    .collect::<Vec<_>>()
                    .join(" "),
            );
            b.leg(
                Status::NotEvaluable,
                format!(
                    "not one message of stream {} has a record (none completed, \
                     dead-lettered or still queued): if its requests start no job, leave it out \
                     of the ledger (`ledger = false` in the profile); if they do, every one was \
                     lost; the two cannot be told apart",
                    streams.join(", ")
                ),
            );
            if l.accepted == silent {
                return b.finish();
            }
            let others = |ids: &[String]| -> Vec<String> {
                ids.iter()
                    .filter(|id| {
                        // A silent family is one of the ledger's: its ids split alike.
                        let prefix = LedgerBuilder::split(id).map(|(p, _)| p);
                        !l.silent
                            .iter()
                            .any(|s| s.families.iter().any(|p| Some(p.as_str()) == prefix))
                    })
                    .cloned()
                    .collect()
            };
            rest = Ledger {
                accepted: l.accepted - silent,
                unaccounted: l.unaccounted - silent,
                // By count, the queue's messages cannot be told from the silent ids.
                still_queued_settled: None,
                lost_sample: others(&l.lost_sample),
                unaccounted_sample: others(&l.unaccounted_sample),
                silent: Vec::new(),
                completions_per_s: Vec::new(),
                e2e_us: crate::metrics::new_histogram(),
                e2e_ms_by_done_s: Vec::new(),
                ..*l
            };
            &rest
        } else {
            l
        };
        let records = l.completed + l.dead_lettered + l.duplicates + l.unknown;
        let sample = |ids: &[String]| ids.iter().take(3).cloned().collect::<Vec<_>>().join(", ");
        match (l.lost(), l.queued_listed, l.still_queued) {
            (Some(lost), _, _) if lost > 0 && records == 0 => {
                // Not one record: a silent completion source looks exactly like total loss.
                b.figure("lost", lost);
                b.leg(
                    Status::NotEvaluable,
                    format!(
                        "not one completion record in the whole run for {} accepted messages: \
                         the completion source is not reporting (check [[target.completions]]) \
                         or every message was lost; the two cannot be told apart",
                        l.accepted
                    ),
                );
            }
            (Some(0), Some(listed), _) => {
                b.figure("lost", 0u64);
                b.leg(
                    Status::Pass,
                    format!(
                        "{} accepted = {} completed + {} dead-lettered + {listed} still queued (ids listed)",
                        l.accepted, l.completed, l.dead_lettered
                    ),
                );
            }
            (Some(lost), Some(listed), _) => {
                b.figure("lost", lost)
                    .figure("lost_sample", l.lost_sample.join(" "));
                b.leg(
                    Status::Fail,
                    format!(
                        "{lost} of {} accepted messages lost (e.g. {}): neither completed, \
                         dead-lettered nor in the queue, which listed its {listed} other missing ids",
                        l.accepted,
                        sample(&l.lost_sample)
                    ),
                );
            }
            _ if l.unaccounted == 0 => {
                b.figure("lost", 0u64);
                b.leg(
                    Status::Pass,
                    format!(
                        "{} accepted = {} completed + {} dead-lettered",
                        l.accepted, l.completed, l.dead_lettered
                    ),
                );
            }
            (_, None, Some(upper)) if l.unaccounted > upper => {
                let lost = l.unaccounted - upper;
                b.figure("lost", lost);
                b.leg(
                    Status::Fail,
                    format!(
                        "at least {lost} of {} accepted messages lost: {} missing (e.g. {}), \
                         at most {upper} still in the queue at the end",
                        l.accepted,
                        l.unaccounted,
                        sample(&l.unaccounted_sample)
                    ),
                );
            }
            (_, None, Some(_)) if l.still_queued_settled == Some(l.unaccounted) => {
                let upper = l.unaccounted;
                b.figure("lost", 0u64);
                b.leg(
                    Status::Pass,
                    format!(
                        "{} accepted = {} completed + {} dead-lettered + {upper} still queued \
                         (by count: the queue held exactly the {upper} missing)",
                        l.accepted, l.completed, l.dead_lettered
                    ),
                );
            }
            (_, None, Some(upper)) => {
                let why = if l.still_queued_settled.is_none() {
                    "the queue's count was still moving when the run ended"
                } else {
                    "the queue holds more than the missing ones, so which are there cannot be told"
                };
                b.leg(
                    Status::NotEvaluable,
                    format!(
                        "{} missing, up to {upper} still in the system ({why}): extend the \
                         cool-down (`[cooldown]`) until the backlog drains",
                        l.unaccounted
                    ),
                );
            }
            _ => {
                b.leg(Status::NotEvaluable, format!(
                    "{} accepted messages have no completion and ledger.json does not say how many were still queued",
                    l.unaccounted
                ));
            }
        }
        if l.duplicates > 0 {
            let status = if self.allow_duplicates {
                Status::Pass
            } else {
                Status::Fail
            };
            b.leg(
                status,
                format!(
                    "{} duplicate completions{}",
                    l.duplicates,
                    if self.allow_duplicates {
                        " (allowed)"
                    } else {
                        ""
                    }
                ),
            );
        }
        b.finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::analyze::view::{Accepted, Completion, Ledger, Outcome};
    use crate::ledger::census::QueueCensus;

    fn ledger(accepted: u64, completed: u64, duplicates: u64, queued: Option<u64>) -> Ledger {
        let acc: Vec<Accepted> = (0..accepted)
            .map(|i| Accepted {
                id: format!("m{i:03}"),
                stream: "s".into(),
                t_ms: i,
            })
            .collect();
        let mut done: Vec<Completion> = (0..completed)
            .map(|i| Completion {
                id: format!("m{i:03}"),
                done_ms: 1000 + i,
                outcome: Outcome::Completed,
                receive_count: 1,
            })
            .collect();
        done.extend((0..duplicates).map(|i| Completion {
            id: format!("m{i:03}"),
            done_ms: 2000,
            outcome: Outcome::Completed,
            receive_count: 2,
        }));
        Ledger::build(&acc, &done, queued)
    }

    fn eval(spec: &NoLoss, l: Ledger) -> Verdict {
        let view = RunView {
            ledger: Some(l),
            ..RunView::default()
        };
        spec.evaluate("n", &view)
    }

    #[test]
    fn all_accounted_passes_and_duplicates_follow_the_setting() {
        let ok = NoLoss {
            allow_duplicates: true,
        };
        assert_eq!(eval(&ok, ledger(100, 95, 3, Some(5))).status, Status::Pass);
        let strict = NoLoss {
            allow_duplicates: false,
        };
        let v = eval(&strict, ledger(100, 95, 3, Some(5)));
        assert_eq!(v.status, Status::Fail);
        assert!(v.reason.unwrap().contains("3 duplicate completions"));
    }

    #[test]
    fn lost_messages_fail_with_a_sample() {
        let v = eval(
            &NoLoss {
                allow_duplicates: true,
            },
            ledger(100, 90, 0, Some(2)),
        );
        assert_eq!(v.status, Status::Fail);
        assert_eq!(v.figures["lost"], 8u64.into());
        assert!(v.reason.unwrap().contains("e.g. m090, m091, m092"));
    }

    fn with_census(mut l: Ledger, census: QueueCensus) -> Ledger {
        l.still_queued = census.upper();
        l.still_queued_settled = census.settled();
        l
    }

    /// Issue 10: a fleet that could not keep up ended with a backlog; a message processed
    /// between the last completion poll and the one queue read was called lost ("10 of 1130
    /// accepted messages lost ... 480 queued at the end" while 500 were in the system).
    #[test]
    fn a_message_possibly_still_queued_is_never_called_lost() {
        let spec = NoLoss {
            allow_duplicates: true,
        };
        let census = QueueCensus {
            before: vec![500, 500],
            after: Some(480),
            ids: None,
        };
        let v = eval(&spec, with_census(ledger(1130, 640, 0, None), census));
        assert_eq!(v.status, Status::NotEvaluable, "{v:?}");
        let reason = v.reason.unwrap();
        assert!(
            reason.contains("490 missing, up to 500 still in the system"),
            "{reason}"
        );
        assert!(reason.contains("extend the cool-down"), "{reason}");
        // The same count, still moving: not evaluable either.
        let moving = QueueCensus {
            before: vec![495, 490],
            after: Some(490),
            ids: None,
        };
        let v = eval(&spec, with_census(ledger(1130, 640, 0, None), moving));
        assert_eq!(v.status, Status::NotEvaluable, "{v:?}");
        // Counts that settled on exactly the missing ones balance the books.
        let settled = QueueCensus {
            before: vec![491, 490, 490],
            after: Some(490),
            ids: None,
        };
        let v = eval(&spec, with_census(ledger(1130, 640, 0, None), settled));
        assert_eq!(v.status, Status::Pass, "{v:?}");
        assert!(v.summary.contains("by count"));
        // More missing than the largest read: at least the difference is lost.
        let short = QueueCensus {
            before: vec![300, 300],
            after: Some(300),
            ids: None,
        };
        let v = eval(&spec, with_census(ledger(1130, 640, 0, None), short));
        assert_eq!(v.status, Status::Fail, "{v:?}");
        assert_eq!(v.figures["lost"], 190u64.into());
        assert!(v.reason.unwrap().contains("at least 190 of 1130"));
    }

    #[test]
    fn listed_queue_ids_make_the_balance_exact() {
        let spec = NoLoss {
            allow_duplicates: true,
        };
        let build = |queued: std::ops::Range<u64>| {
            let acc: Vec<Accepted> = (0..100)
                .map(|i| Accepted {
                    id: format!("r-0-{i}"),
                    stream: "s".into(),
                    t_ms: i,
                })
                .collect();
            let mut b = crate::analyze::view::LedgerBuilder::default();
            for a in &acc {
                b.accept(&a.id, a.t_ms);
            }
            for i in 0..80 {
                b.complete(&format!("r-0-{i}"), 5_000, Outcome::Completed);
            }
            b.finish(Some(QueueCensus {
                before: vec![40, 40],
                after: Some(40),
                ids: Some(queued.map(|i| format!("r-0-{i}")).collect()),
            }))
        };
        // The 20 missing are all in the queue (with 20 of other runs): pass, exactly.
        let v = eval(&spec, build(80..100));
        assert_eq!(v.status, Status::Pass, "{v:?}");
        assert!(
            v.summary.contains("20 still queued (ids listed)"),
            "{}",
            v.summary
        );
        // Two of them are not: named, although the count alone would have hidden them.
        let v = eval(&spec, build(82..122));
        assert_eq!(v.status, Status::Fail, "{v:?}");
        assert_eq!(v.figures["lost"], 2u64.into());
        assert_eq!(v.figures["lost_sample"], "r-0-80 r-0-81".into());
    }

    #[test]
    fn missing_data_is_not_evaluable() {
        let spec = NoLoss {
            allow_duplicates: true,
        };
        assert_eq!(
            spec.evaluate("n", &RunView::default()).status,
            Status::NotEvaluable
        );
        assert_eq!(
            eval(&spec, ledger(100, 90, 0, None)).status,
            Status::NotEvaluable
        );
        assert_eq!(
            eval(&spec, ledger(0, 0, 0, Some(0))).status,
            Status::NotEvaluable
        );
        // Not one completion record: a silent source, not evidence of loss.
        let silent = eval(&spec, ledger(100, 0, 0, Some(0)));
        assert_eq!(silent.status, Status::NotEvaluable);
        assert!(silent.reason.unwrap().contains("[[target.completions]]"));
        // One record is enough to read the rest as lost.
        assert_eq!(eval(&spec, ledger(100, 1, 0, Some(0))).status, Status::Fail);
        // Nothing completed but everything still queued: buffered, not lost.
        assert_eq!(
            eval(&spec, ledger(100, 0, 0, Some(100))).status,
            Status::Pass
        );
        // Everything completed: the queue count is not needed.
        assert_eq!(eval(&spec, ledger(10, 10, 0, None)).status, Status::Pass);
    }

    /// Two streams with the driver's ids (`r-<stream>-<seq>`): `writes`, of which `done`
    /// of 50 completed, and `reads`, 30 accepted and never heard of again.
    fn writes_and_reads(done: u64) -> Ledger {
        let acc: Vec<Accepted> = (0..50)
            .map(|i| (format!("r-0-{i}"), "writes"))
            .chain((0..30).map(|i| (format!("r-1-{i}"), "reads")))
            .map(|(id, stream)| Accepted {
                id,
                stream: stream.into(),
                t_ms: 0,
            })
            .collect();
        let completions: Vec<Completion> = (0..done)
            .map(|i| Completion {
                id: format!("r-0-{i}"),
                done_ms: 100,
                outcome: Outcome::Completed,
                receive_count: 1,
            })
            .collect();
        Ledger::build(&acc, &completions, Some(0))
    }

    /// A stream not one of whose messages was heard of again may start no job at all (a
    /// read over POST): it is not evaluable, never lost, while the other streams still
    /// pass or fail on their own.
    #[test]
    fn a_stream_never_heard_of_again_is_not_evaluable_and_the_rest_still_counts() {
        let spec = NoLoss {
            allow_duplicates: true,
        };
        let l = writes_and_reads(50);
        assert_eq!(l.silent.len(), 1);
        assert_eq!(
            (l.silent[0].stream.as_str(), l.silent[0].accepted),
            ("reads", 30)
        );
        let v = eval(&spec, l);
        assert_eq!(v.status, Status::NotEvaluable, "{:?}", v.reason);
        let reason = v.reason.unwrap();
        assert!(reason.contains("stream `reads` (30 accepted)"), "{reason}");
        assert!(reason.contains("`ledger = false`"), "{reason}");
        // The writes balanced: nothing lost.
        assert_eq!(v.figures["lost"], 0u64.into());
        assert_eq!(v.figures["silent"], 30u64.into());
        // The writes lost 5: a fail, whatever the reads were.
        let v = eval(&spec, writes_and_reads(45));
        assert_eq!(v.status, Status::Fail);
        assert_eq!(v.figures["lost"], 5u64.into());
        assert!(v.reason.unwrap().contains("e.g. r-0-45"));
        // A stream with one message heard of is not silent: its missing ones are lost.
        let mut l = writes_and_reads(50);
        l = {
            let acc: Vec<Accepted> = (0..30)
                .map(|i| Accepted {
                    id: format!("r-1-{i}"),
                    stream: "reads".into(),
                    t_ms: 0,
                })
                .collect();
            let one = Completion {
                id: "r-1-0".into(),
                done_ms: 100,
                outcome: Outcome::Completed,
                receive_count: 1,
            };
            drop(l);
            Ledger::build(&acc, &[one], Some(0))
        };
        assert!(l.silent.is_empty());
        assert_eq!(eval(&spec, l).status, Status::Fail);
    }
}
