//! Evidence checks, one folder per evidence format, and the trusted vendor
//! roots they chain to.

pub mod roots;
pub mod spdm;
pub mod tpm;
