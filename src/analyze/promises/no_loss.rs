//! **no-loss**: every accepted message is completed, dead-lettered or still queued at the
//! end. Formulas: `docs/promises.md#no-loss`.

use super::missing;
use crate::analyze::verdict::{Builder, Status, Verdict};
use crate::analyze::view::RunView;

/// Parameters of a `no-loss` promise.
#[derive(Debug, Clone, PartialEq)]
pub struct NoLoss {
    /// Whether jobs completed more than once are acceptable (they are always reported).
    pub allow_duplicates: bool,
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
        let records = l.completed + l.dead_lettered + l.duplicates + l.unknown;
        match l.lost() {
            Some(lost) if lost > 0 && records == 0 => {
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
            Some(0) => {
                b.figure("lost", 0u64);
                b.leg(
                    Status::Pass,
                    format!(
                        "{} accepted = {} completed + {} dead-lettered + {} still queued",
                        l.accepted, l.completed, l.dead_lettered, l.unaccounted
                    ),
                );
            }
            Some(lost) => {
                b.figure("lost", lost);
                let sample = l
                    .unaccounted_sample
                    .iter()
                    .take(3)
                    .cloned()
                    .collect::<Vec<_>>()
                    .join(", ");
                b.leg(
                    Status::Fail,
                    format!(
                        "{lost} of {} accepted messages lost (e.g. {sample}); {} queued at the end",
                        l.accepted,
                        l.still_queued.unwrap_or(0)
                    ),
                );
            }
            None => {
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
}
