//! `verifier.example.toml` against the struct it documents,
//! [`VerifierConfig`]:
//! 1. the real loader reads it and every range check passes;
//! 2. it documents every key, set or commented out, with a comment above
//!    the key or its group, naming the unit of every `*_secs`, `*_ms` and
//!    `*_bytes` key; the keys are listed from the struct itself, through
//!    serde (see `chipward_tests::config_doc`), and checked against a second
//!    list from its `Debug` form and from [`Limit::ALL`];
//! 3. its values are the defaults, except the deliberate differences
//!    listed in [`the_example_values_are_the_defaults`].

#![cfg(test)]

use std::path::{Path, PathBuf};

use chipward_tests::config_doc::{KeyPath, check_example, debug_field_names};
use chipward_verifier::config::VerifierConfig;
use chipward_verifier::rate_limits::{Limit, RateLimitsConfig};

fn example_path() -> &'static Path {
    Path::new(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/verifier.example.toml"
    ))
}

fn parse(text: &str) -> Result<(), String> {
    toml::from_str::<VerifierConfig>(text)
        .map(drop)
        .map_err(|e| e.message().to_owned())
}

#[test]
fn the_example_file_loads_with_the_real_loader() {
    let config = VerifierConfig::from_file(example_path()).unwrap();
    config.rate_limits.settings().unwrap();
    config.shutdown_grace().unwrap();
}

#[test]
fn the_example_file_documents_every_key() {
    let text = std::fs::read_to_string(example_path()).unwrap();
    let report = check_example(&text, &parse);
    assert!(
        report.problems.is_empty(),
        "verifier.example.toml:\n{}",
        report.problems.join("\n")
    );

    // The probed keys are the struct's: its Debug form names the same top
    // level, the rate limits are the limits the service has, and each
    // rate is a burst and an interval.
    let top: Vec<String> = report
        .keys
        .iter()
        .filter(|k| k.len() == 1)
        .map(|k| k[0].clone())
        .collect();
    let debug = format!("{:#?}", VerifierConfig::default());
    assert_eq!(top, debug_field_names(&debug));
    let limits = children(&report.keys, &["rate_limits"]);
    let debug = format!("{:#?}", RateLimitsConfig::default());
    assert_eq!(limits, debug_field_names(&debug));
    let mut expected: Vec<String> = Limit::ALL.iter().map(|l| l.name().to_owned()).collect();
    expected.insert(0, "max_tracked_keys".into());
    assert_eq!(limits, expected);
    for limit in Limit::ALL {
        let rate = children(&report.keys, &["rate_limits", limit.name()]);
        assert_eq!(rate, ["burst", "interval_ms"], "{}", limit.name());
    }
}

#[test]
fn the_example_values_are_the_defaults() {
    let example = VerifierConfig::from_file(example_path()).unwrap();

    // Deliberate differences from the defaults, each said in the example:
    // - reference_values names the file the demo writes, without which no
    //   chip can pass (unset by default).
    let expected = VerifierConfig {
        reference_values: Some(PathBuf::from("./reference-values.toml")),
        ..VerifierConfig::default()
    };
    assert_eq!(example, expected);
}

/// The keys directly under `table`.
fn children(keys: &[KeyPath], table: &[&str]) -> Vec<String> {
    keys.iter()
        .filter(|k| k.len() == table.len() + 1 && k[..table.len()] == *table)
        .map(|k| k[table.len()].clone())
        .collect()
}
