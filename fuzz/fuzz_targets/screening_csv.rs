//! Restricted-party lists in the CSV form of the Consolidated Screening
//! List (RFC 4180, header row, `; `-joined multi-valued cells), as an
//! operator's file or the list-loading call hands them to the issuer:
//! [`ScreeningList::parse`] refuses bad bytes with an error, and a list it
//! accepts passes the checks of `chipward_fuzz::screening` (bounds, limits
//! that only refuse, rewriting as CSV and as JSON, every listed name a
//! hit).
//!
//! [`ScreeningList::parse`]: chipward_issuer::screening::ScreeningList::parse

#![no_main]

use chipward_fuzz::screening;
use chipward_issuer::screening::ListFormat;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    screening::check(ListFormat::Csv, data);
});
