//! PEM framing (RFC 7468) for certificates, PKCS#8 private keys and raw Ed25519 public keys.
//!
//! Owns the one PEM reader and writer of the crate. Attacker-controlled input: all PEM text
//! handed to the `parse_*` functions (certificate chains from files or peers). The reader
//! is strict inside a block (base64 only, canonical padding, matching END label) and
//! ignores text between blocks, as RFC 7468 allows. Decoded bytes are not interpreted
//! here: certificates are checked by [`crate::chain`], keys by [`crate::keys`].
//! Decoded blocks pass through zeroizing buffers so private keys leave no copies behind.

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use zeroize::Zeroizing;

/// PEM label of an X.509 certificate.
pub const CERTIFICATE_LABEL: &str = "CERTIFICATE";
/// PEM label of an unencrypted PKCS#8 private key.
pub const PRIVATE_KEY_LABEL: &str = "PRIVATE KEY";
/// PEM label of a raw 32-byte Ed25519 public key (a Chipward convention, not an RFC label).
pub const ED25519_PUBLIC_KEY_LABEL: &str = "ED25519 PUBLIC KEY";

/// Longest label the reader accepts.
const MAX_LABEL_LEN: usize = 64;
/// Base64 characters per line when writing (RFC 7468 section 2).
const LINE_WIDTH: usize = 64;

/// A failure to read PEM text.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum PemError {
    /// A BEGIN or END line whose label is empty, too long or not printable ASCII.
    #[error("line {line}: malformed pem boundary")]
    BadBoundary {
        /// 1-based line number.
        line: usize,
    },
    /// A BEGIN line inside a block that has not ended.
    #[error("line {line}: begin inside an open \"{open}\" block")]
    NestedBegin {
        /// 1-based line number of the second BEGIN.
        line: usize,
        /// Label of the block still open.
        open: String,
    },
    /// An END line with no block open.
    #[error("line {line}: end without begin")]
    UnexpectedEnd {
        /// 1-based line number.
        line: usize,
    },
    /// An END line whose label differs from its BEGIN line.
    #[error("line {line}: end label \"{end}\" does not match begin label \"{begin}\"")]
    LabelMismatch {
        /// 1-based line number of the END line.
        line: usize,
        /// Label on the BEGIN line.
        begin: String,
        /// Label on the END line.
        end: String,
    },
    /// Text ended inside a block.
    #[error("\"{label}\" block opened on line {line} never ends")]
    Unterminated {
        /// Label of the open block.
        label: String,
        /// 1-based line number of its BEGIN line.
        line: usize,
    },
    /// A block's body is not valid base64.
    #[error("\"{label}\" block opened on line {line} is not valid base64")]
    Base64 {
        /// Label of the block.
        label: String,
        /// 1-based line number of its BEGIN line.
        line: usize,
        /// The decoder's complaint.
        #[source]
        source: base64::DecodeError,
    },
    /// No block with the wanted label.
    #[error("no \"{label}\" block found")]
    Missing {
        /// The label looked for.
        label: &'static str,
    },
    /// More than one block with a label that must appear once.
    #[error("{count} \"{label}\" blocks found where one was expected")]
    Multiple {
        /// The label looked for.
        label: &'static str,
        /// How many blocks carry it.
        count: usize,
    },
    /// A block whose decoded length is fixed had another length.
    #[error("\"{label}\" block holds {actual} bytes, expected {expected}")]
    Length {
        /// The label of the block.
        label: &'static str,
        /// Required length in bytes.
        expected: usize,
        /// Decoded length in bytes.
        actual: usize,
    },
}

/// Decodes every `CERTIFICATE` block, in order, to DER. Blocks with other labels are
/// skipped; no certificate at all is an error.
///
/// ```
/// use chipward_certs::pem;
///
/// let text = pem::certificate_to_pem(b"not really der") + &pem::certificate_to_pem(b"two");
/// let ders = pem::parse_certificates(&text)?;
/// assert_eq!(ders, vec![b"not really der".to_vec(), b"two".to_vec()]);
/// # Ok::<(), chipward_certs::PemError>(())
/// ```
pub fn parse_certificates(pem_text: &str) -> Result<Vec<Vec<u8>>, PemError> {
    let certs: Vec<Vec<u8>> = blocks(pem_text)?
        .into_iter()
        .filter(|b| b.label == CERTIFICATE_LABEL)
        .map(|b| b.der.to_vec())
        .collect();

    if certs.is_empty() {
        return Err(PemError::Missing {
            label: CERTIFICATE_LABEL,
        });
    }
    Ok(certs)
}

/// Encodes DER certificate bytes as one `CERTIFICATE` PEM block.
pub fn certificate_to_pem(der: &[u8]) -> String {
    encode_block(CERTIFICATE_LABEL, der)
}

/// Decodes the single `PRIVATE KEY` (PKCS#8) block. Blocks with other labels are
/// skipped; none or several private-key blocks is an error.
///
/// ```
/// let key = chipward_certs::P384Key::generate()?;
/// let dir = tempfile::tempdir()?;
/// let path = dir.path().join("chip.key");
/// chipward_certs::write_private_key_file(&path, "PRIVATE KEY", key.pkcs8_der())?;
///
/// let der = chipward_certs::pem::parse_private_key(&std::fs::read_to_string(&path)?)?;
/// assert_eq!(*der, **key.pkcs8_der());
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub fn parse_private_key(pem_text: &str) -> Result<Zeroizing<Vec<u8>>, PemError> {
    single_block(pem_text, PRIVATE_KEY_LABEL)
}

/// Encodes a raw Ed25519 public key as an `ED25519 PUBLIC KEY` PEM block.
///
/// ```
/// use chipward_certs::pem;
///
/// let text = pem::ed25519_public_to_pem(&[7u8; 32]);
/// assert!(text.starts_with("-----BEGIN ED25519 PUBLIC KEY-----\n"));
/// assert_eq!(pem::parse_ed25519_public(&text)?, [7u8; 32]);
/// # Ok::<(), chipward_certs::PemError>(())
/// ```
pub fn ed25519_public_to_pem(pk: &[u8; 32]) -> String {
    encode_block(ED25519_PUBLIC_KEY_LABEL, pk)
}

/// Decodes the single `ED25519 PUBLIC KEY` block, which must hold exactly 32 bytes.
pub fn parse_ed25519_public(pem_text: &str) -> Result<[u8; 32], PemError> {
    let der = single_block(pem_text, ED25519_PUBLIC_KEY_LABEL)?;
    <[u8; 32]>::try_from(der.as_slice()).map_err(|_| PemError::Length {
        label: ED25519_PUBLIC_KEY_LABEL,
        expected: 32,
        actual: der.len(),
    })
}

/// Encodes bytes as one PEM block with LF line endings.
pub(crate) fn encode_block(label: &str, der: &[u8]) -> String {
    let body = Zeroizing::new(STANDARD.encode(der));

    let mut out =
        String::with_capacity(body.len() + body.len() / LINE_WIDTH + 2 * label.len() + 40);
    out.push_str(&format!("-----BEGIN {label}-----\n"));
    let mut rest = body.as_str();
    while !rest.is_empty() {
        // Base64 output is ASCII, so any byte offset is a char boundary.
        let (line, tail) = rest.split_at(rest.len().min(LINE_WIDTH));
        out.push_str(line);
        out.push('\n');
        rest = tail;
    }
    out.push_str(&format!("-----END {label}-----\n"));
    out
}

/// One decoded block.
struct Block {
    label: String,
    der: Zeroizing<Vec<u8>>,
}

/// The one block with `label`; other labels are ignored.
fn single_block(pem_text: &str, label: &'static str) -> Result<Zeroizing<Vec<u8>>, PemError> {
    let mut found: Vec<Block> = blocks(pem_text)?
        .into_iter()
        .filter(|b| b.label == label)
        .collect();

    match found.len() {
        0 => Err(PemError::Missing { label }),
        1 => Ok(found.remove(0).der),
        count => Err(PemError::Multiple { label, count }),
    }
}

/// A block being read: its label, BEGIN line and base64 text so far.
struct OpenBlock {
    label: String,
    line: usize,
    base64: Zeroizing<String>,
}

/// Splits PEM text into decoded blocks, in order.
fn blocks(text: &str) -> Result<Vec<Block>, PemError> {
    let mut out = Vec::new();
    let mut open: Option<OpenBlock> = None;

    for (index, raw_line) in text.lines().enumerate() {
        let line = index + 1;
        let trimmed = raw_line.trim();

        if let Some(label) = boundary(trimmed, "-----BEGIN ", line)? {
            if let Some(block) = &open {
                return Err(PemError::NestedBegin {
                    line,
                    open: block.label.clone(),
                });
            }
            open = Some(OpenBlock {
                label,
                line,
                base64: Zeroizing::new(String::new()),
            });
        } else if let Some(label) = boundary(trimmed, "-----END ", line)? {
            let block = open.take().ok_or(PemError::UnexpectedEnd { line })?;
            if block.label != label {
                return Err(PemError::LabelMismatch {
                    line,
                    begin: block.label,
                    end: label,
                });
            }
            out.push(decode(block)?);
        } else if let Some(block) = &mut open {
            block.base64.push_str(trimmed);
        }
    }

    match open {
        Some(block) => Err(PemError::Unterminated {
            label: block.label,
            line: block.line,
        }),
        None => Ok(out),
    }
}

/// The label of a boundary line starting with `prefix`, `None` for any other line.
fn boundary(line: &str, prefix: &str, number: usize) -> Result<Option<String>, PemError> {
    let Some(rest) = line.strip_prefix(prefix) else {
        return Ok(None);
    };
    let label = rest
        .strip_suffix("-----")
        .ok_or(PemError::BadBoundary { line: number })?;

    let printable = label.bytes().all(|b| b == b' ' || b.is_ascii_graphic());
    if label.is_empty() || label.len() > MAX_LABEL_LEN || !printable {
        return Err(PemError::BadBoundary { line: number });
    }
    Ok(Some(label.to_owned()))
}

/// Decodes a finished block's base64 body.
fn decode(block: OpenBlock) -> Result<Block, PemError> {
    let mut der = Zeroizing::new(Vec::with_capacity(block.base64.len() / 4 * 3 + 3));
    STANDARD
        .decode_vec(block.base64.as_bytes(), &mut der)
        .map_err(|source| PemError::Base64 {
            label: block.label.clone(),
            line: block.line,
            source,
        })?;
    Ok(Block {
        label: block.label,
        der,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn writes_64_column_lines() {
        let text = encode_block("CERTIFICATE", &[0u8; 100]);
        let lines: Vec<&str> = text.lines().collect();

        // 100 bytes = 33 groups of 3 plus 1 byte: 136 characters ending "AA==", so lines of
        // 64, 64 and 8.
        assert_eq!(lines.len(), 5);
        assert_eq!(lines[1].len(), 64);
        assert_eq!(lines[3], "AAAAAA==");
    }

    #[test]
    fn reads_known_encoding_with_crlf_and_surrounding_text() {
        let text = "subject=whatever\r\n-----BEGIN CERTIFICATE-----\r\nAQID\r\nBA==\r\n\
                    -----END CERTIFICATE-----\r\ntrailer\r\n";

        assert_eq!(parse_certificates(text).unwrap(), vec![vec![1u8, 2, 3, 4]]);
    }

    #[test]
    fn skips_other_labels() {
        let text = encode_block("PRIVATE KEY", b"k") + &certificate_to_pem(b"c");

        assert_eq!(parse_certificates(&text).unwrap(), vec![b"c".to_vec()]);
        assert_eq!(*parse_private_key(&text).unwrap(), b"k".to_vec());
    }

    #[test]
    fn rejects_missing_certificate() {
        let err = parse_certificates("hello\n").unwrap_err();
        assert!(matches!(
            err,
            PemError::Missing {
                label: "CERTIFICATE"
            }
        ));
    }

    #[test]
    fn rejects_two_private_keys() {
        let text = encode_block("PRIVATE KEY", b"a") + &encode_block("PRIVATE KEY", b"b");
        let err = parse_private_key(&text).unwrap_err();

        assert!(matches!(err, PemError::Multiple { count: 2, .. }));
    }

    #[test]
    fn rejects_mismatched_end() {
        let text = "-----BEGIN CERTIFICATE-----\nAQID\n-----END PRIVATE KEY-----\n";
        let err = parse_certificates(text).unwrap_err();

        assert!(matches!(err, PemError::LabelMismatch { line: 3, .. }));
    }

    #[test]
    fn rejects_unterminated_block() {
        let err = parse_certificates("-----BEGIN CERTIFICATE-----\nAQID\n").unwrap_err();
        assert!(matches!(err, PemError::Unterminated { line: 1, .. }));
    }

    #[test]
    fn rejects_nested_begin() {
        let text = "-----BEGIN CERTIFICATE-----\n-----BEGIN CERTIFICATE-----\n";
        let err = parse_certificates(text).unwrap_err();

        assert!(matches!(err, PemError::NestedBegin { line: 2, .. }));
    }

    #[test]
    fn rejects_end_without_begin() {
        let err = parse_certificates("-----END CERTIFICATE-----\n").unwrap_err();
        assert!(matches!(err, PemError::UnexpectedEnd { line: 1 }));
    }

    #[test]
    fn rejects_bad_boundaries() {
        for text in [
            "-----BEGIN CERTIFICATE\n",
            "-----BEGIN -----\n",
            "-----BEGIN \u{7}-----\n",
        ] {
            let err = parse_certificates(text).unwrap_err();
            assert!(matches!(err, PemError::BadBoundary { line: 1 }), "{text:?}");
        }
    }

    #[test]
    fn rejects_bad_base64() {
        for body in ["AQI*", "AQID=", "AQ=D", "AR=="] {
            let text = format!("-----BEGIN CERTIFICATE-----\n{body}\n-----END CERTIFICATE-----\n");
            let err = parse_certificates(&text).unwrap_err();
            assert!(matches!(err, PemError::Base64 { line: 1, .. }), "{body}");
        }
    }

    #[test]
    fn rejects_wrong_length_ed25519_key() {
        let text = encode_block(ED25519_PUBLIC_KEY_LABEL, &[1u8; 31]);
        let err = parse_ed25519_public(&text).unwrap_err();

        assert!(matches!(
            err,
            PemError::Length {
                expected: 32,
                actual: 31,
                ..
            }
        ));
    }
}
