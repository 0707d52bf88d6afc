//! Tests of the scale-out promise.
use super::*;
use crate::analyze::view::{Activity, FaultWindow};

fn spec() -> ScaleOut {
    ScaleOut {
        group: Some("workers".into()),
        instances: "workers".into(),
        depth: "depth".into(),
        target: 100.0,
        n: Some(2),
        max: None,
        within: Duration::from_secs(60),
    }
}

fn capacity(max: Option<u32>) -> ScaleOut {
    ScaleOut {
        n: None,
        max,
        ..spec()
    }
}

fn series(len: usize, f: impl Fn(usize) -> f64) -> Vec<Option<f64>> {
    (0..len).map(|s| Some(f(s))).collect()
}

/// Backlog ramps from second 10; instances 1 until `grow_at`, then 4.
fn view(grow_at: Option<usize>, len: usize) -> RunView {
    let mut v = RunView::default();
    v.probes.insert(
        "depth".into(),
        series(len, |s| if s < 10 { 0.0 } else { 30.0 * (s - 10) as f64 }),
    );
    v.probes.insert(
        "workers".into(),
        series(len, |s| {
            if grow_at.is_some_and(|g| s >= g) {
                4.0
            } else {
                1.0
            }
        }),
    );
    let mut acts = Vec::new();
    if grow_at.is_some() {
        acts.push(Activity {
            t: 15.5,
            group: "workers".into(),
            kind: ActivityKind::Scaling,
            from: Some(1),
            to: Some(4),
            instance: None,
            cause: "target tracking".into(),
        });
        acts.push(Activity {
            t: 16.0,
            group: "workers".into(),
            kind: ActivityKind::Launch,
            from: None,
            to: None,
            instance: Some("i-2".into()),
            cause: "scaling".into(),
        });
    }
    v.activities = Some(acts);
    v
}

#[test]
fn grows_in_time() {
    let v = spec().evaluate("s", &view(Some(40), 120));
    assert_eq!(v.status, Status::Pass, "{v:?}");
    // 30/s from second 10: 30 x 4 = 120 > 100 at second 14.
    assert_eq!(v.figures["breach_s"], 14.0.into());
    assert_eq!(v.figures["running_s"], 26.0.into());
    assert_eq!(v.figures["desired_change_s"], 1.5.into());
}

#[test]
fn a_fixed_fleet_fails_and_a_short_run_is_not_evaluable() {
    let v = spec().evaluate("s", &view(None, 120));
    assert_eq!(v.status, Status::Fail, "{v:?}");
    assert_eq!(v.figures["desired_change_s"], "none".into());
    assert_eq!(
        spec().evaluate("s", &view(None, 40)).status,
        Status::NotEvaluable
    );
    let mut quiet = view(None, 120);
    quiet.probes.insert("depth".into(), vec![Some(0.0); 120]);
    assert_eq!(spec().evaluate("s", &quiet).status, Status::NotEvaluable);
}

/// Issue 10: a fleet capped far below the demand passed (`0 -> 1 instances 2s after the
/// breach`) while the backlog grew for the whole run: only the first breach was judged,
/// and only "+n instances".
#[test]
fn a_fleet_capped_below_the_load_fails_every_form_but_the_simple_one() {
    let len = 90;
    let mut v = RunView::default();
    // 0 workers, then 1 from second 3; the backlog grows 8/s the whole run.
    v.probes
        .insert("depth".into(), series(len, |s| 8.0 * s as f64));
    v.probes.insert(
        "workers".into(),
        series(len, |s| if s < 3 { 0.0 } else { 1.0 }),
    );
    let spec = ScaleOut {
        target: 20.0,
        within: Duration::from_secs(30),
        ..capacity(Some(8))
    };
    let verdict = spec.evaluate("s", &v);
    assert_eq!(verdict.status, Status::Fail, "{verdict:?}");
    let reason = verdict.reason.unwrap();
    assert!(
        reason.contains("capacity peaked at 1 instances; the backlog called for 8 (max 8)"),
        "{reason}"
    );
    // Declaring the real cap (max 1) moves the failure to the capacity leg.
    let capped = ScaleOut {
        max: Some(1),
        ..spec.clone()
    };
    let verdict = capped.evaluate("s", &v);
    assert_eq!(verdict.status, Status::Fail, "{verdict:?}");
    let reason = verdict.reason.unwrap();
    assert!(reason.contains("capped at 1 instances (max)"), "{reason}");
    assert!(reason.contains("the backlog needed 36"), "{reason}");
    // The older "+n" form only asks for n more instances per breach: 0 -> 1 answers
    // the one long breach, so it cannot tell a capped fleet (documented).
    let simple = ScaleOut {
        n: Some(1),
        max: None,
        ..spec
    };
    let verdict = simple.evaluate("s", &v);
    assert_eq!(verdict.status, Status::Pass, "{verdict:?}");
}

#[test]
fn every_breach_is_judged_and_the_worst_decides() {
    // Two bursts: the first answered in 5 s, the second never (the fleet stays at 2).
    let len = 200;
    let mut v = RunView::default();
    v.probes.insert(
        "depth".into(),
        series(len, |s| match s {
            10..=30 => 500.0,
            100..=199 => 900.0,
            _ => 0.0,
        }),
    );
    v.probes.insert(
        "workers".into(),
        series(len, |s| if (15..100).contains(&s) { 6.0 } else { 2.0 }),
    );
    let verdict = capacity(None).evaluate("s", &v);
    assert_eq!(verdict.status, Status::Fail, "{verdict:?}");
    assert_eq!(verdict.figures["breaches"], 2u64.into());
    assert!(verdict.reason.unwrap().contains("breach at 100s"));
    // Answer the second one in 20 s: pass, and both are counted.
    v.probes.insert(
        "workers".into(),
        series(len, |s| {
            if (15..100).contains(&s) || s >= 120 {
                10.0
            } else {
                2.0
            }
        }),
    );
    let verdict = capacity(None).evaluate("s", &v);
    assert_eq!(verdict.status, Status::Pass, "{verdict:?}");
    assert!(
        verdict
            .summary
            .contains("2 of 2 breaches answered within 60s (slowest 20s)")
    );
    assert_eq!(verdict.figures["worst_response_s"], 20.0.into());
    assert_eq!(
        verdict.figures["breach_responses"],
        "10s:5s 100s:20s".into()
    );
    // Answered, but in 70 s: too slow.
    v.probes.insert(
        "workers".into(),
        series(len, |s| {
            if (15..100).contains(&s) || s >= 170 {
                10.0
            } else {
                2.0
            }
        }),
    );
    let verdict = capacity(None).evaluate("s", &v);
    assert_eq!(verdict.status, Status::Fail, "{verdict:?}");
    assert!(verdict.reason.unwrap().contains("70s after it (limit 60s)"));
}

#[test]
fn reaching_max_answers_a_breach_and_growth_during_a_fault_is_not_blamed() {
    // A stall (fault over 20..80) grows the backlog while the fleet sits at max 4.
    let len = 120;
    let mut v = RunView::default();
    v.probes.insert(
        "depth".into(),
        series(len, |s| match s {
            20..=80 => 50.0 * (s - 19) as f64,
            81..=90 => 400.0,
            _ => 0.0,
        }),
    );
    v.probes.insert(
        "workers".into(),
        series(len, |s| if s >= 25 { 4.0 } else { 1.0 }),
    );
    v.faults.push(FaultWindow {
        id: "stall#0".into(),
        name: "stall".into(),
        kind: "stall-consumers".into(),
        start: 20.0,
        end: Some(80.0),
        targets: Vec::new(),
    });
    let spec = ScaleOut {
        within: Duration::from_secs(30),
        ..capacity(Some(4))
    };
    let verdict = spec.evaluate("s", &v);
    assert_eq!(verdict.status, Status::Pass, "{verdict:?}");
    // Without the fault, 60 s at max with a growing backlog is a capped fleet.
    v.faults.clear();
    let verdict = spec.evaluate("s", &v);
    assert_eq!(verdict.status, Status::Fail, "{verdict:?}");
    assert!(verdict.reason.unwrap().contains("capped at 4 instances"));
}

/// A stall holds the backlog up whatever the capacity; excusing its seconds let a fixed
/// fleet pass (caught by the fixed-fleet scenario of tests/analyze.rs). With `max`
/// declared, a healthy fleet answers during the stall by reaching it.
#[test]
fn a_stall_does_not_excuse_a_fleet_that_never_grew() {
    let len = 120;
    let mut v = RunView::default();
    v.probes.insert(
        "depth".into(),
        series(len, |s| if (20..58).contains(&s) { 600.0 } else { 0.0 }),
    );
    v.probes.insert("workers".into(), series(len, |_| 1.0));
    v.faults.push(FaultWindow {
        id: "stall#0".into(),
        name: "stall".into(),
        kind: "stall-consumers".into(),
        start: 20.0,
        end: Some(50.0),
        targets: Vec::new(),
    });
    let spec = ScaleOut {
        within: Duration::from_secs(15),
        ..capacity(Some(4))
    };
    assert_eq!(spec.evaluate("s", &v).status, Status::Fail);
    // The healthy fleet reaches its max 5 s into the stall.
    v.probes.insert(
        "workers".into(),
        series(len, |s| if s >= 25 { 4.0 } else { 1.0 }),
    );
    let verdict = spec.evaluate("s", &v);
    assert_eq!(verdict.status, Status::Pass, "{verdict:?}");
}

#[test]
fn without_activities_the_rise_comes_from_the_instance_probe() {
    let mut v = view(Some(40), 120);
    v.activities = None;
    let verdict = spec().evaluate("s", &v);
    assert_eq!(verdict.status, Status::Pass, "{verdict:?}");
    assert_eq!(verdict.figures["capacity_rise_s"], 26.0.into());
    assert_eq!(
        verdict.figures["activities_source"],
        "probe `workers`".into()
    );
}
