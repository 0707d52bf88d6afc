use std::path::Path;

use super::*;

fn parse_str(text: &str) -> Result<Experiment, Diagnostics> {
    let files = Embedded(&[(
        "profiles/p.toml",
        "name = \"p\"\n[[stream]]\nname = \"s\"\nkind = \"event\"\nrequest = { path = \"/e\" }\nbody = { template = \"{id}\" }\nstages = [ { for = \"10s\", rate = \"10/s\" }, { for = \"20s\", rate = \"20/s\" } ]\n",
    )]);
    parse(text, Path::new("chaos/x.toml"), &files)
}

const MINIMAL: &str = r#"
name = "x"
profile = "../profiles/p.toml"
[target.sandbox]
"#;

#[test]
fn a_minimal_experiment_has_defaults() {
    let e = parse_str(MINIMAL).unwrap();
    assert_eq!(e.name, "x");
    assert_eq!(e.profile.streams.len(), 1);
    assert!(matches!(e.target, TargetSpec::Sandbox(_)));
    assert_eq!(e.cooldown, Cooldown::default());
    assert!(e.plan.occurrences.is_empty());
}

#[test]
fn phases_resolve_against_the_profile() {
    let e = parse_str(&format!(
        "{MINIMAL}\n[[fault]]\nname = \"d\"\ntype = \"delay-queue\"\nat = {{ phase = \"stages[1]\", offset = \"2s\" }}\nduration = \"1s\"\nqueue = \"q\"\ndelay = \"1s\"\n"
    ))
    .unwrap();
    assert_eq!(e.plan.occurrences[0].start, Duration::from_secs(12));
    let e = parse_str(&format!(
        "{MINIMAL}\n[[fault]]\nname = \"d\"\ntype = \"delay-queue\"\nat = {{ phase = \"s.stages[1]\" }}\nduration = \"1s\"\nqueue = \"q\"\ndelay = \"1s\"\n"
    ))
    .unwrap();
    assert_eq!(e.plan.occurrences[0].start, Duration::from_secs(10));
}

#[test]
fn every_error_is_reported_with_its_place() {
    let text = r#"
name = "x"
profile = "../profiles/p.toml"
tagret = 1
[target.sandbox]
arch = "queued"
[[fault]]
name = "d"
type = "delay-queue"
at = { phase = "stages[7]" }
duration = "1s"
queue = "q"
delay = "1s"
[[probe]]
name = "depth"
kind = "sqs"
queue = "jobs"
metric = "visible"
[[promise]]
type = "buffering"
fault = "stall"
depth = "dpeth"
[cooldown]
until = ["nope <= 0", "depth = 0"]
"#;
    let d = parse_str(text).unwrap_err().to_string();
    for wanted in [
        "unknown field `tagret`",
        "unknown phase `stages[7]`",
        "names fault `stall`",
        "names probe `dpeth`",
        "`depth = 0` is not",
        "x.toml:",
    ] {
        assert!(d.contains(wanted), "missing {wanted:?} in:\n{d}");
    }
}

#[test]
fn sandbox_and_system_keys_exclude_each_other() {
    let d = parse_str("name = \"x\"\nprofile = \"../profiles/p.toml\"\n[target]\nhttp = \"http://127.0.0.1:1\"\n[target.sandbox]\n")
        .unwrap_err()
        .to_string();
    assert!(d.contains("both `sandbox` and `http`"), "{d}");
    let d = parse_str("name = \"x\"\nprofile = \"../profiles/p.toml\"\n")
        .unwrap_err()
        .to_string();
    assert!(d.contains("no `[target]`"), "{d}");
    let d = parse_str(
        "name = \"x\"\nprofile = \"../profiles/missing.toml\"\n[target]\nhttp = \"ftp://x\"\n",
    )
    .unwrap_err()
    .to_string();
    assert!(d.contains("cannot read profile"), "{d}");
    assert!(d.contains("http:// or https://"), "{d}");
}

#[test]
fn profiles_merge_and_stream_names_stay_unique() {
    let d = parse_str("name = \"x\"\nprofiles = [\"../profiles/p.toml\", \"../profiles/p.toml\"]\n[target.sandbox]\n")
        .unwrap_err()
        .to_string();
    assert!(d.contains("stream `s` is in two profiles"), "{d}");
}

#[test]
fn a_bad_sandbox_architecture_is_named() {
    let d = parse_str(&format!("{MINIMAL}arch = \"queud\"\n"))
        .unwrap_err()
        .to_string();
    assert!(d.contains("unknown variant `queud`"), "{d}");
    assert!(d.contains("x.toml:5:"), "{d}");
}

#[test]
fn ledger_promises_on_a_system_need_a_completion_source() {
    let system =
        "name = \"x\"\nprofile = \"../profiles/p.toml\"\n[target]\nhttp = \"http://127.0.0.1:1\"\n";
    let promises = "[[promise]]\ntype = \"no-loss\"\n[[promise]]\nname = \"e2e\"\ntype = \"threshold\"\nchecks = [\"e2e_p99 < 30s\"]\n[[promise]]\nname = \"fast\"\ntype = \"threshold\"\nchecks = [\"p99 < 300ms\"]\n";
    let d = parse_str(&format!("{system}{promises}"))
        .unwrap_err()
        .to_string();
    assert!(
        d.contains("promise `no-loss` needs to know which messages"),
        "{d}"
    );
    assert!(d.contains("promise `e2e` needs"), "{d}");
    assert!(!d.contains("promise `fast`"), "{d}");
    assert!(d.contains("[[target.completions]]"), "{d}");
    // With a source it parses; the sandbox brings its own.
    parse_str(&format!(
        "{system}[[target.completions]]\nkind = \"http\"\nurl = \"http://127.0.0.1:1/done\"\n{promises}"
    ))
    .unwrap();
    parse_str(&format!("{MINIMAL}{promises}")).unwrap();
}

#[test]
fn an_unknown_probe_in_cooldown_points_at_its_condition() {
    let text = format!(
        "{MINIMAL}[[probe]]\nname = \"depth\"\nkind = \"sqs\"\nqueue = \"q\"\nmetric = \"visible\"\n\
         [cooldown]\nuntil = [\"depth <= 0\", \"wokers <= 0\"]\n"
    );
    let d = parse_str(&text).unwrap_err().to_string();
    // Line 11, column 24: the second condition's string, not the `[cooldown]` header.
    assert!(d.contains("x.toml:11:24"), "{d}");
    assert!(d.contains("names probe `wokers`"), "{d}");
}

#[test]
fn a_cooldown_shorter_than_a_scale_in_window_is_refused() {
    let probes = "[[probe]]\nname = \"depth\"\nkind = \"sqs\"\nqueue = \"q\"\nmetric = \"visible\"\n\
                  [[probe]]\nname = \"n\"\nkind = \"ec2\"\ninstances = { asg = \"w\" }\n";
    let scale_in = |within: &str, after: &str| {
        format!(
            "[[promise]]\ntype = \"scale-in\"\ninstances = \"n\"\ndepth = \"depth\"\nwithin = \"{within}\"\n{after}"
        )
    };
    // Written max, shorter: the error points at it (line 20).
    let d = parse_str(&format!(
        "{MINIMAL}{probes}{}[cooldown]\nmax = \"60s\"\n",
        scale_in("90s", "")
    ))
    .unwrap_err()
    .to_string();
    assert!(d.contains("x.toml:20:7"), "{d}");
    assert!(
        d.contains("gives the fleet 1m30s after the backlog drains"),
        "{d}"
    );
    assert!(d.contains("at least 1m30s"), "{d}");
    // The default max (30s) is named as such.
    let d = parse_str(&format!("{MINIMAL}{probes}{}", scale_in("45s", "")))
        .unwrap_err()
        .to_string();
    assert!(d.contains("(the default `max`)"), "{d}");
    // Long enough, or measured from a fault's end: accepted.
    parse_str(&format!(
        "{MINIMAL}{probes}{}[cooldown]\nmax = \"90s\"\n",
        scale_in("90s", "")
    ))
    .unwrap();
    parse_str(&format!(
        "{MINIMAL}{probes}[[fault]]\nname = \"d\"\ntype = \"delay-queue\"\nat = {{ phase = \"stages[0]\" }}\nduration = \"1s\"\nqueue = \"q\"\ndelay = \"1s\"\n{}",
        scale_in("90s", "after = \"d\"\n")
    ))
    .unwrap();
}

#[test]
fn target_tls_files_are_checked_and_resolved_against_the_experiment() {
    let files = Embedded(&[
        (
            "profiles/p.toml",
            "name = \"p\"\n[[stream]]\nname = \"s\"\nkind = \"event\"\nrequest = { path = \"/e\" }\nbody = { template = \"{id}\" }\nstages = [ { for = \"10s\", rate = \"10/s\" } ]\n",
        ),
        ("chaos/ca.pem", "-----BEGIN CERTIFICATE-----\n"),
    ]);
    let system = "name = \"x\"\nprofile = \"../profiles/p.toml\"\n[target]\nhttp = \"https://127.0.0.1:8443\"\nhttp2 = true\n";
    let e = parse(
        &format!("{system}[target.tls]\nca_file = \"ca.pem\"\nserver_name = \"api.internal\"\n"),
        Path::new("chaos/x.toml"),
        &files,
    )
    .unwrap();
    let TargetSpec::System(t) = &e.target else {
        panic!("a system target")
    };
    assert!(t.http2);
    assert_eq!(t.tls.ca_file.as_deref(), Some(Path::new("chaos/ca.pem")));
    assert_eq!(t.tls.server_name.as_deref(), Some("api.internal"));
    let d = parse(
        &format!("{system}[target.tls]\nca_file = \"nope.pem\"\nclient_cert = \"ca.pem\"\ninsecure = true\n"),
        Path::new("chaos/x.toml"),
        &files,
    )
    .unwrap_err()
    .to_string();
    assert!(d.contains("`ca_file`: cannot read chaos/nope.pem"), "{d}");
    assert!(
        d.contains("only one of `client_cert` and `client_key`"),
        "{d}"
    );
    let d = parse(
        &format!("{system}[target.tls]\ninsecur = true\n"),
        Path::new("chaos/x.toml"),
        &files,
    )
    .unwrap_err()
    .to_string();
    assert!(d.contains("insecur"), "{d}");
    // The sandbox has its own TLS (`[web] tls`): `[target] tls` beside it is refused.
    let d = parse_str(&format!("{MINIMAL}[target.tls]\ninsecure = true\n"))
        .unwrap_err()
        .to_string();
    assert!(d.contains("both `sandbox` and `tls`"), "{d}");
}

#[test]
fn a_promise_cannot_read_a_cloudwatch_probe_of_minute_periods() {
    let probe = |period: &str| {
        format!(
            "[[probe]]\nname = \"age\"\nkind = \"cloudwatch\"\nnamespace = \"AWS/SQS\"\nmetric = \"ApproximateNumberOfMessagesVisible\"\ndimensions = {{ QueueName = \"q\" }}\nperiod = \"{period}\"\n\
             [[fault]]\nname = \"d\"\ntype = \"delay-queue\"\nat = \"2s\"\nduration = \"1s\"\nqueue = \"q\"\ndelay = \"1s\"\n\
             [[promise]]\ntype = \"buffering\"\nfault = \"d\"\ndepth = \"age\"\n"
        )
    };
    let d = parse_str(&format!("{MINIMAL}{}", probe("60s")))
        .unwrap_err()
        .to_string();
    assert!(
        d.contains("reads probe `age` second by second, and it has one value per 1m"),
        "{d}"
    );
    assert!(d.contains("period = \"1s\""), "{d}");
    // A high-resolution metric of 1 s periods is a per-second series.
    let e = parse_str(&format!("{MINIMAL}{}", probe("1s"))).unwrap();
    assert_eq!(
        e.probes[0].every,
        Duration::from_secs(60),
        "one call a minute by default"
    );
    // Bad keys are reported at their values.
    let d = parse_str(&format!(
        "{MINIMAL}[[probe]]\nname = \"x\"\nkind = \"cloudwatch\"\nnamespace = \"AWS/Lambda\"\nmetric = \"Throttles\"\nstat = \"Median\"\nperiod = \"90s\"\n"
    ))
    .unwrap_err()
    .to_string();
    assert!(d.contains("unknown statistic `Median`"), "{d}");
    assert!(
        d.contains("`period` must be 1s, 5s, 10s, 30s or whole minutes"),
        "{d}"
    );
}

#[test]
fn a_cumulative_cloudwatch_probe_of_minute_periods_can_feed_a_counter() {
    let gb = |extra: &str| {
        format!(
            "[[probe]]\nname = \"gb\"\nkind = \"cloudwatch\"\nnamespace = \"AWS/Lambda\"\nmetric = \"Duration\"\ndimensions = {{ FunctionName = \"f\" }}\n{extra}\n\
             [cooldown]\nmin = \"2m\"\nmax = \"2m\"\n\
             [[promise]]\ntype = \"idle\"\nwithin = \"2m\"\ngb_seconds = \"gb\"\n"
        )
    };
    let e = parse_str(&format!(
        "{MINIMAL}{}",
        gb("stat = \"Sum\"\nmissing = \"zero\"\nscale = 0.000125\ncumulative = true")
    ))
    .unwrap_or_else(|d| panic!("{d}"));
    match &e.probes[0].kind {
        crate::probe::spec::ProbeKind::CloudWatch(c) => {
            assert!(c.cumulative);
            assert_eq!(c.scaled(8000.0), 1.0);
        }
        other => panic!("{other:?}"),
    }
    // The same per-minute sums without `cumulative` are refused, with the way out.
    let d = parse_str(&format!("{MINIMAL}{}", gb("stat = \"Sum\"")))
        .unwrap_err()
        .to_string();
    assert!(d.contains("second by second"), "{d}");
    assert!(d.contains("`cumulative = true`"), "{d}");
    // A running total of maxima or averages means nothing; a scale must be positive.
    let d = parse_str(&format!(
        "{MINIMAL}{}",
        gb("stat = \"Maximum\"\ncumulative = true\nscale = 0")
    ))
    .unwrap_err()
    .to_string();
    assert!(d.contains("`Maximum` does not add up"), "{d}");
    assert!(d.contains("`scale` must be a number > 0, found 0"), "{d}");
}

const SWEEP_BASE: &str = r#"
name = "x"
profile = "../profiles/p.toml"
[target.sandbox]
arch = "event-driven"
[[target.sandbox.bus.embedded.rules]]
name = "r"
targets = [{ type = "function", name = "resize" }]
[[target.sandbox.bus.embedded.functions]]
name = "resize"
base = "20ms"
cpu = "100ms"
[[promise]]
name = "latency"
type = "threshold"
checks = ["error_rate < 1%", "e2e_p99 < 1s"]
[[promise]]
type = "no-loss"
"#;

#[test]
fn a_sweep_is_read_with_its_defaults_and_sets_the_memory_of_its_function() {
    let e = parse_str(&format!(
        "{SWEEP_BASE}[sweep]\nfunction = \"resize\"\nmemory_mb = [128, 1769, 10240]\npromise = \"latency\"\n"
    ))
    .unwrap();
    let s = e.sweep.clone().unwrap();
    assert_eq!(s.function, "resize");
    assert_eq!(s.memory_mb, [128, 1769, 10240]);
    assert_eq!(s.figure, "e2e_p99_ms", "the first latency check's figure");
    assert_eq!(s.price_per_gb_second, sweep::DEFAULT_PRICE_PER_GB_SECOND);
    assert_eq!(s.price_per_request, sweep::DEFAULT_PRICE_PER_REQUEST);
    let TargetSpec::Sandbox(mut sb) = e.target else {
        panic!("a sandbox target")
    };
    assert!(sweep::set_memory(&mut sb.config, "resize", 512));
    assert_eq!(sb.config.embedded_bus().functions[0].memory_mb, 512);
    assert!(!sweep::set_memory(&mut sb.config, "nope", 512));
}

#[test]
fn a_sweep_without_a_bus_section_sweeps_the_default_handler() {
    let e = parse_str(
        "name = \"x\"\nprofile = \"../profiles/p.toml\"\n[target.sandbox]\narch = \"event-driven\"\n[[promise]]\nname = \"l\"\ntype = \"threshold\"\nchecks = [\"p99 < 1s\"]\n[sweep]\nfunction = \"handler\"\nmemory_mb = [128, 256]\npromise = \"l\"\nprice_per_gb_second = 0.00001\nprice_per_request = 0\n",
    )
    .unwrap();
    let s = e.sweep.unwrap();
    assert_eq!((s.figure.as_str(), s.price_per_request), ("p99_ms", 0.0));
    let TargetSpec::Sandbox(mut sb) = e.target else {
        panic!("a sandbox target")
    };
    assert!(sweep::set_memory(&mut sb.config, "handler", 256));
    assert_eq!(sb.config.bus.embedded.unwrap().functions[0].memory_mb, 256);
}

#[test]
fn a_bad_sweep_is_refused_at_each_value_with_a_fix() {
    let text = format!(
        "{SWEEP_BASE}[sweep]\nfunction = \"resise\"\nmemory_mb = [128, 64, 128, 20000]\npromise = \"no-loss\"\nprice_per_request = -1.0\n"
    );
    let d = parse_str(&text).unwrap_err().to_string();
    let line = |needle: &str| text.lines().position(|l| l.starts_with(needle)).unwrap() + 1;
    for (want, at) in [
        (
            "function `resise`, which is not a function of the sandbox's bus",
            line("function"),
        ),
        ("memory size 64 MB is out of range", line("memory_mb")),
        ("lists 128 twice", line("memory_mb")),
        ("memory size 20000 MB is out of range", line("memory_mb")),
        (
            "`no-loss`, which is not a latency promise",
            line("promise ="),
        ),
        (
            "`price_per_request` must be a price",
            line("price_per_request"),
        ),
    ] {
        assert!(d.contains(want), "{want}: {d}");
        assert!(
            d.contains(&format!("x.toml:{at}:")),
            "{want} at line {at}: {d}"
        );
    }
    assert!(d.contains("did you mean `resize`?"), "{d}");
    assert!(d.contains("128 to 10240 MB"), "{d}");

    let d = parse_str(&format!(
        "{SWEEP_BASE}[sweep]\nfunction = \"resize\"\nmemory_mb = []\npromise = \"latncy\"\n"
    ))
    .unwrap_err()
    .to_string();
    assert!(d.contains("`memory_mb` is empty"), "{d}");
    assert!(d.contains("`latncy`, which is not a `[[promise]]`"), "{d}");
    assert!(d.contains("did you mean `latency`?"), "{d}");

    let d = parse_str(&format!("{SWEEP_BASE}[sweep]\nfunction = \"resize\"\n"))
        .unwrap_err()
        .to_string();
    assert!(d.contains("[sweep] has no `memory_mb`"), "{d}");
    assert!(d.contains("[sweep] has no `promise`"), "{d}");
}

#[test]
fn a_sweep_needs_the_sandboxs_own_functions() {
    let sweep = "[sweep]\nfunction = \"f\"\nmemory_mb = [128]\npromise = \"l\"\n[[promise]]\nname = \"l\"\ntype = \"threshold\"\nchecks = [\"p99 < 1s\"]\n";
    let d = parse_str(&format!(
        "name = \"x\"\nprofile = \"../profiles/p.toml\"\n[target]\nhttp = \"http://127.0.0.1:9\"\n{sweep}"
    ))
    .unwrap_err()
    .to_string();
    assert!(d.contains("[sweep] needs a `[target.sandbox]`"), "{d}");
    let d = parse_str(&format!("{MINIMAL}arch = \"queued\"\n{sweep}"))
        .unwrap_err()
        .to_string();
    assert!(
        d.contains("this sandbox (arch `queued`) runs no functions"),
        "{d}"
    );
}
