//! The published journal schema matches the code. Regenerate with
//! `UPDATE_SCHEMA=1 cargo test --test chaos_schema`.

#[test]
fn published_journal_schema_matches_the_generated_one() {
    let path = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/docs/schema/journal.schema.json"
    );
    let generated = shakedown::chaos::journal::schema();
    if std::env::var_os("UPDATE_SCHEMA").is_some() {
        std::fs::write(path, &generated).unwrap();
    }
    let published = std::fs::read_to_string(path).expect("docs/schema/journal.schema.json exists");
    assert!(
        published == generated,
        "docs/schema/journal.schema.json is out of date: run UPDATE_SCHEMA=1 cargo test --test chaos_schema"
    );
}
