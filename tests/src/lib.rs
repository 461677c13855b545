//! Support for Chipward's end-to-end and interop tests: a throwaway swtpm
//! provisioned with EK certificates, tpm2-tools run against it, a
//! throwaway PostgreSQL server for the ledger, the server binaries as child
//! processes and checks of their logs, and a check of example
//! configuration files. The end-to-end tests themselves live in `tests/`.

pub mod config_doc;
pub mod logs;
pub mod postgres;
pub mod server;
pub mod swtpm;
