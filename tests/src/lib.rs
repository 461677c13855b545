//! Support for Chipward's end-to-end and interop tests: a throwaway swtpm
//! provisioned with EK certificates, and tpm2-tools run against it. The
//! end-to-end tests themselves live in `tests/`.

pub mod swtpm;
