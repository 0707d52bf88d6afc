//! The published JSON schemas match the types that write the files.
//! `SHAKEDOWN_BLESS=1 cargo test --test schemas` rewrites them after a deliberate change.

use std::path::Path;

fn check(path: &str, generated: String) {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join(path);
    if std::env::var_os("SHAKEDOWN_BLESS").is_some() {
        std::fs::write(&path, &generated).unwrap();
        return;
    }
    let published = std::fs::read_to_string(&path).unwrap_or_default();
    assert!(
        published == generated,
        "{} is out of date with the code: run `SHAKEDOWN_BLESS=1 cargo test --test schemas` and review the diff",
        path.display()
    );
}

#[test]
fn run_json_schema_is_published() {
    check(
        "docs/schema/run.schema.json",
        shakedown::results::meta::run_schema(),
    );
}

#[test]
fn journal_schema_is_published() {
    check(
        "docs/schema/journal.schema.json",
        shakedown::chaos::journal::schema(),
    );
}

#[test]
fn a_real_run_json_validates_against_the_schema_shape() {
    // Every required property of the schema appears in a run.json we write.
    let schema: serde_json::Value =
        serde_json::from_str(&shakedown::results::meta::run_schema()).unwrap();
    let required: Vec<&str> = schema["required"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_str().unwrap())
        .collect();
    for key in [
        "run_id",
        "status",
        "started_at",
        "profile",
        "seed",
        "target",
    ] {
        assert!(required.contains(&key), "{key} should be required");
    }
}

#[test]
fn output_json_schema_is_published() {
    check(
        "docs/schema/output.schema.json",
        shakedown::term::output_schema(),
    );
}

#[test]
fn sweep_json_schema_is_published() {
    check("docs/schema/sweep.schema.json", shakedown::sweep::schema());
}
