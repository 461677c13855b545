//! Support for Chipward's end-to-end and interop tests: a throwaway swtpm
//! provisioned with EK certificates. The end-to-end tests themselves live in
//! `tests/`.

#![expect(
    clippy::unwrap_used,
    reason = "test support fails the calling test loudly"
)]

pub mod swtpm;
