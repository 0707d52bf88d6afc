//! Tests of the sandbox configuration.

use super::*;

#[test]
fn processing_time_parses_both_terms_in_any_order() {
    let p: ProcessingTime = "20ms + 5ms/MiB".parse().unwrap();
    assert_eq!(p.base, Duration::from_millis(20));
    assert_eq!(p.per_mib, Duration::from_millis(5));
    let q: ProcessingTime = "5ms/MiB+20ms".parse().unwrap();
    assert_eq!(p, q);
    let only: ProcessingTime = "1s".parse().unwrap();
    assert_eq!(
        (only.base, only.per_mib),
        (Duration::from_secs(1), Duration::ZERO)
    );
    let kib: ProcessingTime = "1us/KiB".parse().unwrap();
    assert_eq!(kib.per_mib, Duration::from_micros(1024));
}

#[test]
fn processing_time_errors_say_what_is_wrong() {
    assert_eq!(
        "".parse::<ProcessingTime>(),
        Err(ProcessingTimeError::Empty)
    );
    let e = "20 + 5ms/MiB".parse::<ProcessingTime>().unwrap_err();
    assert!(e.to_string().contains("`20` is not a duration"), "{e}");
    let e = "5ms/MB".parse::<ProcessingTime>().unwrap_err();
    assert_eq!(e, ProcessingTimeError::BadUnit("MB".into()));
    let e = "5ms + 6ms".parse::<ProcessingTime>().unwrap_err();
    assert!(matches!(e, ProcessingTimeError::Repeated(_)), "{e}");
}

#[test]
fn processing_time_scales_with_size_and_jitter() {
    let p: ProcessingTime = "20ms + 10ms/MiB".parse().unwrap();
    assert_eq!(p.for_size(0, 0.5, 1.0), Duration::from_millis(30));
    assert_eq!(p.for_size(2 << 20, 0.0, 1.0), Duration::from_millis(40));
    assert_eq!(p.for_size(1 << 20, 0.1, -1.0), Duration::from_millis(27));
    let round_trip: ProcessingTime = p.to_string().parse().unwrap();
    assert_eq!(round_trip, p);
}

#[test]
fn empty_file_is_the_default_and_printing_reads_back() {
    let config = SandboxConfig::from_toml("", "t").unwrap();
    assert_eq!(config, SandboxConfig::default());
    for name in Arch::ALL
        .iter()
        .map(|a| a.name())
        .chain(Variant::ALL.iter().map(|v| v.name()))
    {
        let config = SandboxConfig::for_arch(name.parse().unwrap());
        let text = config.to_toml();
        assert_eq!(
            SandboxConfig::from_toml(&text, "t").unwrap(),
            config,
            "{text}"
        );
    }
}

#[test]
fn broken_names_are_queued_with_one_flaw() {
    let c = SandboxConfig::for_arch("no-health-checks".parse().unwrap());
    assert_eq!(c.arch, Arch::Queued);
    assert!(!c.web.health_check.enabled);
    let c = SandboxConfig::for_arch("fixed-fleet".parse().unwrap());
    assert_eq!(c.workers.policy, Policy::Fixed);
    let c = SandboxConfig::for_arch("ack-before-process".parse().unwrap());
    assert_eq!(c.workers.ack, Ack::BeforeProcess);
    let c = SandboxConfig::for_arch("lossy-queue".parse().unwrap());
    assert_eq!(
        (c.queue.capacity, c.queue.overflow),
        (Some(LOSSY_QUEUE_DEFAULT_CAPACITY), Overflow::Drop)
    );
    let c = SandboxConfig::for_arch("capped-fleet".parse().unwrap());
    assert_eq!((c.workers.min, c.workers.max), (0, CAPPED_FLEET_MAX));
    assert_eq!(c.workers.policy, WorkersConfig::default().policy);
    let c = SandboxConfig::for_arch("slow-scaler".parse().unwrap());
    assert_eq!(c.workers.warmup, SLOW_SCALER_WARMUP);
    let c = SandboxConfig::for_arch("flapping".parse().unwrap());
    assert_eq!(
        (c.workers.scale_out_cooldown, c.workers.scale_in_cooldown),
        (Duration::ZERO, Duration::ZERO)
    );
    let c = SandboxConfig::for_arch("tiered".parse().unwrap());
    assert_eq!((c.arch, c.variant), (Arch::Tiered, None));
    let e = "queud".parse::<ArchChoice>().unwrap_err();
    assert!(e.contains("expected one of: queued, tiered"), "{e}");
}

#[test]
fn a_variant_in_a_file_combines_with_another_arch() {
    let c =
        SandboxConfig::from_toml("arch = \"tiered\"\nvariant = \"no-health-checks\"", "t").unwrap();
    assert_eq!(c.arch, Arch::Tiered);
    assert!(!c.web.health_check.enabled);
}

#[test]
fn unknown_fields_and_bad_values_are_all_reported() {
    let e = SandboxConfig::from_toml("[web]\ninstancs = 3", "f.toml").unwrap_err();
    let text = e.to_string();
    assert!(text.starts_with("f.toml:"), "{text}");
    assert!(text.contains("instancs"), "{text}");
    let e = SandboxConfig::from_toml(
        "jitter = 2.0\n[workers]\nmin = 5\nmax = 2\n[queue]\nvisibility_timeout = \"1500ms\"",
        "f.toml",
    )
    .unwrap_err();
    let ConfigError::Invalid(problems) = e else {
        panic!("{e}")
    };
    assert_eq!(problems.len(), 4, "{problems:?}");
    let e = SandboxConfig::from_toml(
        "drain_timeout = \"10s\"\n[workers]\nwait_time = \"12s\"",
        "f.toml",
    )
    .unwrap_err();
    assert!(
        e.to_string()
            .contains("workers.wait_time (12s) must be shorter than drain_timeout (10s)"),
        "{e}"
    );
    let e = SandboxConfig::from_toml("processing = \"5ms/MB\"", "f.toml").unwrap_err();
    assert!(e.to_string().contains("unknown size unit `MB`"), "{e}");
}

#[test]
fn the_microservices_flaws_are_microservices_with_one_field_changed() {
    let good = SandboxConfig::for_arch("microservices".parse().unwrap());
    assert_eq!(good.arch, Arch::Microservices);
    let monolith = SandboxConfig::for_arch("distributed-monolith".parse().unwrap());
    assert_eq!(monolith.arch, Arch::Microservices);
    assert_eq!(monolith.services.upload.process, ProcessCall::Sync);
    assert!(monolith.workers.min >= 1, "process always answers calls");
    let shared = SandboxConfig::for_arch("shared-fleet".parse().unwrap());
    assert_eq!(shared.services.scaling, ScalingMode::Shared);
    assert_eq!(shared.services.upload.max, shared.workers.max);
    let no_timeouts = SandboxConfig::for_arch("no-timeouts".parse().unwrap());
    assert_eq!(no_timeouts.services.manage.store_timeout, None);
    assert_eq!(
        no_timeouts.services.upload.store_timeout, good.services.upload.store_timeout,
        "upload keeps its timeout"
    );
}

#[test]
fn bad_service_settings_are_all_reported_by_field() {
    let text = r#"
arch = "microservices"
[services.upload]
min = 3
desired = 2
[services.manage]
store_timeout = "0s"
slots = 0
[web]
tls = true
"#;
    let e = SandboxConfig::from_toml(text, "t").unwrap_err().to_string();
    assert!(e.contains("services.upload: min <= desired <= max"), "{e}");
    assert!(
        e.contains("services.manage.store_timeout must be positive"),
        "{e}"
    );
    assert!(
        e.contains("services.manage.slots must be at least 1"),
        "{e}"
    );
    assert!(
        e.contains("web.tls is not supported with arch microservices"),
        "{e}"
    );
}
