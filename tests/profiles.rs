//! Profiles: the shipped examples and the docs parse, and bad profiles get the right message at
//! the right place.

use std::path::{Path, PathBuf};
use std::time::Duration;

use proptest::prelude::*;
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use shakedown::config::diag::{Diagnostic, Diagnostics};
use shakedown::config::profile::{
    self, Arrival, BodySpec, Profile, SizeDist, StreamKind, Transport, UploadEncoding,
};
use shakedown::template::Fields;

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// Parses inline profile text as if it were `profiles/test.toml` (so body files resolve there).
fn parse(text: &str) -> Result<Profile, Diagnostics> {
    profile::parse(text, &root().join("profiles/test.toml"))
}

fn errors(text: &str) -> Vec<Diagnostic> {
    match parse(text) {
        Ok(profile) => panic!("expected errors, got {profile:#?}"),
        Err(diagnostics) => diagnostics.into_vec(),
    }
}

/// Asserts that one of the errors has `message` (a substring) at `line:column`, and returns it.
#[track_caller]
fn expect_error(text: &str, message: &str, line: usize, column: usize) -> Diagnostic {
    let all = errors(text);
    let found = all.iter().find(|d| d.message.contains(message));
    match found {
        Some(d) => {
            assert_eq!(
                (d.line, d.column),
                (line, column),
                "position of {message:?}\n{d}"
            );
            d.clone()
        }
        None => panic!(
            "no error containing {message:?}; got:\n{}",
            Diagnostics::new(all).unwrap()
        ),
    }
}

const HEAD: &str = "name = \"bad\"\n[[stream]]\nname = \"photos\"\n";

// --- the shipped profiles and the docs ----------------------------------------------------------

#[test]
fn every_shipped_profile_loads() {
    let mut count = 0;
    for entry in std::fs::read_dir(root().join("profiles")).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_some_and(|e| e == "toml") {
            if let Err(diagnostics) = profile::load(&path) {
                panic!("{diagnostics}");
            }
            count += 1;
        }
    }
    assert!(count >= 2, "found only {count} profiles");
}

/// The ```toml blocks of a markdown file.
fn toml_blocks(markdown: &str) -> Vec<(usize, String)> {
    let mut blocks = Vec::new();
    let mut current: Option<(usize, String)> = None;
    for (number, line) in markdown.lines().enumerate() {
        match &mut current {
            None if line.trim_start().starts_with("```toml") => {
                current = Some((number + 1, String::new()))
            }
            Some(_) if line.trim_start().starts_with("```") => blocks.extend(current.take()),
            Some((_, text)) => {
                text.push_str(line);
                text.push('\n');
            }
            None => {}
        }
    }
    blocks
}

#[test]
fn every_toml_block_in_the_docs_parses() {
    let docs = std::fs::read_to_string(root().join("docs/profiles.md")).unwrap();
    let blocks = toml_blocks(&docs);
    assert!(
        blocks.len() >= 3,
        "docs/profiles.md has only {} toml blocks",
        blocks.len()
    );
    for (line, block) in blocks {
        // A fragment made of streams gets a profile name in front of it.
        let text = if block.trim_start().starts_with("name") {
            block
        } else {
            format!("name = \"doc\"\n{block}")
        };
        if let Err(diagnostics) = parse(&text) {
            panic!("docs/profiles.md block at line {line} does not parse:\n{diagnostics}");
        }
    }
}

#[test]
fn uploads_profile_means_what_it_says() {
    let profile = profile::load(&root().join("profiles/uploads.toml")).unwrap();
    assert_eq!(profile.seed, Some(42));
    assert_eq!(profile.duration(), Duration::from_secs(100));
    let photos = profile.stream("photos").unwrap();
    assert_eq!(photos.kind, StreamKind::Upload);
    assert_eq!(photos.arrival, Arrival::Poisson);
    assert!(matches!(
        &photos.body,
        BodySpec::Upload { size: SizeDist::LogNormal { median: 819_200, p99: 12_582_912 }, encoding: UploadEncoding::Raw, content_type }
            if content_type == "image/jpeg"
    ));
    assert_eq!(photos.rate_at(50.0), 50.0);
    assert!((photos.rate_at(10.0) - 25.5).abs() < 1e-9);
    assert_eq!(
        photos.rate_at(90.0),
        25.0,
        "the ramp down starts from the peak"
    );
    assert_eq!(photos.rate_at(100.0), 0.0);
    let videos = profile.stream("videos").unwrap();
    assert_eq!(videos.request.method, http::Method::POST);
    assert!(
        matches!(&videos.body, BodySpec::Upload { encoding: UploadEncoding::Multipart { field, .. }, .. } if field == "file")
    );
}

#[test]
fn events_profile_renders_valid_json() {
    let profile = profile::load(&root().join("profiles/events.toml")).unwrap();
    let orders = profile.stream("orders").unwrap();
    assert_eq!(
        orders.transport,
        Transport::Sqs {
            queue: "jobs".to_string()
        }
    );
    let mut rng = ChaCha8Rng::seed_from_u64(3);
    for stream in &profile.streams {
        let BodySpec::Template {
            template,
            content_type,
        } = &stream.body
        else {
            panic!("{stream:?}")
        };
        assert_eq!(content_type, "application/json");
        let fields = Fields {
            id: "abc",
            seq: 9,
            stream: &stream.name,
            now_ms: 1_700_000_000_000,
        };
        let body = template.render_to_string(&fields, &mut rng);
        let json: serde_json::Value =
            serde_json::from_str(&body).unwrap_or_else(|e| panic!("{e}: {body}"));
        assert_eq!(json["id"], "abc");
    }
}

#[test]
fn defaults_fill_in() {
    let profile = parse(
        "name = \"d\"\n[[stream]]\nname = \"u\"\nkind = \"upload\"\nsize = { dist = \"fixed\", size = 1024 }\nstages = [ { for = \"1m\", rate = \"1/s\" } ]\n\
         [[stream]]\nname = \"e\"\nkind = \"event\"\nbody = { template = \"{}\" }\nstages = [ { for = \"2m\", rate = \"1/s\" } ]\n",
    )
    .unwrap();
    assert_eq!(
        profile.settings,
        shakedown::config::profile::Settings::default()
    );
    assert_eq!(profile.duration(), Duration::from_secs(120));
    let upload = &profile.streams[0];
    assert_eq!(upload.request.method, http::Method::PUT);
    assert_eq!(upload.request.path.source(), "/upload/{id}");
    assert_eq!(upload.arrival, Arrival::Uniform);
    assert_eq!(upload.transport, Transport::Http);
    assert!(
        matches!(&upload.body, BodySpec::Upload { content_type, .. } if content_type == "application/octet-stream")
    );
    let event = &profile.streams[1];
    assert_eq!(event.request.method, http::Method::POST);
    assert_eq!(event.request.path.as_static(), Some("/events"));
}

#[test]
fn a_ramp_starts_from_the_previous_stage() {
    let profile = parse(&format!(
        "{HEAD}kind = \"upload\"\nsize = {{ dist = \"fixed\", size = \"1KiB\" }}\n\
         stages = [ {{ for = \"10s\", rate = \"50/s\" }}, {{ for = \"10s\", to = \"150/s\" }}, {{ for = \"5s\", from = \"10/s\", to = \"0/s\" }} ]\n"
    ))
    .unwrap();
    let stream = &profile.streams[0];
    let ends: Vec<(f64, f64)> = stream.stages.iter().map(|s| (s.from, s.to)).collect();
    assert_eq!(ends, [(50.0, 50.0), (50.0, 150.0), (10.0, 0.0)]);
    assert_eq!(stream.expected_requests(), 500.0 + 1000.0 + 25.0);
    assert!((stream.mean_rate() - 1525.0 / 25.0).abs() < 1e-9);
    assert_eq!(stream.peak_rate(), 150.0);
    assert_eq!(stream.rate_at(15.0), 100.0);
    assert_eq!(stream.rate_at(-1.0), 0.0);
}

#[test]
fn size_sampling_follows_the_distribution() {
    let mut rng = ChaCha8Rng::seed_from_u64(11);
    let lognormal = SizeDist::LogNormal {
        median: 800 << 10,
        p99: 12 << 20,
    };
    let mut draws: Vec<u64> = (0..20_000).map(|_| lognormal.sample(&mut rng)).collect();
    draws.sort_unstable();
    let median = draws[draws.len() / 2] as f64;
    let p99 = draws[draws.len() * 99 / 100] as f64;
    assert!(
        (median / (800 << 10) as f64 - 1.0).abs() < 0.05,
        "median {median}"
    );
    assert!((p99 / (12 << 20) as f64 - 1.0).abs() < 0.15, "p99 {p99}");
    assert!(*draws.last().unwrap() <= lognormal.max_bytes());

    let table = SizeDist::Table(vec![
        profile::SizeClass {
            name: "small".into(),
            weight: 70.0,
            dist: SizeDist::Fixed(1),
        },
        profile::SizeClass {
            name: "big".into(),
            weight: 30.0,
            dist: SizeDist::Uniform { min: 100, max: 200 },
        },
    ]);
    let small = (0..10_000).filter(|_| table.sample(&mut rng) == 1).count();
    assert!((6_700..7_300).contains(&small), "{small}");
    assert_eq!(table.max_bytes(), 200);
}

#[test]
fn missing_file_is_a_diagnostic_naming_it() {
    let err = profile::load(Path::new("profiles/does-not-exist.toml")).unwrap_err();
    let text = err.to_string();
    assert!(
        text.contains("cannot read profiles/does-not-exist.toml"),
        "{text}"
    );
    assert!(
        text.ends_with("1 error in profiles/does-not-exist.toml"),
        "{text}"
    );
}

// --- bad profiles: message, line and column ------------------------------------------------------

#[test]
fn unknown_field_in_an_inline_table_names_the_closest_field() {
    let text = "name = \"bad\"\n\n[[stream]]\nname = \"photos\"\nkind = \"upload\"\nsize = { dist = \"fixed\", size = \"1MiB\" }\nrequest = { method = \"PUT\", pth = \"/x\" }\nstages = [ { for = \"1s\", rate = \"1/s\" } ]\n";
    let d = expect_error(
        text,
        "unknown field `pth` in stream \"photos\".request",
        7,
        29,
    );
    assert_eq!(d.hint.as_deref(), Some("did you mean `path`?"));
}

#[test]
fn every_unknown_field_is_reported_and_semantic_errors_too() {
    let text = "name = \"bad\"\nsed = 3\n[[stream]]\nname = \"photos\"\nkind = \"upload\"\nsize = { dist = \"fixed\", size = \"1MiB\" }\nrequest = { method = \"PUT\", pth = \"/x\", hedaers = {} }\n\
                stages = [ { for = \"1s\", rat = \"1/s\" } ]\narival = \"poisson\"\n";
    let all = errors(text);
    let messages: Vec<&str> = all.iter().map(|d| d.message.as_str()).collect();
    assert_eq!(
        messages,
        [
            "unknown field `sed` at the top level",
            "unknown field `pth` in stream \"photos\".request",
            "unknown field `hedaers` in stream \"photos\".request",
            "a stage needs `rate` (constant) or `to` (a ramp)",
            "unknown field `rat` in stream \"photos\".stages[0]",
            "unknown field `arival` in stream \"photos\"",
        ],
    );
    let hints: Vec<Option<&str>> = all.iter().map(|d| d.hint.as_deref()).collect();
    assert_eq!(hints[0], Some("did you mean `seed`?"));
    assert_eq!(hints[2], Some("did you mean `headers`?"));
    assert_eq!(hints[4], Some("did you mean `rate`?"));
    assert_eq!(hints[5], Some("did you mean `arrival`?"));
}

#[test]
fn unknown_table_header_is_reported_without_cascading() {
    let text = "name = \"bad\"\n[[strem]]\nname = \"x\"\n";
    let all = errors(text);
    assert_eq!(all[0].message, "unknown field `strem` at the top level");
    assert_eq!((all[0].line, all[0].column), (2, 3));
    assert_eq!(all[0].hint.as_deref(), Some("did you mean `stream`?"));
    assert_eq!(all[1].message, "the profile has no streams");
    assert_eq!(all.len(), 2);
}

#[test]
fn rate_that_is_not_a_rate() {
    let text = format!(
        "{HEAD}kind = \"upload\"\nsize = {{ dist = \"fixed\", size = 1 }}\nstages = [ {{ for = \"30s\", rate = \"fast\" }} ]\n"
    );
    let d = expect_error(
        &text,
        "expected a rate like `400/s` or `50/m`, found `fast`",
        6,
        34,
    );
    assert!(d.hint.unwrap().contains("/s"));
}

#[test]
fn zero_and_negative_durations() {
    let text = format!(
        "{HEAD}kind = \"upload\"\nsize = {{ dist = \"fixed\", size = 1 }}\nstages = [ {{ for = \"0s\", rate = \"1/s\" }}, {{ for = \"-5s\", rate = \"1/s\" }} ]\n"
    );
    expect_error(&text, "`for` must be more than zero, found `0s`", 6, 20);
    expect_error(&text, "a duration must not be negative, found `-5s`", 6, 50);
}

#[test]
fn lognormal_p99_must_exceed_median() {
    let text = format!(
        "{HEAD}kind = \"upload\"\nsize = {{ dist = \"lognormal\", median = \"2MiB\", p99 = \"1MiB\" }}\nstages = [ {{ for = \"1s\", rate = \"1/s\" }} ]\n"
    );
    expect_error(
        &text,
        "`p99` (1MiB) must be larger than `median` (2MiB)",
        5,
        53,
    );
}

#[test]
fn uniform_min_above_max() {
    let text = format!(
        "{HEAD}kind = \"upload\"\nsize = {{ dist = \"uniform\", min = \"5MiB\", max = \"1MiB\" }}\nstages = [ {{ for = \"1s\", rate = \"1/s\" }} ]\n"
    );
    expect_error(&text, "`min` (5MiB) is larger than `max` (1MiB)", 5, 34);
}

#[test]
fn no_streams_at_all() {
    let d = expect_error(
        "name = \"empty\"\nseed = 1\n",
        "the profile has no streams",
        3,
        1,
    );
    assert!(d.hint.unwrap().contains("[[stream]]"));
}

#[test]
fn duplicate_stream_names() {
    let stream = "[[stream]]\nname = \"a\"\nkind = \"event\"\nbody = { template = \"{}\" }\nstages = [ { for = \"1s\", rate = \"1/s\" } ]\n";
    let text = format!("name = \"dup\"\n{stream}{stream}");
    let d = expect_error(&text, "duplicate stream name \"a\"", 8, 8);
    assert!(d.hint.unwrap().contains("line 3"));
}

#[test]
fn empty_stage_list() {
    let text =
        format!("{HEAD}kind = \"upload\"\nsize = {{ dist = \"fixed\", size = 1 }}\nstages = []\n");
    expect_error(&text, "`stages` is empty", 6, 10);
}

#[test]
fn weights_must_be_positive() {
    let text = format!(
        "{HEAD}kind = \"upload\"\nstages = [ {{ for = \"1s\", rate = \"1/s\" }} ]\n\
         size = {{ dist = \"table\", classes = [ {{ name = \"a\", weight = 0, size = 1 }}, {{ name = \"b\", weight = -2, size = 1 }} ] }}\n"
    );
    expect_error(&text, "`weight` must be a positive number, found 0", 6, 61);
    expect_error(&text, "`weight` must be a positive number, found -2", 6, 99);
}

#[test]
fn event_stream_with_an_upload_size() {
    let text = format!(
        "{HEAD}kind = \"event\"\nbody = {{ template = \"{{}}\" }}\nsize = {{ dist = \"fixed\", size = \"1MiB\" }}\nstages = [ {{ for = \"1s\", rate = \"1/s\" }} ]\n"
    );
    let d = expect_error(&text, "an event stream has no `size`", 6, 8);
    assert!(d.hint.unwrap().contains("kind = \"upload\""));
}

#[test]
fn template_errors_point_inside_the_string() {
    let text = format!(
        "{HEAD}kind = \"event\"\nrequest = {{ path = \"/e/{{idd}}\" }}\nbody = {{ template = '{{\"a\":\"{{id' }}\nstages = [ {{ for = \"1s\", rate = \"1/s\" }} ]\n"
    );
    let d = expect_error(
        &text,
        "unknown template field `{idd}` (did you mean `{id}`?)",
        5,
        25,
    );
    assert_eq!(d.width, 3);
    expect_error(&text, "unclosed `{`", 6, 28);
}

#[test]
fn template_error_in_a_body_file() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("bad.json"), "{\n  \"id\": \"{idd}\"\n}\n").unwrap();
    let text = format!(
        "{HEAD}kind = \"event\"\nbody = {{ file = \"bad.json\" }}\nstages = [ {{ for = \"1s\", rate = \"1/s\" }} ]\n"
    );
    let all = profile::parse(&text, &dir.path().join("p.toml"))
        .unwrap_err()
        .into_vec();
    assert_eq!((all[0].line, all[0].column), (5, 17));
    assert!(
        all[0]
            .message
            .contains("bad.json:2:11: unknown template field `{idd}`"),
        "{}",
        all[0].message
    );
}

#[test]
fn missing_body_file() {
    let text = format!(
        "{HEAD}kind = \"event\"\nbody = {{ file = \"events/nope.json\" }}\nstages = [ {{ for = \"1s\", rate = \"1/s\" }} ]\n"
    );
    let d = expect_error(&text, "cannot read body file `events/nope.json`", 5, 17);
    assert!(
        d.hint
            .unwrap()
            .contains("relative to the profile's directory")
    );
}

#[test]
fn unknown_method_and_invalid_header_name() {
    let text = format!(
        "{HEAD}kind = \"upload\"\nsize = {{ dist = \"fixed\", size = 1 }}\nstages = [ {{ for = \"1s\", rate = \"1/s\" }} ]\n\
         request = {{ method = \"PTU\", headers = {{ \"x a\" = \"1\" }} }}\n"
    );
    let d = expect_error(&text, "unknown HTTP method `PTU`", 7, 22);
    assert_eq!(d.hint.as_deref(), Some("did you mean `PUT`?"));
    expect_error(&text, "invalid header name `x a`", 7, 41);
}

#[test]
fn misspelt_kind() {
    let text =
        format!("{HEAD}kind = \"uplaod\"\nstages = [ {{ for = \"1s\", rate = \"1/s\" }} ]\n");
    let d = expect_error(&text, "unknown stream kind `uplaod`", 4, 8);
    assert_eq!(d.hint.as_deref(), Some("did you mean `upload`?"));
}

#[test]
fn sqs_without_a_queue() {
    let text = format!(
        "{HEAD}kind = \"event\"\ntransport = \"sqs\"\nbody = {{ template = \"{{}}\" }}\nstages = [ {{ for = \"1s\", rate = \"1/s\" }} ]\n"
    );
    let d = expect_error(&text, "`transport = \"sqs\"` needs a `queue`", 5, 13);
    assert!(d.hint.unwrap().contains("queue = "));
}

#[test]
fn eventbridge_streams_take_their_keys_and_need_an_id_in_an_object_detail() {
    let stream = |keys: &str, body: &str| {
        format!(
            "{HEAD}kind = \"event\"\ntransport = \"eventbridge\"\n{keys}body = {{ template = '{body}' }}\nstages = [ {{ for = \"1s\", rate = \"1/s\" }} ]\n"
        )
    };
    // Defaults: the default bus, source `shakedown`, the stream's name as detail type.
    let p = parse(&stream("", r#"{"id":"{id}"}"#)).unwrap();
    assert_eq!(
        p.streams[0].transport,
        Transport::EventBridge {
            bus: "default".into(),
            source: "shakedown".into(),
            detail_type: "photos".into()
        }
    );
    let d = expect_error(
        &stream("", r#"{"n":{seq}}"#),
        "an EventBridge event carries its id in its detail, and this body has no `{id}`",
        6,
        8,
    );
    assert!(d.hint.unwrap().contains(r#""id":"{id}""#));
    expect_error(
        &stream("", "id={id}"),
        "an EventBridge event's detail must be a JSON object",
        6,
        8,
    );
    expect_error(
        &stream("queue = \"q\"\n", r#"{"id":"{id}"}"#),
        "`queue` only applies to `transport = \"sqs\"`",
        6,
        9,
    );
    let sqs = format!(
        "{HEAD}kind = \"event\"\ntransport = \"sqs\"\nqueue = \"q\"\nbus = \"b\"\nbody = {{ template = \"{{}}\" }}\nstages = [ {{ for = \"1s\", rate = \"1/s\" }} ]\n"
    );
    expect_error(
        &sqs,
        "`bus` only applies to `transport = \"eventbridge\"`",
        7,
        7,
    );
    let upload = format!(
        "{HEAD}kind = \"upload\"\ntransport = \"eventbridge\"\nsize = {{ dist = \"fixed\", size = 1 }}\nstages = [ {{ for = \"1s\", rate = \"1/s\" }} ]\n"
    );
    expect_error(
        &upload,
        "uploads go over HTTP; `transport = \"eventbridge\"` is for `kind = \"event\"`",
        5,
        13,
    );
}

#[test]
fn rate_with_to_is_an_error() {
    let text = format!(
        "{HEAD}kind = \"upload\"\nsize = {{ dist = \"fixed\", size = 1 }}\nstages = [ {{ for = \"1s\", rate = \"1/s\", to = \"5/s\" }} ]\n"
    );
    expect_error(
        &text,
        "either `rate` (constant) or `to` (a ramp), not both",
        6,
        45,
    );
}

#[test]
fn wrong_type_stops_with_a_readable_message() {
    let d = expect_error(
        "name = \"x\"\nmax_in_flight = \"lots\"\n",
        "`max_in_flight` must be a whole number, got the string \"lots\"",
        2,
        17,
    );
    assert!(!d.message.contains("invalid type"), "{}", d.message);
}

#[test]
fn syntax_error_is_reported_with_its_position() {
    let all = errors("name = \"x\"\n[[stream]\n");
    assert_eq!(all.len(), 1);
    assert_eq!(all[0].line, 2);
}

#[test]
fn rendered_report_lists_every_error_and_counts_them() {
    let text = "name = \"bad\"\n[[stream]]\nname = \"photos\"\nkind = \"uplaod\"\nrequest = { method = \"PUT\", pth = \"/x\" }\nstages = [ { for = \"0s\", rate = \"fast\" } ]\n";
    let report = profile::parse(text, Path::new("profiles/bad.toml"))
        .unwrap_err()
        .to_string();
    println!("{report}");
    assert!(report.contains("error: unknown field `pth` in stream \"photos\".request\n  --> profiles/bad.toml:5:29\n"), "{report}");
    assert!(report.contains(" 6 | stages = [ { for = \"0s\", rate = \"fast\" } ]\n   |                                 ^^^^^^\n"), "{report}");
    assert!(
        report.ends_with("4 errors in profiles/bad.toml"),
        "{report}"
    );
}

// --- no panics, whatever the input --------------------------------------------------------------

proptest! {
    #![proptest_config(ProptestConfig { cases: 300, ..ProptestConfig::default() })]

    #[test]
    fn arbitrary_text_never_panics(text in "\\PC{0,200}") {
        let _ = parse(&text);
    }

    #[test]
    fn tomlish_text_never_panics(text in "[a-z_\\[\\]{}=\"',. \n0-9/#]{0,200}") {
        let _ = parse(&text);
    }

    #[test]
    fn mutated_profiles_never_panic(
        which in 0usize..2,
        cut in any::<prop::sample::Index>(),
        len in 0usize..20,
        insert in "[a-z{}\\[\\]=\",. \n#'0-9]{0,12}",
    ) {
        let file = ["profiles/uploads.toml", "profiles/events.toml"][which];
        let original = std::fs::read_to_string(root().join(file)).unwrap();
        let start = cut.index(original.len());
        let start = (0..=start).rev().find(|&i| original.is_char_boundary(i)).unwrap_or(0);
        let end = (start + len).min(original.len());
        let end = (end..=original.len()).find(|&i| original.is_char_boundary(i)).unwrap_or(original.len());
        let mutated = format!("{}{}{}", &original[..start], insert, &original[end..]);
        if let Err(diagnostics) = parse(&mutated) {
            // Every diagnostic renders, and points inside the text.
            let _ = diagnostics.to_string();
            for d in &diagnostics {
                prop_assert!(d.line <= mutated.lines().count() + 1);
            }
        }
    }
}

#[test]
fn a_flood_of_unknown_fields_stops_with_a_note() {
    let text: String = (0..60).map(|i| format!("unknown_{i} = 1\n")).collect();
    let all = errors(&text);
    assert_eq!(all.len(), 51);
    assert!(
        all.iter()
            .any(|d| d.message.starts_with("stopped after 50 unknown fields"))
    );
}

#[test]
fn a_get_event_stream_may_go_without_a_body_and_sends_none() {
    let p = parse(
        r#"name = "reads"
[[stream]]
name = "health"
kind = "event"
request = { method = "GET", path = "/health" }
stages = [ { for = "10s", rate = "100/s" } ]
"#,
    )
    .unwrap();
    assert_eq!(p.streams[0].body, BodySpec::None);
    assert_eq!(p.streams[0].request.method, http::Method::GET);
    // A method that anticipates content still needs one (POST is the events' default).
    expect_error(
        "name = \"x\"\n[[stream]]\nname = \"e\"\nkind = \"event\"\nstages = [ { for = \"1s\", rate = \"1/s\" } ]\n",
        "an event stream needs a `body`",
        4,
        8,
    );
    // A content type says what a body is: without one it is a mistake.
    expect_error(
        "name = \"x\"\n[[stream]]\nname = \"e\"\nkind = \"event\"\nrequest = { method = \"DELETE\", path = \"/x\" }\ncontent_type = \"text/plain\"\nstages = [ { for = \"1s\", rate = \"1/s\" } ]\n",
        "`content_type` without a `body`",
        6,
        16,
    );
    // Messages always carry one.
    let errors = errors(
        "name = \"x\"\n[[stream]]\nname = \"e\"\nkind = \"event\"\ntransport = \"sqs\"\nqueue = \"q\"\nstages = [ { for = \"1s\", rate = \"1/s\" } ]\n",
    );
    assert!(
        errors.iter().any(|d| d.message.contains("needs a `body`")),
        "{errors:#?}"
    );
}

#[test]
fn reads_stay_out_of_the_message_ledger_unless_asked() {
    let stream = |extra: &str| {
        let text = format!(
            "name = \"x\"\n[[stream]]\nname = \"s\"\nstages = [ {{ for = \"1s\", rate = \"1/s\" }} ]\n{extra}\n"
        );
        parse(&text).unwrap_or_else(|e| panic!("{e}")).streams[0].ledger
    };
    // Writes and messages are what a system must complete.
    assert!(stream(
        "kind = \"upload\"\nsize = { dist = \"fixed\", size = \"1KiB\" }"
    ));
    assert!(stream("kind = \"event\"\nbody = { template = \"{}\" }"));
    assert!(stream(
        "kind = \"event\"\ntransport = \"sqs\"\nqueue = \"q\"\nbody = { template = \"{}\" }"
    ));
    assert!(stream(
        "kind = \"event\"\nrequest = { method = \"PATCH\", path = \"/x\" }\nbody = { template = \"{}\" }"
    ));
    // A read's answer is its completion: no system reports it.
    for method in ["GET", "HEAD", "DELETE", "OPTIONS"] {
        assert!(
            !stream(&format!(
                "kind = \"event\"\nrequest = {{ method = \"{method}\", path = \"/x\" }}"
            )),
            "{method}"
        );
    }
    // Either way, when the profile says so.
    assert!(stream(
        "kind = \"event\"\nrequest = { method = \"DELETE\", path = \"/x\" }\nledger = true"
    ));
    assert!(!stream(
        "kind = \"event\"\nbody = { template = \"{}\" }\nledger = false"
    ));
    expect_error(
        "name = \"x\"\n[[stream]]\nname = \"s\"\nkind = \"event\"\nbody = { template = \"{}\" }\nledger = \"no\"\nstages = [ { for = \"1s\", rate = \"1/s\" } ]\n",
        "`ledger` must be `true` or `false`",
        6,
        10,
    );
}
