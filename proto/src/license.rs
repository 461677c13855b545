//! The license token: CWT claims (RFC 8392) in a COSE_Sign1 envelope signed
//! by the issuer's Ed25519 token key.
//!
//! Standard claims: `iss`, `sub` (the chip id in lowercase hex), `aud`,
//! `exp`, `nbf`, `iat`, `cti` (16-byte token id). Chipward's claims use
//! private-use labels (RFC 8392, section 4, labels below -65536):
//!
//! | label  | claim        | CBOR                                   |
//! |--------|--------------|----------------------------------------|
//! | -65601 | tenant       | text                                   |
//! | -65602 | site         | map {1: id, 2: lat, 3: lon, 4: radius} |
//! | -65603 | entitlements | array of text                          |
//! | -65604 | eccn         | text                                   |
//!
//! Token bytes are attacker-controlled: [`verify`] opens the envelope
//! (size, algorithm, key, signature) before it reads any claim, and a token
//! missing a claim or carrying one of the wrong type is refused.

use ciborium::value::Value;
use coset::CborSerializable;
use coset::cwt::{ClaimName, ClaimsSet, ClaimsSetBuilder, Timestamp};
use thiserror::Error;

use crate::cose::{self, CoseError, TrustedKeys};
use crate::ids::{ChipId, TokenId};

/// The largest token accepted.
pub const MAX_TOKEN_LEN: usize = 8 * 1024;

const TENANT: i64 = -65601;
const SITE: i64 = -65602;
const ENTITLEMENTS: i64 = -65603;
const ECCN: i64 = -65604;

/// A permitted site: a disc on the Earth's surface.
#[derive(Clone, Debug, PartialEq)]
pub struct SiteClaim {
    /// Site identifier.
    pub id: String,
    /// Degrees north.
    pub latitude: f64,
    /// Degrees east.
    pub longitude: f64,
    /// Radius in kilometres.
    pub radius_km: f64,
}

/// Everything a license token states.
#[derive(Clone, Debug, PartialEq)]
pub struct LicenseClaims {
    /// Who minted it.
    pub issuer: String,
    /// The chip it binds to.
    pub chip_id: ChipId,
    /// Who it is meant for.
    pub audience: String,
    /// Unix seconds when minted.
    pub issued_at: i64,
    /// Unix seconds when it starts to hold.
    pub not_before: i64,
    /// Unix seconds when it stops holding.
    pub expires_at: i64,
    /// Unique id.
    pub token_id: TokenId,
    /// The tenant the chip may serve.
    pub tenant: String,
    /// Where the chip may sit.
    pub site: SiteClaim,
    /// What the chip may do.
    pub entitlements: Vec<String>,
    /// Export classification of the chip.
    pub eccn: String,
}

/// A token whose signature was checked by [`verify`]; only that function
/// builds one.
#[derive(Clone, Debug, PartialEq)]
pub struct VerifiedLicense {
    claims: LicenseClaims,
    key_id: String,
}

/// Why a token was refused.
#[derive(Debug, Error, PartialEq)]
#[non_exhaustive]
pub enum TokenError {
    /// The envelope failed.
    #[error("license envelope refused")]
    Envelope(#[source] CoseError),
    /// The payload is not a CWT claims set.
    #[error("payload is not a cwt claims set")]
    Claims,
    /// A claim is missing or of the wrong type.
    #[error("claim {0} is missing or malformed")]
    Claim(&'static str),
    /// Before `nbf` minus the allowed skew.
    #[error("not valid until {not_before}, now {now}")]
    NotYetValid {
        /// The `nbf` claim.
        not_before: i64,
        /// The time checked.
        now: i64,
    },
    /// After `exp` plus the allowed skew.
    #[error("expired at {expires_at}, now {now}")]
    Expired {
        /// The `exp` claim.
        expires_at: i64,
        /// The time checked.
        now: i64,
    },
}

impl LicenseClaims {
    /// Encodes and signs the claims.
    pub fn sign(&self, key_id: &str, sign: impl FnOnce(&[u8]) -> Vec<u8>) -> Vec<u8> {
        cose::seal(self.to_cwt(), key_id, sign)
    }

    fn to_cwt(&self) -> Vec<u8> {
        let site = Value::Map(vec![
            (Value::from(1), Value::Text(self.site.id.clone())),
            (Value::from(2), Value::Float(self.site.latitude)),
            (Value::from(3), Value::Float(self.site.longitude)),
            (Value::from(4), Value::Float(self.site.radius_km)),
        ]);
        let entitlements =
            Value::Array(self.entitlements.iter().cloned().map(Value::Text).collect());
        ClaimsSetBuilder::new()
            .issuer(self.issuer.clone())
            .subject(self.chip_id.to_hex())
            .audience(self.audience.clone())
            .issued_at(Timestamp::WholeSeconds(self.issued_at))
            .not_before(Timestamp::WholeSeconds(self.not_before))
            .expiration_time(Timestamp::WholeSeconds(self.expires_at))
            .cwt_id(self.token_id.0.to_vec())
            .private_claim(TENANT, Value::Text(self.tenant.clone()))
            .private_claim(SITE, site)
            .private_claim(ENTITLEMENTS, entitlements)
            .private_claim(ECCN, Value::Text(self.eccn.clone()))
            .build()
            .to_vec()
            .expect("encoding built claims cannot fail")
    }

    fn from_cwt(payload: &[u8]) -> Result<Self, TokenError> {
        let set = ClaimsSet::from_slice(payload).map_err(|_| TokenError::Claims)?;
        let seconds = |t: &Option<Timestamp>, name| match t {
            Some(Timestamp::WholeSeconds(s)) => Ok(*s),
            _ => Err(TokenError::Claim(name)),
        };
        let chip_id = set.subject.as_deref().and_then(|s| s.parse().ok());
        let token_id = set
            .cwt_id
            .as_deref()
            .and_then(|b| <[u8; 16]>::try_from(b).ok());
        Ok(Self {
            issuer: set.issuer.clone().ok_or(TokenError::Claim("iss"))?,
            chip_id: chip_id.ok_or(TokenError::Claim("sub"))?,
            audience: set.audience.clone().ok_or(TokenError::Claim("aud"))?,
            issued_at: seconds(&set.issued_at, "iat")?,
            not_before: seconds(&set.not_before, "nbf")?,
            expires_at: seconds(&set.expiration_time, "exp")?,
            token_id: TokenId(token_id.ok_or(TokenError::Claim("cti"))?),
            tenant: text(private(&set, TENANT), "tenant")?,
            site: site(private(&set, SITE))?,
            entitlements: text_list(private(&set, ENTITLEMENTS), "entitlements")?,
            eccn: text(private(&set, ECCN), "eccn")?,
        })
    }
}

/// Opens and checks the signature of a token; the validity window is
/// checked separately with [`VerifiedLicense::check_window`].
pub fn verify(token: &[u8], keys: &TrustedKeys) -> Result<VerifiedLicense, TokenError> {
    let opened = cose::open(token, MAX_TOKEN_LEN, keys).map_err(TokenError::Envelope)?;
    let claims = LicenseClaims::from_cwt(&opened.payload)?;
    Ok(VerifiedLicense {
        claims,
        key_id: opened.key_id,
    })
}

/// Reads a token's claims without checking its signature; for display and
/// for a device that has no issuer key. Never use the result for a decision.
pub fn decode_unverified(token: &[u8]) -> Result<LicenseClaims, TokenError> {
    let payload = cose::peek_payload(token, MAX_TOKEN_LEN).map_err(TokenError::Envelope)?;
    LicenseClaims::from_cwt(&payload)
}

impl VerifiedLicense {
    /// The verified claims.
    pub fn claims(&self) -> &LicenseClaims {
        &self.claims
    }

    /// Id of the key that signed the token.
    pub fn key_id(&self) -> &str {
        &self.key_id
    }

    /// Checks `nbf - skew <= now <= exp + skew` (all Unix seconds).
    pub fn check_window(&self, now: i64, skew: i64) -> Result<(), TokenError> {
        let c = &self.claims;
        if now < c.not_before.saturating_sub(skew) {
            return Err(TokenError::NotYetValid {
                not_before: c.not_before,
                now,
            });
        }
        if now > c.expires_at.saturating_add(skew) {
            return Err(TokenError::Expired {
                expires_at: c.expires_at,
                now,
            });
        }
        Ok(())
    }
}

fn private(set: &ClaimsSet, label: i64) -> Option<&Value> {
    set.rest
        .iter()
        .find(|(name, _)| *name == ClaimName::PrivateUse(label))
        .map(|(_, v)| v)
}

fn text(value: Option<&Value>, name: &'static str) -> Result<String, TokenError> {
    match value {
        Some(Value::Text(t)) => Ok(t.clone()),
        _ => Err(TokenError::Claim(name)),
    }
}

fn text_list(value: Option<&Value>, name: &'static str) -> Result<Vec<String>, TokenError> {
    let Some(Value::Array(items)) = value else {
        return Err(TokenError::Claim(name));
    };
    items.iter().map(|v| text(Some(v), name)).collect()
}

fn site(value: Option<&Value>) -> Result<SiteClaim, TokenError> {
    let Some(Value::Map(entries)) = value else {
        return Err(TokenError::Claim("site"));
    };
    let field = |key: i64| {
        entries
            .iter()
            .find(|(k, _)| k.as_integer().and_then(|i| i64::try_from(i).ok()) == Some(key))
            .map(|(_, v)| v)
    };
    let number = |key: i64| match field(key) {
        Some(Value::Float(f)) if f.is_finite() => Ok(*f),
        _ => Err(TokenError::Claim("site")),
    };
    Ok(SiteClaim {
        id: text(field(1), "site")?,
        latitude: number(2)?,
        longitude: number(3)?,
        radius_km: number(4)?,
    })
}

#[cfg(test)]
mod tests;
