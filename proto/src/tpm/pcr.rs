//! PCR selections (TPML_PCR_SELECTION, Part 2 section 10.9.7) and the PCR
//! values a host reports beside its quote.
//!
//! A selection is a list of banks, each a hash algorithm and a bitmap in
//! which bit `n % 8` of byte `n / 8` selects PCR `n`. The order of banks and
//! of PCRs inside a bank (ascending) is the order in which a TPM hashes PCR
//! values into a quote's pcrDigest.

use std::collections::BTreeMap;

use super::alg;
use super::wire::{Reader, TpmError};

/// Banks accepted in one selection.
pub const MAX_BANKS: usize = 8;
/// Bitmap bytes accepted per bank (64 PCRs; real TPMs use 3 for 24).
pub const MAX_SELECT_BYTES: usize = 8;

/// One bank of a selection.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PcrBank {
    /// TPM_ALG_ID of the bank's hash.
    pub hash: u16,
    /// The selection bitmap as marshalled.
    pub bitmap: Vec<u8>,
}

/// A TPML_PCR_SELECTION.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct PcrSelection {
    /// The banks, in marshalled order.
    pub banks: Vec<PcrBank>,
}

impl PcrBank {
    /// The selected PCR indices, ascending.
    pub fn indices(&self) -> Vec<u32> {
        let mut out = Vec::new();
        for (byte_index, byte) in self.bitmap.iter().enumerate() {
            for bit in 0..8u32 {
                if byte & (1 << bit) != 0 {
                    out.push(byte_index as u32 * 8 + bit);
                }
            }
        }
        out
    }
}

impl PcrSelection {
    /// A selection of `indices` (each below 64) in one bank per entry, with
    /// 3-byte bitmaps when all indices fit, as TPMs with 24 PCRs expect.
    pub fn new(banks: &[(u16, &[u32])]) -> Self {
        let banks = banks
            .iter()
            .map(|(hash, indices)| {
                let highest = indices.iter().max().copied().unwrap_or(0);
                let len = ((highest / 8 + 1) as usize).max(3);
                let mut bitmap = vec![0u8; len];
                for &i in *indices {
                    bitmap[(i / 8) as usize] |= 1 << (i % 8);
                }
                PcrBank {
                    hash: *hash,
                    bitmap,
                }
            })
            .collect();
        Self { banks }
    }

    /// Parses from a reader positioned at the count.
    pub(crate) fn read(r: &mut Reader<'_>) -> Result<Self, TpmError> {
        let count = r.u32("pcr selection count")? as usize;
        if count > MAX_BANKS {
            return Err(TpmError::TooLarge {
                field: "pcr selection count",
                value: count,
                max: MAX_BANKS,
            });
        }
        let mut banks = Vec::with_capacity(count);
        for _ in 0..count {
            let hash = r.u16("pcr bank hash")?;
            let size = usize::from(r.u8("pcr bank size")?);
            if size > MAX_SELECT_BYTES {
                return Err(TpmError::TooLarge {
                    field: "pcr bank size",
                    value: size,
                    max: MAX_SELECT_BYTES,
                });
            }
            banks.push(PcrBank {
                hash,
                bitmap: r.take(size, "pcr bank bitmap")?.to_vec(),
            });
        }
        Ok(Self { banks })
    }

    /// Parses a whole TPML_PCR_SELECTION.
    pub fn decode(bytes: &[u8]) -> Result<Self, TpmError> {
        let mut r = Reader::new(bytes);
        let out = Self::read(&mut r)?;
        r.finish()?;
        Ok(out)
    }

    /// Marshals it.
    pub fn encode(&self) -> Vec<u8> {
        let mut out = (self.banks.len() as u32).to_be_bytes().to_vec();
        for bank in &self.banks {
            out.extend_from_slice(&bank.hash.to_be_bytes());
            out.push(u8::try_from(bank.bitmap.len()).expect("bitmap under 256 bytes"));
            out.extend_from_slice(&bank.bitmap);
        }
        out
    }

    /// Whether two selections pick the same PCRs in the same banks, in the
    /// same order, ignoring how many bitmap bytes each used.
    pub fn same_pcrs(&self, other: &Self) -> bool {
        self.banks.len() == other.banks.len()
            && self
                .banks
                .iter()
                .zip(&other.banks)
                .all(|(a, b)| a.hash == b.hash && a.indices() == b.indices())
    }

    /// Every (bank hash, PCR index) in digest order.
    pub fn slots(&self) -> Vec<(u16, u32)> {
        self.banks
            .iter()
            .flat_map(|b| b.indices().into_iter().map(move |i| (b.hash, i)))
            .collect()
    }

    /// Splits tpm2-tools' `values` output (the selected PCR values
    /// concatenated in digest order) into a map.
    pub fn split_values(&self, bytes: &[u8]) -> Result<PcrValues, TpmError> {
        let mut r = Reader::new(bytes);
        let mut values = PcrValues::default();
        for (hash, index) in self.slots() {
            let len = alg::digest_len(hash).ok_or(TpmError::Unsupported {
                field: "pcr bank hash",
                value: hash,
            })?;
            values
                .0
                .insert((hash, index), r.take(len, "pcr value")?.to_vec());
        }
        r.finish()?;
        Ok(values)
    }
}

/// Parses tpm2-tools' `serialized` PCR file (what `tpm2_quote -o` writes by
/// default): host-order (little-endian) dumps of the C structures
/// TPML_PCR_SELECTION (a count, then 16 entries of hash, size, 4 bitmap
/// bytes and a pad byte), a count of TPML_DIGEST lists, then each list (a
/// count and 8 entries of a 2-byte size and a 64-byte buffer).
pub fn parse_tpm2_tools_serialized(bytes: &[u8]) -> Result<(PcrSelection, PcrValues), TpmError> {
    const ENTRY: usize = 8;
    const SELECTION: usize = 4 + 16 * ENTRY;
    const DIGEST: usize = 2 + 64;
    const LIST: usize = 4 + 8 * DIGEST;
    let le32 = |b: &[u8]| u32::from_le_bytes([b[0], b[1], b[2], b[3]]) as usize;

    if bytes.len() < SELECTION + 4 {
        return Err(TpmError::Truncated {
            field: "serialized pcr selection",
        });
    }
    let banks = le32(&bytes[..4]);
    if banks > 16 {
        return Err(TpmError::TooLarge {
            field: "pcr selection count",
            value: banks,
            max: 16,
        });
    }
    let mut selection = PcrSelection::default();
    for i in 0..banks {
        let e = &bytes[4 + i * ENTRY..4 + (i + 1) * ENTRY];
        let size = usize::from(e[2]);
        if size > 4 {
            return Err(TpmError::TooLarge {
                field: "pcr bank size",
                value: size,
                max: 4,
            });
        }
        selection.banks.push(PcrBank {
            hash: u16::from_le_bytes([e[0], e[1]]),
            bitmap: e[3..3 + size].to_vec(),
        });
    }

    let lists = le32(&bytes[SELECTION..]);
    let expected = SELECTION + 4 + lists.saturating_mul(LIST);
    if lists > 64 || bytes.len() != expected {
        return Err(TpmError::Invalid {
            field: "serialized pcr values",
            reason: "length does not match the list count",
        });
    }
    let mut digests = Vec::new();
    for l in 0..lists {
        let list = &bytes[SELECTION + 4 + l * LIST..SELECTION + 4 + (l + 1) * LIST];
        let count = le32(list);
        if count > 8 {
            return Err(TpmError::TooLarge {
                field: "pcr digest count",
                value: count,
                max: 8,
            });
        }
        for d in 0..count {
            let entry = &list[4 + d * DIGEST..4 + (d + 1) * DIGEST];
            let size = usize::from(u16::from_le_bytes([entry[0], entry[1]]));
            if size > 64 {
                return Err(TpmError::TooLarge {
                    field: "pcr digest size",
                    value: size,
                    max: 64,
                });
            }
            digests.extend_from_slice(&entry[2..2 + size]);
        }
    }
    let values = selection.split_values(&digests)?;
    Ok((selection, values))
}

/// Writes the `serialized` PCR file [`parse_tpm2_tools_serialized`] reads,
/// as `tpm2_checkquote -f` expects it. Banks hold at most 32 PCRs here.
pub fn encode_tpm2_tools_serialized(
    selection: &PcrSelection,
    values: &PcrValues,
) -> Result<Vec<u8>, TpmError> {
    if selection.banks.len() > 16 {
        return Err(TpmError::TooLarge {
            field: "pcr selection count",
            value: selection.banks.len(),
            max: 16,
        });
    }
    let mut out = (selection.banks.len() as u32).to_le_bytes().to_vec();
    for i in 0..16 {
        let mut entry = [0u8; 8];
        if let Some(bank) = selection.banks.get(i) {
            if bank.bitmap.len() > 4 {
                return Err(TpmError::TooLarge {
                    field: "pcr bank size",
                    value: bank.bitmap.len(),
                    max: 4,
                });
            }
            entry[..2].copy_from_slice(&bank.hash.to_le_bytes());
            entry[2] = bank.bitmap.len() as u8;
            entry[3..3 + bank.bitmap.len()].copy_from_slice(&bank.bitmap);
        }
        out.extend_from_slice(&entry);
    }
    let digests: Vec<&Vec<u8>> = selection
        .slots()
        .iter()
        .map(|slot| {
            values.0.get(slot).ok_or(TpmError::Invalid {
                field: "pcr values",
                reason: "a selected pcr has no value",
            })
        })
        .collect::<Result<_, _>>()?;
    let lists: Vec<&[&Vec<u8>]> = digests.chunks(8).collect();
    out.extend_from_slice(&(lists.len() as u32).to_le_bytes());
    for list in lists {
        out.extend_from_slice(&(list.len() as u32).to_le_bytes());
        for d in 0..8 {
            let mut entry = [0u8; 66];
            if let Some(value) = list.get(d) {
                if value.len() > 64 {
                    return Err(TpmError::TooLarge {
                        field: "pcr digest size",
                        value: value.len(),
                        max: 64,
                    });
                }
                entry[..2].copy_from_slice(&(value.len() as u16).to_le_bytes());
                entry[2..2 + value.len()].copy_from_slice(value);
            }
            out.extend_from_slice(&entry);
        }
    }
    Ok(out)
}

/// PCR values as a host reports them, by (bank hash, index). Unsigned until
/// a quote's pcrDigest is shown to cover them.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct PcrValues(pub BTreeMap<(u16, u32), Vec<u8>>);

impl PcrValues {
    /// The concatenation of the values `selection` picks, in digest order;
    /// `None` if one is missing.
    pub fn concat_for(&self, selection: &PcrSelection) -> Option<Vec<u8>> {
        let mut out = Vec::new();
        for slot in selection.slots() {
            out.extend_from_slice(self.0.get(&slot)?);
        }
        Some(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn encodes_the_bitmap_as_part_2_lays_it_out() {
        let sel = PcrSelection::new(&[(alg::SHA256, &[0, 1, 7, 8, 23])]);
        // count 1, sha256, 3 bytes: 0b1000_0011, 0b0000_0001, 0b1000_0000.
        assert_eq!(
            sel.encode(),
            vec![0, 0, 0, 1, 0x00, 0x0B, 3, 0x83, 0x01, 0x80]
        );
        assert_eq!(PcrSelection::decode(&sel.encode()).unwrap(), sel);
        assert_eq!(sel.banks[0].indices(), vec![0, 1, 7, 8, 23]);
    }

    #[test]
    fn compares_selections_by_pcrs_not_bitmap_length() {
        let short = PcrSelection::new(&[(alg::SHA256, &[0, 2])]);
        let long = PcrSelection {
            banks: vec![PcrBank {
                hash: alg::SHA256,
                bitmap: vec![0b101, 0, 0, 0],
            }],
        };
        assert!(short.same_pcrs(&long));
        assert!(!short.same_pcrs(&PcrSelection::new(&[(alg::SHA256, &[0, 3])])));
        assert!(!short.same_pcrs(&PcrSelection::new(&[(alg::SHA384, &[0, 2])])));
    }

    #[test]
    fn splits_values_in_digest_order() {
        let sel = PcrSelection::new(&[(alg::SHA256, &[3, 1])]);
        let bytes = [vec![1u8; 32], vec![3u8; 32]].concat();
        let values = sel.split_values(&bytes).unwrap();
        assert_eq!(values.0[&(alg::SHA256, 1)], vec![1u8; 32]);
        assert_eq!(values.0[&(alg::SHA256, 3)], vec![3u8; 32]);
        assert_eq!(values.concat_for(&sel).unwrap(), bytes);
        assert!(sel.split_values(&bytes[..63]).is_err());
        assert_eq!(
            sel.split_values(&[bytes.clone(), vec![0]].concat()),
            Err(TpmError::TrailingBytes(1))
        );
    }

    /// The layout tpm2-tools 5.4 writes for sha256:0,1,2,16 (checked against
    /// a file `tpm2_quote -o` produced with swtpm).
    fn tools_file(values: &[[u8; 32]]) -> Vec<u8> {
        let mut out = 1u32.to_le_bytes().to_vec();
        out.extend_from_slice(&[0x0B, 0x00, 3, 0x07, 0x00, 0x01, 0x00, 0x00]);
        out.extend(std::iter::repeat_n(0, 15 * 8));
        out.extend_from_slice(&1u32.to_le_bytes());
        out.extend_from_slice(&(values.len() as u32).to_le_bytes());
        for i in 0..8 {
            match values.get(i) {
                Some(v) => {
                    out.extend_from_slice(&32u16.to_le_bytes());
                    out.extend_from_slice(v);
                    out.extend_from_slice(&[0; 32]);
                }
                None => out.extend_from_slice(&[0; 66]),
            }
        }
        out
    }

    #[test]
    fn parses_tpm2_tools_serialized_pcr_files() {
        let file = tools_file(&[[0; 32], [1; 32], [2; 32], [16; 32]]);
        assert_eq!(file.len(), 668);
        let (sel, values) = parse_tpm2_tools_serialized(&file).unwrap();
        assert_eq!(sel.banks[0].indices(), vec![0, 1, 2, 16]);
        assert_eq!(values.0[&(alg::SHA256, 16)], vec![16u8; 32]);
        assert!(parse_tpm2_tools_serialized(&file[..667]).is_err());
        assert_eq!(encode_tpm2_tools_serialized(&sel, &values).unwrap(), file);
        // A selection of four PCRs with only three values.
        assert!(parse_tpm2_tools_serialized(&tools_file(&[[0; 32], [1; 32], [2; 32]])).is_err());
    }

    #[test]
    fn bounds_counts_and_sizes() {
        let mut many = vec![0, 0, 0, 9];
        many.extend(std::iter::repeat_n(0, 100));
        assert!(matches!(
            PcrSelection::decode(&many),
            Err(TpmError::TooLarge { .. })
        ));
        let wide = [0, 0, 0, 1, 0, 0x0B, 9, 0, 0, 0, 0, 0, 0, 0, 0, 0];
        assert!(matches!(
            PcrSelection::decode(&wide),
            Err(TpmError::TooLarge { .. })
        ));
    }
}
