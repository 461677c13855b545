//! A host's TPM 2.0, driven through tss-esapi: swtpm in tests
//! (`swtpm:host=127.0.0.1,port=N`) or a real `/dev/tpmrm0`
//! (`device:/dev/tpmrm0`) on a host.
//!
//! One [`HostTpm`] owns one connection; swtpm serves a single client at a
//! time, so callers share a `HostTpm` behind a lock rather than opening
//! several. Without a resource manager every transient object stays loaded
//! until flushed, so each operation flushes what it created and `Drop`
//! flushes the keys it holds.
//!
//! The EK is the TCG default RSA-2048 template, recreated from the
//! endorsement seed, so it is the key the TPM's EK certificate (NV index
//! 0x01c00002) certifies. The AK is a restricted ECDSA P-256 signing key
//! under it.

use std::str::FromStr;

use thiserror::Error;
use tss_esapi::Context;
use tss_esapi::abstraction::{AsymmetricAlgorithmSelection, ak, ek};
use tss_esapi::attributes::SessionAttributesBuilder;
use tss_esapi::constants::SessionType;
use tss_esapi::handles::{AuthHandle, KeyHandle, ObjectHandle, PcrHandle, SessionHandle};
use tss_esapi::interface_types::algorithm::{
    AsymmetricAlgorithm, HashingAlgorithm, SignatureSchemeAlgorithm,
};
use tss_esapi::interface_types::key_bits::RsaKeyBits;
use tss_esapi::interface_types::session_handles::PolicySession;
use tss_esapi::structures::{
    Data, Digest, DigestValues, EncryptedSecret, IdObject, PcrSelectionListBuilder, PcrSlot,
    Public, SignatureScheme, SymmetricDefinition,
};
use tss_esapi::tcti_ldr::TctiNameConf;
use tss_esapi::traits::Marshall;

/// A TPM call that failed; one variant per operation.
#[derive(Debug, Error)]
#[non_exhaustive]
pub enum TpmError {
    /// The TCTI string did not parse or the TPM could not be reached.
    #[error("cannot open tpm at {tcti}")]
    Open {
        /// The TCTI asked for.
        tcti: String,
        /// What tss-esapi said.
        #[source]
        source: tss_esapi::Error,
    },
    /// Creating the endorsement key failed.
    #[error("creating the endorsement key failed")]
    CreateEk(#[source] tss_esapi::Error),
    /// Reading the EK certificate from NV failed.
    #[error("reading the ek certificate failed")]
    ReadEkCertificate(#[source] tss_esapi::Error),
    /// Reading a public area failed.
    #[error("reading a public area failed")]
    ReadPublic(#[source] tss_esapi::Error),
    /// Creating or loading the attestation key failed.
    #[error("creating the attestation key failed")]
    CreateAk(#[source] tss_esapi::Error),
    /// Activating a credential failed.
    #[error("credential activation failed")]
    ActivateCredential(#[source] tss_esapi::Error),
    /// Extending a PCR failed.
    #[error("extending pcr {pcr} failed")]
    Extend {
        /// The PCR.
        pcr: u32,
        /// What tss-esapi said.
        #[source]
        source: tss_esapi::Error,
    },
    /// Reading PCRs failed.
    #[error("reading pcrs failed")]
    ReadPcrs(#[source] tss_esapi::Error),
    /// Quoting failed.
    #[error("quote failed")]
    Quote(#[source] tss_esapi::Error),
    /// A value out of range for the TPM (PCR index, nonce size).
    #[error("invalid input: {0}")]
    Input(&'static str),
    /// No attestation key was created yet.
    #[error("no attestation key: call create_ak first")]
    NoAk,
}

/// An attestation key's public side.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AkPublic {
    /// TPM2B_PUBLIC.
    pub public: Vec<u8>,
    /// TPM name: nameAlg then the hash of the TPMT_PUBLIC.
    pub name: Vec<u8>,
}

/// A quote as the TPM returned it, with the PCR values it covers.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Quote {
    /// TPMS_ATTEST.
    pub attest: Vec<u8>,
    /// TPMT_SIGNATURE.
    pub signature: Vec<u8>,
    /// (index, SHA-256 value) of each quoted PCR, ascending.
    pub pcrs: Vec<(u32, Vec<u8>)>,
}

/// A connection to one TPM, with its EK and, once made, an AK loaded.
pub struct HostTpm {
    ctx: Context,
    ek: KeyHandle,
    ak: Option<(KeyHandle, AkPublic)>,
}

impl std::fmt::Debug for HostTpm {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HostTpm")
            .field("ak", &self.ak.as_ref().map(|a| &a.1))
            .finish()
    }
}

impl HostTpm {
    /// Connects and recreates the RSA EK.
    pub fn open(tcti: &str) -> Result<Self, TpmError> {
        let open = |source| TpmError::Open {
            tcti: tcti.to_owned(),
            source,
        };
        let conf = TctiNameConf::from_str(tcti).map_err(open)?;
        let mut ctx = Context::new(conf).map_err(open)?;
        let ek = ek::create_ek_object(&mut ctx, AsymmetricAlgorithm::Rsa, None)
            .map_err(TpmError::CreateEk)?;
        Ok(Self { ctx, ek, ak: None })
    }

    /// The EK certificate as stored in NV, trailing padding included.
    pub fn ek_certificate(&mut self) -> Result<Vec<u8>, TpmError> {
        ek::retrieve_ek_pubcert(
            &mut self.ctx,
            AsymmetricAlgorithmSelection::Rsa(RsaKeyBits::Rsa2048),
        )
        .map_err(TpmError::ReadEkCertificate)
    }

    /// The EK's TPM2B_PUBLIC.
    pub fn ek_public(&mut self) -> Result<Vec<u8>, TpmError> {
        let (public, _, _) = self
            .ctx
            .read_public(self.ek)
            .map_err(TpmError::ReadPublic)?;
        sized_public(&public)
    }

    /// Creates and loads a restricted ECDSA P-256 attestation key under the
    /// EK, replacing any AK held.
    pub fn create_ak(&mut self) -> Result<AkPublic, TpmError> {
        self.flush_ak();
        let created = ak::create_ak(
            &mut self.ctx,
            self.ek,
            HashingAlgorithm::Sha256,
            SignatureSchemeAlgorithm::EcDsa,
            None,
            None,
        )
        .map_err(TpmError::CreateAk)?;
        let handle = ak::load_ak(
            &mut self.ctx,
            self.ek,
            None,
            created.out_private,
            created.out_public,
        )
        .map_err(TpmError::CreateAk)?;
        let (public, name, _) = self.ctx.read_public(handle).map_err(TpmError::ReadPublic)?;
        let ak = AkPublic {
            public: sized_public(&public)?,
            name: name.value().to_vec(),
        };
        self.ak = Some((handle, ak.clone()));
        Ok(ak)
    }

    /// TPM2_ActivateCredential: recovers the secret a verifier sealed to the
    /// EK for the AK's name. Fails unless both are in this TPM.
    pub fn activate_credential(
        &mut self,
        credential_blob: &[u8],
        secret: &[u8],
    ) -> Result<Vec<u8>, TpmError> {
        let (ak, _) = self.ak.as_ref().ok_or(TpmError::NoAk)?;
        let ak = *ak;
        let blob = IdObject::try_from(credential_blob.to_vec())
            .map_err(|_| TpmError::Input("credential blob"))?;
        let secret =
            EncryptedSecret::try_from(secret.to_vec()).map_err(|_| TpmError::Input("secret"))?;
        let fail = TpmError::ActivateCredential;

        // The EK's policy is PolicySecret(endorsement); the AK takes an HMAC
        // session with an empty auth value.
        let (attributes, mask) = SessionAttributesBuilder::new().build();
        let start = |ctx: &mut Context, kind| {
            let session = ctx
                .start_auth_session(
                    None,
                    None,
                    None,
                    kind,
                    SymmetricDefinition::AES_128_CFB,
                    HashingAlgorithm::Sha256,
                )?
                .ok_or(tss_esapi::Error::WrapperError(
                    tss_esapi::WrapperErrorKind::WrongValueFromTpm,
                ))?;
            ctx.tr_sess_set_attributes(session, attributes, mask)?;
            Ok::<_, tss_esapi::Error>(session)
        };
        let hmac = start(&mut self.ctx, SessionType::Hmac).map_err(fail)?;
        let policy = start(&mut self.ctx, SessionType::Policy).map_err(fail)?;
        let outcome = (|| {
            let policy_session = PolicySession::try_from(policy)?;
            self.ctx.execute_with_session(Some(hmac), |ctx| {
                ctx.policy_secret(
                    policy_session,
                    AuthHandle::Endorsement,
                    Default::default(),
                    Default::default(),
                    Default::default(),
                    None,
                )
            })?;
            self.ctx.set_sessions((Some(hmac), Some(policy), None));
            let out = self.ctx.activate_credential(ak, self.ek, blob, secret);
            self.ctx.clear_sessions();
            out
        })();
        for session in [hmac, policy] {
            let _ = self.ctx.flush_context(SessionHandle::from(session).into());
        }
        Ok(outcome.map_err(fail)?.value().to_vec())
    }

    /// Extends SHA-256 PCR `pcr` with the SHA-256 digest `digest`.
    pub fn extend(&mut self, pcr: u32, digest: &[u8; 32]) -> Result<(), TpmError> {
        let handle = PcrHandle::try_from(pcr).map_err(|_| TpmError::Input("pcr index"))?;
        let mut values = DigestValues::new();
        let digest = Digest::try_from(digest.to_vec()).map_err(|_| TpmError::Input("digest"))?;
        values.set(HashingAlgorithm::Sha256, digest);
        self.ctx
            .execute_with_nullauth_session(|ctx| ctx.pcr_extend(handle, values))
            .map_err(|source| TpmError::Extend { pcr, source })
    }

    /// Quotes the SHA-256 PCRs `pcrs` over `nonce` with the AK, and reads
    /// their values.
    pub fn quote(&mut self, nonce: &[u8], pcrs: &[u32]) -> Result<Quote, TpmError> {
        let (ak, _) = self.ak.as_ref().ok_or(TpmError::NoAk)?;
        let ak = *ak;
        let data = Data::try_from(nonce.to_vec()).map_err(|_| TpmError::Input("nonce too long"))?;
        let selection = selection(pcrs).map_err(|_| TpmError::Input("pcr index"))?;
        let (attest, signature) = self
            .ctx
            .execute_with_nullauth_session(|ctx| {
                ctx.quote(ak, data, SignatureScheme::Null, selection)
            })
            .map_err(TpmError::Quote)?;
        let attest = attest.marshall().map_err(TpmError::Quote)?;
        let signature = signature.marshall().map_err(TpmError::Quote)?;
        Ok(Quote {
            attest,
            signature,
            pcrs: self.read_pcrs(pcrs)?,
        })
    }

    /// Reads SHA-256 PCR values, eight per command as TPMs allow.
    pub fn read_pcrs(&mut self, pcrs: &[u32]) -> Result<Vec<(u32, Vec<u8>)>, TpmError> {
        let mut sorted = pcrs.to_vec();
        sorted.sort_unstable();
        sorted.dedup();
        let mut out = Vec::new();
        for chunk in sorted.chunks(8) {
            let (_, _, digests) = self
                .ctx
                .execute_without_session(|ctx| ctx.pcr_read(selection(chunk)?))
                .map_err(TpmError::ReadPcrs)?;
            let values = digests.value();
            if values.len() != chunk.len() {
                return Err(TpmError::Input("tpm returned fewer pcr values than asked"));
            }
            out.extend(
                chunk
                    .iter()
                    .copied()
                    .zip(values.iter().map(|d| d.value().to_vec())),
            );
        }
        Ok(out)
    }

    fn flush_ak(&mut self) {
        if let Some((handle, _)) = self.ak.take() {
            let _ = self.ctx.flush_context(ObjectHandle::from(handle));
        }
    }
}

impl Drop for HostTpm {
    fn drop(&mut self) {
        self.flush_ak();
        let _ = self.ctx.flush_context(ObjectHandle::from(self.ek));
    }
}

fn selection(pcrs: &[u32]) -> Result<tss_esapi::structures::PcrSelectionList, tss_esapi::Error> {
    let slots = pcrs
        .iter()
        .map(|i| {
            1u32.checked_shl(*i)
                .and_then(|bit| PcrSlot::try_from(bit).ok())
                .ok_or(tss_esapi::Error::WrapperError(
                    tss_esapi::WrapperErrorKind::InvalidParam,
                ))
        })
        .collect::<Result<Vec<_>, _>>()?;
    PcrSelectionListBuilder::new()
        .with_selection(HashingAlgorithm::Sha256, &slots)
        .build()
}

fn sized_public(public: &Public) -> Result<Vec<u8>, TpmError> {
    let raw = public.marshall().map_err(TpmError::ReadPublic)?;
    let len = u16::try_from(raw.len()).map_err(|_| TpmError::Input("public area too large"))?;
    let mut out = len.to_be_bytes().to_vec();
    out.extend_from_slice(&raw);
    Ok(out)
}
