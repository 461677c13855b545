//! SPDM 1.1 measurement transcripts, as NVIDIA GPUs and Chipward's simulated
//! chips emit them (DMTF DSP0274 1.1, sections 10.11 and 10.11.1).
//!
//! A transcript is a GET_MEASUREMENTS request (37 bytes: 4-byte header, the
//! requester's 32-byte nonce, the slot id) followed by the MEASUREMENTS
//! response, whose last 96 bytes are an ECDSA P-384 signature (r‖s) over
//! everything before it. Every byte is attacker-controlled: the parser checks
//! each length against what is left, rejects trailing bytes, and never
//! panics.
//!
//! Limitation: only SPDM 1.1 with a P-384 signature is accepted; 1.2 adds a
//! signing context to the signed data and is refused as an unknown version.

use thiserror::Error;

/// SPDM version byte for 1.1.
pub const SPDM_VERSION_11: u8 = 0x11;
/// Request code of GET_MEASUREMENTS.
pub const GET_MEASUREMENTS: u8 = 0xE0;
/// Response code of MEASUREMENTS.
pub const MEASUREMENTS: u8 = 0x60;
/// Length of an ECDSA P-384 signature in r‖s form.
pub const P384_SIGNATURE_LEN: usize = 96;
/// Length of a GET_MEASUREMENTS 1.1 request that asks for a signature.
pub const REQUEST_LEN: usize = 37;
/// The largest transcript accepted.
pub const MAX_TRANSCRIPT_LEN: usize = 64 * 1024;
/// `MeasurementSpecification` value for the DMTF measurement layout, the
/// only one accepted.
pub const DMTF_SPEC: u8 = 0x01;
/// GET_MEASUREMENTS operation asking for every measurement.
pub const ALL_MEASUREMENTS: u8 = 0xFF;

/// The GET_MEASUREMENTS request as sent by the verifier's side.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MeasurementsRequest {
    /// Param1; bit 0 asks for a signature.
    pub attributes: u8,
    /// Param2: which measurement, 0xFF for all.
    pub operation: u8,
    /// The requester's nonce.
    pub nonce: [u8; 32],
    /// Certificate slot of the signing key.
    pub slot_id: u8,
}

/// One measurement block.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MeasurementBlock {
    /// Measurement index, 1 to 0xFE.
    pub index: u8,
    /// Which layout `value` follows; always [`DMTF_SPEC`] once parsed.
    pub spec: u8,
    /// DMTF value type (bit 7 set: raw bit stream).
    pub value_type: u8,
    /// The measurement: usually a digest.
    pub value: Vec<u8>,
}

/// The MEASUREMENTS response without its signature.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MeasurementsResponse {
    /// Param1 as sent.
    pub param1: u8,
    /// Param2 as sent: the slot id in bits 0 to 3.
    pub param2: u8,
    /// The measurement blocks, in transcript order.
    pub blocks: Vec<MeasurementBlock>,
    /// The responder's nonce.
    pub nonce: [u8; 32],
    /// Vendor-defined opaque data.
    pub opaque: Vec<u8>,
}

/// A parsed transcript. The signature is not checked here.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Transcript {
    /// The request part.
    pub request: MeasurementsRequest,
    /// The response part.
    pub response: MeasurementsResponse,
    /// How many leading bytes the signature covers.
    pub signed_len: usize,
    /// ECDSA P-384 r‖s.
    pub signature: [u8; P384_SIGNATURE_LEN],
}

/// Why a transcript was refused.
#[derive(Debug, Error, PartialEq, Eq)]
#[non_exhaustive]
pub enum SpdmError {
    /// Longer than [`MAX_TRANSCRIPT_LEN`].
    #[error("transcript of {0} bytes exceeds the {MAX_TRANSCRIPT_LEN}-byte limit")]
    TooLong(usize),
    /// Ended before a field it announced.
    #[error("transcript truncated in {field}")]
    Truncated {
        /// The field being read.
        field: &'static str,
    },
    /// Bytes left after the signature.
    #[error("{0} bytes after the signature")]
    TrailingBytes(usize),
    /// A version other than 1.1.
    #[error("unsupported spdm version 0x{0:02x}")]
    Version(u8),
    /// Response version differs from the request's.
    #[error("response version 0x{response:02x} differs from request version 0x{request:02x}")]
    VersionMismatch {
        /// Request version.
        request: u8,
        /// Response version.
        response: u8,
    },
    /// Not the request or response code expected.
    #[error("expected {expected} code 0x{want:02x}, found 0x{found:02x}")]
    Code {
        /// Which message.
        expected: &'static str,
        /// Code required.
        want: u8,
        /// Code present.
        found: u8,
    },
    /// The request did not ask for a signature.
    #[error("request does not ask for a signed response")]
    Unsigned,
    /// NumberOfBlocks disagrees with the record.
    #[error("response announces {announced} measurement blocks, record holds {found}")]
    BlockCount {
        /// The NumberOfBlocks field.
        announced: u8,
        /// Blocks parsed.
        found: usize,
    },
    /// A block's inner DMTF size disagrees with its outer size.
    #[error("measurement block {index} has inconsistent sizes")]
    BlockSize {
        /// Index of the block.
        index: u8,
    },
    /// Two blocks with one index.
    #[error("measurement index {0} appears twice")]
    DuplicateIndex(u8),
    /// The request asks for something other than all measurements.
    #[error("request operation 0x{0:02x} does not ask for all measurements")]
    Operation(u8),
    /// The response names another certificate slot than the request.
    #[error("response slot {response} differs from request slot {request}")]
    SlotMismatch {
        /// Slot the request named.
        request: u8,
        /// Slot the response names.
        response: u8,
    },
    /// A block index outside 1 to 0xFE.
    #[error("measurement index {0} is reserved")]
    ReservedIndex(u8),
    /// A block not in the DMTF measurement layout.
    #[error("measurement block {index} uses specification 0x{spec:02x}, not dmtf")]
    NotDmtf {
        /// The block's index.
        index: u8,
        /// Its MeasurementSpecification byte.
        spec: u8,
    },
}

/// Reads fields front to back, failing on the first shortfall.
struct Reader<'a> {
    bytes: &'a [u8],
    pos: usize,
}

impl<'a> Reader<'a> {
    fn take(&mut self, len: usize, field: &'static str) -> Result<&'a [u8], SpdmError> {
        let end = self
            .pos
            .checked_add(len)
            .filter(|end| *end <= self.bytes.len());
        let end = end.ok_or(SpdmError::Truncated { field })?;
        let out = &self.bytes[self.pos..end];
        self.pos = end;
        Ok(out)
    }

    fn u8(&mut self, field: &'static str) -> Result<u8, SpdmError> {
        Ok(self.take(1, field)?[0])
    }

    fn u16(&mut self, field: &'static str) -> Result<u16, SpdmError> {
        let b = self.take(2, field)?;
        Ok(u16::from_le_bytes([b[0], b[1]]))
    }

    fn u24(&mut self, field: &'static str) -> Result<usize, SpdmError> {
        let b = self.take(3, field)?;
        Ok(usize::from(b[0]) | usize::from(b[1]) << 8 | usize::from(b[2]) << 16)
    }

    fn array<const N: usize>(&mut self, field: &'static str) -> Result<[u8; N], SpdmError> {
        let b = self.take(N, field)?;
        Ok(b.try_into().expect("take returned exactly N bytes"))
    }
}

impl Transcript {
    /// Parses request and response and splits off the signature.
    pub fn parse(bytes: &[u8]) -> Result<Self, SpdmError> {
        if bytes.len() > MAX_TRANSCRIPT_LEN {
            return Err(SpdmError::TooLong(bytes.len()));
        }
        let mut r = Reader { bytes, pos: 0 };

        let request = parse_request(&mut r)?;
        let response = parse_response_body(&mut r)?;
        if response.param2 & 0x0F != request.slot_id & 0x0F {
            return Err(SpdmError::SlotMismatch {
                request: request.slot_id & 0x0F,
                response: response.param2 & 0x0F,
            });
        }
        let signed_len = r.pos;
        let signature = r.array::<P384_SIGNATURE_LEN>("signature")?;
        if r.pos != bytes.len() {
            return Err(SpdmError::TrailingBytes(bytes.len() - r.pos));
        }
        Ok(Self {
            request,
            response,
            signed_len,
            signature,
        })
    }

    /// The measurement with `index`, if present.
    pub fn block(&self, index: u8) -> Option<&MeasurementBlock> {
        self.response.blocks.iter().find(|b| b.index == index)
    }
}

fn parse_request(r: &mut Reader<'_>) -> Result<MeasurementsRequest, SpdmError> {
    let version = r.u8("request version")?;
    if version != SPDM_VERSION_11 {
        return Err(SpdmError::Version(version));
    }
    let code = r.u8("request code")?;
    if code != GET_MEASUREMENTS {
        return Err(SpdmError::Code {
            expected: "GET_MEASUREMENTS",
            want: GET_MEASUREMENTS,
            found: code,
        });
    }
    let attributes = r.u8("request attributes")?;
    if attributes & 1 == 0 {
        return Err(SpdmError::Unsigned);
    }
    let operation = r.u8("request operation")?;
    if operation != ALL_MEASUREMENTS {
        return Err(SpdmError::Operation(operation));
    }
    let nonce = r.array::<32>("request nonce")?;
    let slot_id = r.u8("request slot id")?;
    Ok(MeasurementsRequest {
        attributes,
        operation,
        nonce,
        slot_id,
    })
}

fn parse_response_body(r: &mut Reader<'_>) -> Result<MeasurementsResponse, SpdmError> {
    let version = r.u8("response version")?;
    if version != SPDM_VERSION_11 {
        return Err(SpdmError::VersionMismatch {
            request: SPDM_VERSION_11,
            response: version,
        });
    }
    let code = r.u8("response code")?;
    if code != MEASUREMENTS {
        return Err(SpdmError::Code {
            expected: "MEASUREMENTS",
            want: MEASUREMENTS,
            found: code,
        });
    }
    let param1 = r.u8("response param1")?;
    let param2 = r.u8("response param2")?;
    let announced = r.u8("number of blocks")?;
    let record_len = r.u24("measurement record length")?;
    let record = r.take(record_len, "measurement record")?;
    let blocks = parse_record(record)?;
    if blocks.len() != usize::from(announced) {
        return Err(SpdmError::BlockCount {
            announced,
            found: blocks.len(),
        });
    }
    let nonce = r.array::<32>("response nonce")?;
    let opaque_len = r.u16("opaque data length")?;
    let opaque = r.take(usize::from(opaque_len), "opaque data")?.to_vec();
    Ok(MeasurementsResponse {
        param1,
        param2,
        blocks,
        nonce,
        opaque,
    })
}

fn parse_record(record: &[u8]) -> Result<Vec<MeasurementBlock>, SpdmError> {
    let mut r = Reader {
        bytes: record,
        pos: 0,
    };
    let mut blocks: Vec<MeasurementBlock> = Vec::new();
    while r.pos < record.len() {
        let index = r.u8("block index")?;
        if index == 0 || index == 0xFF {
            return Err(SpdmError::ReservedIndex(index));
        }
        let spec = r.u8("block specification")?;
        if spec != DMTF_SPEC {
            return Err(SpdmError::NotDmtf { index, spec });
        }
        let size = usize::from(r.u16("block size")?);
        let body = r.take(size, "block value")?;
        let mut inner = Reader {
            bytes: body,
            pos: 0,
        };
        let value_type = inner.u8("dmtf value type")?;
        let value_size = usize::from(inner.u16("dmtf value size")?);
        if value_size + 3 != size {
            return Err(SpdmError::BlockSize { index });
        }
        let block = MeasurementBlock {
            index,
            spec,
            value_type,
            value: body[3..].to_vec(),
        };
        if blocks.iter().any(|b| b.index == index) {
            return Err(SpdmError::DuplicateIndex(index));
        }
        blocks.push(block);
    }
    Ok(blocks)
}

/// Builds a transcript the way a device does. The caller signs
/// [`UnsignedTranscript::signed_bytes`] and calls
/// [`UnsignedTranscript::finish`].
#[derive(Clone, Debug)]
pub struct UnsignedTranscript {
    bytes: Vec<u8>,
}

impl UnsignedTranscript {
    /// Encodes request and response; every block gets the DMTF value header.
    ///
    /// # Panics
    ///
    /// Never for blocks under 64 KiB and fewer than 256 blocks; larger inputs
    /// are a caller bug and panic.
    pub fn new(request: &MeasurementsRequest, response: &MeasurementsResponse) -> Self {
        let mut out = vec![
            SPDM_VERSION_11,
            GET_MEASUREMENTS,
            request.attributes,
            request.operation,
        ];
        out.extend_from_slice(&request.nonce);
        out.push(request.slot_id);

        let mut record = Vec::new();
        for block in &response.blocks {
            encode_block(&mut record, block);
        }
        let count = u8::try_from(response.blocks.len()).expect("fewer than 256 blocks");
        let record_len = u32::try_from(record.len()).expect("record under 16 MiB");
        out.extend_from_slice(&[
            SPDM_VERSION_11,
            MEASUREMENTS,
            response.param1,
            response.param2,
            count,
        ]);
        out.extend_from_slice(&record_len.to_le_bytes()[..3]);
        out.extend_from_slice(&record);
        out.extend_from_slice(&response.nonce);
        let opaque_len = u16::try_from(response.opaque.len()).expect("opaque data under 64 KiB");
        out.extend_from_slice(&opaque_len.to_le_bytes());
        out.extend_from_slice(&response.opaque);
        Self { bytes: out }
    }

    /// What the device's attestation key signs.
    pub fn signed_bytes(&self) -> &[u8] {
        &self.bytes
    }

    /// Appends the signature.
    pub fn finish(mut self, signature: &[u8; P384_SIGNATURE_LEN]) -> Vec<u8> {
        self.bytes.extend_from_slice(signature);
        self.bytes
    }
}

fn encode_block(out: &mut Vec<u8>, block: &MeasurementBlock) {
    let inner = u16::try_from(block.value.len()).expect("measurement under 64 KiB");
    out.push(block.index);
    out.push(block.spec);
    out.extend_from_slice(&(inner + 3).to_le_bytes());
    out.push(block.value_type);
    out.extend_from_slice(&inner.to_le_bytes());
    out.extend_from_slice(&block.value);
}

#[cfg(test)]
mod tests;
