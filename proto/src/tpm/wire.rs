//! Big-endian reading and writing of TPM wire types, with a typed error that
//! names the field that failed.

use thiserror::Error;

/// Why a TPM structure was refused.
#[derive(Debug, Error, PartialEq, Eq)]
#[non_exhaustive]
pub enum TpmError {
    /// The bytes ended inside a field.
    #[error("truncated in {field}")]
    Truncated {
        /// The field being read.
        field: &'static str,
    },
    /// Bytes left after the structure.
    #[error("{0} bytes after the structure")]
    TrailingBytes(usize),
    /// A size or count beyond what the structure allows.
    #[error("{field} of {value} exceeds the limit of {max}")]
    TooLarge {
        /// The field.
        field: &'static str,
        /// What it said.
        value: usize,
        /// The limit.
        max: usize,
    },
    /// A selector with a value this parser does not handle.
    #[error("unsupported {field} 0x{value:04x}")]
    Unsupported {
        /// The field.
        field: &'static str,
        /// Its value.
        value: u16,
    },
    /// A structurally inconsistent value.
    #[error("invalid {field}: {reason}")]
    Invalid {
        /// The field.
        field: &'static str,
        /// What is wrong.
        reason: &'static str,
    },
}

/// Reads fields front to back.
pub(crate) struct Reader<'a> {
    bytes: &'a [u8],
    pos: usize,
}

impl<'a> Reader<'a> {
    pub(crate) fn new(bytes: &'a [u8]) -> Self {
        Self { bytes, pos: 0 }
    }

    pub(crate) fn take(&mut self, len: usize, field: &'static str) -> Result<&'a [u8], TpmError> {
        let end = self
            .pos
            .checked_add(len)
            .filter(|end| *end <= self.bytes.len());
        let end = end.ok_or(TpmError::Truncated { field })?;
        let out = &self.bytes[self.pos..end];
        self.pos = end;
        Ok(out)
    }

    pub(crate) fn u8(&mut self, field: &'static str) -> Result<u8, TpmError> {
        Ok(self.take(1, field)?[0])
    }

    pub(crate) fn u16(&mut self, field: &'static str) -> Result<u16, TpmError> {
        let b = self.take(2, field)?;
        Ok(u16::from_be_bytes([b[0], b[1]]))
    }

    pub(crate) fn u32(&mut self, field: &'static str) -> Result<u32, TpmError> {
        let b = self.take(4, field)?;
        Ok(u32::from_be_bytes([b[0], b[1], b[2], b[3]]))
    }

    pub(crate) fn u64(&mut self, field: &'static str) -> Result<u64, TpmError> {
        let b = self.take(8, field)?;
        Ok(u64::from_be_bytes(
            b.try_into().expect("take returned 8 bytes"),
        ))
    }

    /// A TPM2B: a 16-bit size, then that many bytes, at most `max`.
    pub(crate) fn sized(&mut self, max: usize, field: &'static str) -> Result<&'a [u8], TpmError> {
        let len = usize::from(self.u16(field)?);
        if len > max {
            return Err(TpmError::TooLarge {
                field,
                value: len,
                max,
            });
        }
        self.take(len, field)
    }

    /// Fails unless every byte was read.
    pub(crate) fn finish(&self) -> Result<(), TpmError> {
        match self.bytes.len() - self.pos {
            0 => Ok(()),
            left => Err(TpmError::TrailingBytes(left)),
        }
    }
}

/// Appends a TPM2B.
///
/// # Panics
///
/// If `bytes` is 64 KiB or longer, which no TPM structure allows.
pub(crate) fn put_sized(out: &mut Vec<u8>, bytes: &[u8]) {
    let len = u16::try_from(bytes.len()).expect("tpm2b fields are under 64 KiB");
    out.extend_from_slice(&len.to_be_bytes());
    out.extend_from_slice(bytes);
}
