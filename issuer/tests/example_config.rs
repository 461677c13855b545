//! `issuer.example.toml` against the struct it documents, [`IssuerConfig`]:
//! 1. the real loader reads it and every range check passes;
//! 2. it documents every key, set or commented out, with a comment above
//!    the key or its group, naming the unit of every `*_secs`, `*_ms` and
//!    `*_bytes` key; the keys are listed from the struct itself, through
//!    serde (see `chipward_tests::config_doc`), and checked against a second
//!    list from its `Debug` form and from [`Limit::ALL`];
//! 3. its values are the defaults; the example has no deliberate
//!    difference from them.

#![cfg(test)]

use std::path::Path;

use chipward_issuer::IssuerConfig;
use chipward_issuer::rate_limits::{Limit, RateLimitsConfig};
use chipward_tests::config_doc::{KeyPath, check_example, debug_field_names};

fn example_path() -> &'static Path {
    Path::new(concat!(env!("CARGO_MANIFEST_DIR"), "/issuer.example.toml"))
}

fn parse(text: &str) -> Result<(), String> {
    IssuerConfig::parse(text)
        .map(drop)
        .map_err(|e| e.message().to_owned())
}

#[test]
fn the_example_file_loads_with_the_real_loader() {
    let config = IssuerConfig::load(example_path()).unwrap();
    config.settings().unwrap();
    config.postgres_options().unwrap();
    config.shutdown_grace().unwrap();
}

#[test]
fn the_example_file_documents_every_key() {
    let text = std::fs::read_to_string(example_path()).unwrap();
    let report = check_example(&text, &parse);
    assert!(
        report.problems.is_empty(),
        "issuer.example.toml:\n{}",
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
    let debug = format!("{:#?}", IssuerConfig::default());
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
    // Deliberate differences from the defaults: none. The example sets
    // every key it sets to its default, so that copying it changes
    // nothing; the keys it leaves commented out are unset by default.
    let example = IssuerConfig::load(example_path()).unwrap();
    assert_eq!(example, IssuerConfig::default());
}

/// The keys directly under `table`.
fn children(keys: &[KeyPath], table: &[&str]) -> Vec<String> {
    keys.iter()
        .filter(|k| k.len() == table.len() + 1 && k[..table.len()] == *table)
        .map(|k| k[table.len()].clone())
        .collect()
}
