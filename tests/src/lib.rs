//! Support for Chipward's end-to-end and interop tests: a throwaway swtpm
//! provisioned with EK certificates, tpm2-tools run against it, and a
//! throwaway PostgreSQL server for the ledger. The end-to-end tests
//! themselves live in `tests/`.

pub mod postgres;
pub mod swtpm;
