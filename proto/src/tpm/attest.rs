//! TPMS_ATTEST (Part 2, section 10.12.12) for quotes: what a TPM signs when
//! it quotes PCRs. Structure only; the verifier decides whether the magic,
//! type, nonce and PCRs are acceptable.

use super::pcr::PcrSelection;
use super::wire::{Reader, TpmError, put_sized};

/// TPM_GENERATED_VALUE: the TPM made this structure itself.
pub const TPM_GENERATED_VALUE: u32 = 0xff54_4347;
/// TPM_ST_ATTEST_QUOTE.
pub const TPM_ST_ATTEST_QUOTE: u16 = 0x8018;
/// The largest TPMS_ATTEST accepted.
pub const MAX_ATTEST_LEN: usize = 2048;
/// Largest name, extraData and digest fields accepted.
const MAX_FIELD: usize = 128;

/// TPMS_CLOCK_INFO.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ClockInfo {
    /// Milliseconds the TPM has been powered, never going backwards.
    pub clock: u64,
    /// TPM resets since the clock was last cleared.
    pub reset_count: u32,
    /// Restarts and resumes since the last reset.
    pub restart_count: u32,
    /// Whether `clock` is known not to have gone backwards.
    pub safe: bool,
}

/// A parsed quote attestation.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Attest {
    /// Should be [`TPM_GENERATED_VALUE`].
    pub magic: u32,
    /// Should be [`TPM_ST_ATTEST_QUOTE`].
    pub attest_type: u16,
    /// Name of the signing key.
    pub qualified_signer: Vec<u8>,
    /// The caller's qualifying data: the verifier's nonce.
    pub extra_data: Vec<u8>,
    /// The TPM's clock.
    pub clock_info: ClockInfo,
    /// Vendor firmware version.
    pub firmware_version: u64,
    /// Which PCRs the quote covers.
    pub pcr_select: PcrSelection,
    /// Hash of the selected PCR values.
    pub pcr_digest: Vec<u8>,
}

impl Attest {
    /// Parses a TPMS_ATTEST whose attested part is a TPMS_QUOTE_INFO. Any
    /// other type is refused, since its attested part would be read wrongly.
    pub fn decode(bytes: &[u8]) -> Result<Self, TpmError> {
        if bytes.len() > MAX_ATTEST_LEN {
            return Err(TpmError::TooLarge {
                field: "attest",
                value: bytes.len(),
                max: MAX_ATTEST_LEN,
            });
        }
        let mut r = Reader::new(bytes);
        let magic = r.u32("magic")?;
        let attest_type = r.u16("type")?;
        if attest_type != TPM_ST_ATTEST_QUOTE {
            return Err(TpmError::Unsupported {
                field: "attest type",
                value: attest_type,
            });
        }
        let qualified_signer = r.sized(MAX_FIELD, "qualifiedSigner")?.to_vec();
        let extra_data = r.sized(MAX_FIELD, "extraData")?.to_vec();
        let clock_info = ClockInfo {
            clock: r.u64("clock")?,
            reset_count: r.u32("resetCount")?,
            restart_count: r.u32("restartCount")?,
            safe: match r.u8("safe")? {
                0 => false,
                1 => true,
                _ => {
                    return Err(TpmError::Invalid {
                        field: "safe",
                        reason: "not 0 or 1",
                    });
                }
            },
        };
        let firmware_version = r.u64("firmwareVersion")?;
        let pcr_select = PcrSelection::read(&mut r)?;
        let pcr_digest = r.sized(MAX_FIELD, "pcrDigest")?.to_vec();
        r.finish()?;
        Ok(Self {
            magic,
            attest_type,
            qualified_signer,
            extra_data,
            clock_info,
            firmware_version,
            pcr_select,
            pcr_digest,
        })
    }

    /// Marshals it, as a TPM would; for tests and the simulator.
    pub fn encode(&self) -> Vec<u8> {
        let mut out = self.magic.to_be_bytes().to_vec();
        out.extend_from_slice(&self.attest_type.to_be_bytes());
        put_sized(&mut out, &self.qualified_signer);
        put_sized(&mut out, &self.extra_data);
        out.extend_from_slice(&self.clock_info.clock.to_be_bytes());
        out.extend_from_slice(&self.clock_info.reset_count.to_be_bytes());
        out.extend_from_slice(&self.clock_info.restart_count.to_be_bytes());
        out.push(u8::from(self.clock_info.safe));
        out.extend_from_slice(&self.firmware_version.to_be_bytes());
        out.extend_from_slice(&self.pcr_select.encode());
        put_sized(&mut out, &self.pcr_digest);
        out
    }
}

#[cfg(test)]
mod tests {
    use super::super::alg;
    use super::*;

    pub(crate) fn sample() -> Attest {
        Attest {
            magic: TPM_GENERATED_VALUE,
            attest_type: TPM_ST_ATTEST_QUOTE,
            qualified_signer: vec![0x00, 0x0B, 1, 2, 3],
            extra_data: vec![9; 32],
            clock_info: ClockInfo {
                clock: 1234,
                reset_count: 2,
                restart_count: 1,
                safe: true,
            },
            firmware_version: 0x2019_0101,
            pcr_select: PcrSelection::new(&[(alg::SHA256, &[0, 1, 2])]),
            pcr_digest: vec![7; 32],
        }
    }

    #[test]
    fn round_trips_and_matches_the_part_2_layout() {
        let bytes = sample().encode();
        assert_eq!(&bytes[..6], &[0xff, 0x54, 0x43, 0x47, 0x80, 0x18]);
        // magic 4 + type 2 + name 2+5 + extra 2+32 + clock 17 + fw 8 + sel 10 + digest 2+32.
        assert_eq!(bytes.len(), 4 + 2 + 7 + 34 + 17 + 8 + 10 + 34);
        assert_eq!(Attest::decode(&bytes).unwrap(), sample());
    }

    #[test]
    fn rejects_truncation_trailing_bytes_and_other_types() {
        let bytes = sample().encode();
        for len in 0..bytes.len() {
            assert!(Attest::decode(&bytes[..len]).is_err(), "{len}");
        }
        assert_eq!(
            Attest::decode(&[bytes.clone(), vec![0]].concat()),
            Err(TpmError::TrailingBytes(1))
        );
        let mut certify = bytes.clone();
        certify[4..6].copy_from_slice(&0x8017u16.to_be_bytes());
        assert!(matches!(
            Attest::decode(&certify),
            Err(TpmError::Unsupported { .. })
        ));
        let mut unsafe_flag = bytes;
        unsafe_flag[4 + 2 + 7 + 34 + 16] = 2;
        assert!(matches!(
            Attest::decode(&unsafe_flag),
            Err(TpmError::Invalid { .. })
        ));
    }
}
