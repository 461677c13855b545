//! Errors of certificate chain validation, each naming the link that failed.
//!
//! Owns [`ChainError`] and [`Link`]. Attacker-controlled input: subjects and OIDs quoted in
//! these errors come from peer certificates; they are passed through [`describe`] so that
//! control characters cannot forge log lines and their length stays bounded.

use std::fmt;

/// Longest subject text quoted in errors and [`super::ValidatedCert::subject`], in chars.
const MAX_SUBJECT_CHARS: usize = 256;

/// Which certificate a check was about.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum Link {
    /// The certificate at this index of the supplied chain, leaf = 0.
    Certificate(usize),
    /// The trust anchor the chain must end at.
    TrustAnchor,
}

impl fmt::Display for Link {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Certificate(index) => write!(f, "certificate {index}"),
            Self::TrustAnchor => f.write_str("trust anchor"),
        }
    }
}

/// Why a certificate chain (or a trust anchor) was rejected.
///
/// Every variant about one certificate names it by [`Link`] and, once parsed, by subject.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ChainError {
    /// The chain holds no certificate (after dropping a copy of the trust anchor).
    #[error("certificate chain is empty")]
    Empty,
    /// The chain has more certificates than the policy allows; nothing was parsed.
    #[error("certificate chain has {len} certificates, more than the limit of {max}")]
    TooDeep {
        /// Number of certificates supplied.
        len: usize,
        /// [`super::ChainPolicy::max_depth`].
        max: usize,
    },
    /// One certificate is larger than the policy allows; nothing was parsed.
    #[error("certificate {index} is {len} bytes, more than the limit of {max}")]
    TooLarge {
        /// Index in the supplied chain, leaf = 0.
        index: usize,
        /// Its length in bytes.
        len: usize,
        /// [`super::ChainPolicy::max_cert_len`].
        max: usize,
    },
    /// The bytes are not one well-formed DER X.509 certificate.
    #[error("{link}: malformed certificate: {reason}")]
    Malformed {
        /// The certificate.
        link: Link,
        /// What is wrong, in words.
        reason: String,
    },
    /// The certificate's issuer name differs from its signer's subject name (raw DER); for
    /// the top certificate in [`super::validate_ek_chain`], from every anchor's subject.
    #[error("{link} ({subject}): issuer name does not match the subject of its signer")]
    IssuerMismatch {
        /// The certificate.
        link: Link,
        /// Its subject.
        subject: String,
    },
    /// The signer's key does not verify the certificate's signature.
    #[error("{link} ({subject}): signature does not verify")]
    BadSignature {
        /// The certificate.
        link: Link,
        /// Its subject.
        subject: String,
    },
    /// The signature algorithm, or its pairing with the signer's key type, is unsupported.
    #[error("{link} ({subject}): unsupported signature algorithm {oid} with signer key {key_oid}")]
    UnsupportedAlgorithm {
        /// The certificate.
        link: Link,
        /// Its subject.
        subject: String,
        /// The certificate's signature algorithm OID.
        oid: String,
        /// The signer's public key algorithm OID.
        key_oid: String,
    },
    /// `now` is after the certificate's notAfter.
    #[error("{link} ({subject}): expired")]
    Expired {
        /// The certificate.
        link: Link,
        /// Its subject.
        subject: String,
    },
    /// `now` is before the certificate's notBefore.
    #[error("{link} ({subject}): not yet valid")]
    NotYetValid {
        /// The certificate.
        link: Link,
        /// Its subject.
        subject: String,
    },
    /// A certificate that signs another lacks basicConstraints cA=TRUE.
    #[error("{link} ({subject}): signs a certificate but is not a ca")]
    NotCa {
        /// The signing certificate.
        link: Link,
        /// Its subject.
        subject: String,
    },
    /// A certificate that signs another has keyUsage without keyCertSign.
    #[error("{link} ({subject}): key usage does not allow certificate signing")]
    KeyUsage {
        /// The signing certificate.
        link: Link,
        /// Its subject.
        subject: String,
    },
    /// More intermediate CAs below this CA than its pathLenConstraint allows.
    #[error("{link} ({subject}): path length constraint {limit} exceeded")]
    PathLen {
        /// The CA whose constraint was exceeded.
        link: Link,
        /// Its subject.
        subject: String,
        /// Its pathLenConstraint.
        limit: u32,
    },
    /// A critical extension this validator does not process.
    #[error("{link} ({subject}): unknown critical extension {oid}")]
    UnknownCriticalExtension {
        /// The certificate.
        link: Link,
        /// Its subject.
        subject: String,
        /// The extension's OID.
        oid: String,
    },
    /// An EK certificate with an empty subject and no critical subjectAltName to name it
    /// instead (RFC 5280 section 4.2.1.6).
    #[error("{link}: subject is empty and no critical subject alternative name stands in")]
    EmptySubject {
        /// The certificate.
        link: Link,
    },
    /// A constraint extension this validator cannot enforce (name constraints), critical
    /// or not: refusing is the only safe answer.
    #[error("{link} ({subject}): unsupported constraint extension {oid}")]
    UnsupportedConstraint {
        /// The certificate.
        link: Link,
        /// Its subject.
        subject: String,
        /// The extension's OID.
        oid: String,
    },
}

/// Makes peer-supplied text safe to quote: control characters escaped, length capped.
pub(crate) fn describe(text: &str) -> String {
    let mut out = String::with_capacity(text.len().min(MAX_SUBJECT_CHARS));
    for (count, c) in text.chars().enumerate() {
        if count == MAX_SUBJECT_CHARS {
            out.push('…');
            break;
        }
        if c.is_control() {
            out.extend(c.escape_default());
        } else {
            out.push(c);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn describe_escapes_controls_and_caps_length() {
        assert_eq!(describe("CN=a\nb"), "CN=a\\nb");
        let long = "x".repeat(1000);
        assert_eq!(describe(&long).chars().count(), MAX_SUBJECT_CHARS + 1);
    }

    #[test]
    fn display_names_the_link() {
        let err = ChainError::BadSignature {
            link: Link::Certificate(2),
            subject: "CN=x".into(),
        };
        let anchor = ChainError::Expired {
            link: Link::TrustAnchor,
            subject: "CN=root".into(),
        };

        assert_eq!(
            err.to_string(),
            "certificate 2 (CN=x): signature does not verify"
        );
        assert_eq!(anchor.to_string(), "trust anchor (CN=root): expired");
    }
}
