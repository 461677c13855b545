//! The issuer's configuration file, from arbitrary UTF-8, and the ledger
//! location it names: [`IssuerConfig::parse`] and the range checks refuse
//! bad text with an error; settings that pass the checks are within their
//! documented ranges; and a PostgreSQL URL, as the issuer shows it in logs
//! and errors, never carries a password (read back by the driver's own URL
//! parser, the shown form has none, or only the `***` it put there).

#![no_main]

use std::str::FromStr;

use chipward_issuer::IssuerConfig;
use chipward_issuer::ledger::LedgerLocation;
use libfuzzer_sys::fuzz_target;

/// Ten years, the longest span any setting may hold, in seconds.
const TEN_YEARS: i64 = 10 * 365 * 86_400;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };

    // The location on its own, as the `--db` flag takes it.
    if let Ok(location) = LedgerLocation::from_str(text) {
        shows_no_password(&location);
    }

    let Ok(config) = IssuerConfig::parse(text) else {
        return;
    };
    shows_no_password(&config.database);
    if let Ok(options) = config.postgres_options() {
        assert!((1..=100).contains(&options.max_connections));
    }
    let Ok(settings) = config.settings() else {
        return;
    };
    assert!(settings.check().is_ok());
    assert_eq!(settings.issuer_name, config.issuer_name);
    assert!((1..=256).contains(&settings.issuer_name.len()));
    assert!((1..=256).contains(&settings.audience.len()));
    assert!((1..=settings.max_lifetime_secs).contains(&settings.default_lifetime_secs));
    assert!((1..=86_400).contains(&settings.host_enrolment_ttl_secs));
    assert!((4096..=64 * 1024 * 1024).contains(&settings.max_message_bytes));
    for span in [
        settings.default_lifetime_secs,
        settings.max_lifetime_secs,
        settings.max_backdate_secs,
        settings.max_future_start_secs,
        settings.renewal_max_result_age_secs,
        settings.clock_skew_secs,
        settings.host_enrolment_ttl_secs,
        settings.ak_binding_lifetime_secs,
    ] {
        assert!((0..=TEN_YEARS).contains(&span), "{span}");
    }
});

/// What the issuer shows of a PostgreSQL location, read back as a URL,
/// has no password but `***`.
fn shows_no_password(location: &LedgerLocation) {
    let LedgerLocation::Postgres(url) = location else {
        return;
    };
    let shown = url.to_string();
    assert!(format!("{url:?}").contains(&format!("{shown:?}")));
    if let Ok(read_back) = postgres::Config::from_str(&shown) {
        let password = read_back.get_password();
        assert!(
            password.is_none_or(|p| p == b"***"),
            "{shown:?} shows password {:?}",
            String::from_utf8_lossy(password.unwrap_or_default())
        );
    }
}
