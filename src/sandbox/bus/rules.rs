//! Rules and matching: which targets an event goes to. Pure: no IO, no clocks.

use serde::{Deserialize, Serialize};

/// A routing rule: events whose `source` is any of [`Rule::source`] and whose `detail-type`
/// is any of [`Rule::detail_type`] are delivered to every one of [`Rule::targets`].
///
/// An empty list matches anything, so a rule with neither list matches every event.
/// Matching is exact and case-sensitive, like EventBridge's equality patterns.
///
/// ```toml
/// [[rules]]
/// name = "orders-to-billing"
/// source = ["shop.orders"]
/// detail_type = ["OrderPlaced", "OrderCancelled"]
/// targets = [{ type = "function", name = "billing" },
///            { type = "queue", queue_url = "http://127.0.0.1:9324/000000000000/audit" }]
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Rule {
    /// Unique name; used as the key of this rule's statistics.
    pub name: String,
    /// Accepted `source` values (any of); empty accepts every source.
    #[serde(default)]
    pub source: Vec<String>,
    /// Accepted `detail-type` values (any of); empty accepts every detail type.
    #[serde(default, alias = "detail-type")]
    pub detail_type: Vec<String>,
    /// Where matching events are delivered; each target receives its own copy.
    pub targets: Vec<Target>,
}

impl Rule {
    /// Does an event with this `source` and `detail-type` match the rule?
    pub fn matches(&self, source: &str, detail_type: &str) -> bool {
        any_of(&self.source, source) && any_of(&self.detail_type, detail_type)
    }
}

fn any_of(accepted: &[String], value: &str) -> bool {
    accepted.is_empty() || accepted.iter().any(|a| a == value)
}

/// A rule's delivery target.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case", deny_unknown_fields)]
pub enum Target {
    /// An SQS queue: the event envelope (JSON) becomes the message body of a `SendMessage`.
    Queue {
        /// The queue URL, e.g. `http://127.0.0.1:9324/000000000000/jobs`.
        queue_url: String,
    },
    /// A function-style consumer declared in [`BusConfig::functions`](super::BusConfig::functions).
    Function {
        /// The function's name.
        name: String,
    },
}

/// One delivery an event needs: the index of the rule (in configuration order) and its target.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Route<'a> {
    /// Index of the matching rule.
    pub rule: usize,
    /// One of its targets.
    pub target: &'a Target,
}

/// Every delivery for an event, in rule order then target order. An event matching several
/// rules is delivered once per (rule, target) pair, like EventBridge.
pub fn route<'a>(rules: &'a [Rule], source: &str, detail_type: &str) -> Vec<Route<'a>> {
    rules
        .iter()
        .enumerate()
        .filter(|(_, r)| r.matches(source, detail_type))
        .flat_map(|(i, r)| r.targets.iter().map(move |t| Route { rule: i, target: t }))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn rule(name: &str, source: &[&str], dt: &[&str], targets: Vec<Target>) -> Rule {
        Rule {
            name: name.into(),
            source: source.iter().map(|s| s.to_string()).collect(),
            detail_type: dt.iter().map(|s| s.to_string()).collect(),
            targets,
        }
    }

    fn f(name: &str) -> Target {
        Target::Function { name: name.into() }
    }

    #[test]
    fn empty_lists_match_anything() {
        let r = rule("all", &[], &[], vec![]);
        assert!(r.matches("a", "b"));
        assert!(r.matches("", ""));
    }

    #[test]
    fn source_and_detail_type_must_both_match() {
        let r = rule("r", &["shop", "cart"], &["Placed"], vec![]);
        assert!(r.matches("shop", "Placed"));
        assert!(r.matches("cart", "Placed"));
        assert!(!r.matches("shop", "Cancelled"));
        assert!(!r.matches("bank", "Placed"));
        assert!(!r.matches("Shop", "Placed"), "matching is case-sensitive");
        assert!(!r.matches("shop.x", "Placed"), "no prefix matching");
    }

    #[test]
    fn route_lists_every_target_of_every_matching_rule_in_order() {
        let rules = vec![
            rule("a", &["s"], &[], vec![f("one"), f("two")]),
            rule("b", &["other"], &[], vec![f("three")]),
            rule("c", &[], &["T"], vec![f("four")]),
        ];
        let got: Vec<_> = route(&rules, "s", "T")
            .into_iter()
            .map(|r| (r.rule, r.target.clone()))
            .collect();
        assert_eq!(got, vec![(0, f("one")), (0, f("two")), (2, f("four"))]);
        assert!(route(&rules, "nobody", "U").is_empty());
    }

    #[test]
    fn targets_deserialize_tagged_and_reject_unknown_fields() {
        let t: Target = serde_json::from_str(r#"{"type":"queue","queue_url":"http://q"}"#).unwrap();
        assert_eq!(
            t,
            Target::Queue {
                queue_url: "http://q".into()
            }
        );
        assert!(serde_json::from_str::<Target>(r#"{"type":"function","nme":"x"}"#).is_err());
        let r: Rule =
            serde_json::from_str(r#"{"name":"r","detail-type":["X"],"targets":[]}"#).unwrap();
        assert_eq!(r.detail_type, vec!["X".to_string()]);
        assert!(serde_json::from_str::<Rule>(r#"{"name":"r","targets":[],"sorce":[]}"#).is_err());
    }

    proptest! {
        /// `matches` is exactly: (source list empty or contains the source) and
        /// (detail-type list empty or contains the detail type).
        #[test]
        fn matching_agrees_with_its_definition(
            sources in proptest::collection::vec("[a-c]{1,2}", 0..4),
            types in proptest::collection::vec("[A-C]{1,2}", 0..4),
            source in "[a-c]{1,2}",
            dt in "[A-C]{1,2}",
        ) {
            let r = Rule { name: "p".into(), source: sources.clone(), detail_type: types.clone(), targets: vec![] };
            let expected = (sources.is_empty() || sources.contains(&source))
                && (types.is_empty() || types.contains(&dt));
            prop_assert_eq!(r.matches(&source, &dt), expected);
            // Adding the event's own values to non-empty lists always makes it match.
            let mut widened = r.clone();
            widened.source.push(source.clone());
            widened.detail_type.push(dt.clone());
            prop_assert!(widened.matches(&source, &dt));
        }

        /// `route` yields one entry per target of each matching rule and nothing else.
        #[test]
        fn route_counts_targets_of_matching_rules(
            specs in proptest::collection::vec(
                (proptest::collection::vec("[ab]", 0..3), proptest::collection::vec("[XY]", 0..3), 0usize..3),
                0..6),
            source in "[ab]",
            dt in "[XY]",
        ) {
            let rules: Vec<Rule> = specs.iter().enumerate().map(|(i, (s, d, n))| Rule {
                name: format!("r{i}"),
                source: s.clone(),
                detail_type: d.clone(),
                targets: (0..*n).map(|k| Target::Function { name: format!("f{k}") }).collect(),
            }).collect();
            let routes = route(&rules, &source, &dt);
            let expected: usize = rules.iter().filter(|r| r.matches(&source, &dt)).map(|r| r.targets.len()).sum();
            prop_assert_eq!(routes.len(), expected);
            for r in &routes {
                prop_assert!(rules[r.rule].matches(&source, &dt));
                prop_assert!(rules[r.rule].targets.contains(r.target));
            }
        }
    }
}
