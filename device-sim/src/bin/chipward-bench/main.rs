//! `chipward-bench`: throughput of the verifier's appraisal and the issuer's
//! durable issuance, each beside a raw-signature baseline measured in the
//! same run on the same machine, as TARGETS.md asks.
//!
//! Each measurement warms up, then runs for a fixed wall time. Baseline and
//! subject alternate for several rounds and the best of each is kept, so
//! that noise from other users of the machine hits both alike.
//!
//! Everything is generated locally (dev PKI, one simulated chip, a ledger in
//! a temporary folder); nothing touches the network. This is a benchmark,
//! not a test, but it aborts when an appraisal does not pass or an issuance
//! fails: figures for failing work would mean nothing.

use std::hint::black_box;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use anyhow::{Context, anyhow, bail, ensure};
use chipward_certs::chain::ChainPolicy;
use chipward_certs::keys::Ed25519Key;
use chipward_certs::pki::DevPki;
use chipward_device_sim::bench::{
    ED25519_MESSAGE_LEN, P384_MESSAGE_LEN, ed25519_sign_op, p384_verify_op, rate, unprepared,
    utc_timestamp,
};
use chipward_device_sim::chip::{SimChip, golden_measurements};
use chipward_device_sim::host_firmware::{
    DEVICE_PCR, FIRMWARE_PCRS, TENANT_PCR, firmware_digests, host_policy,
};
use chipward_issuer::ledger::{Ledger, LedgerLocation, PostgresOptions, SqliteLedger};
use chipward_issuer::{IssuerService, IssuerSettings, SystemClock};
use chipward_proto::ak_binding::AkBinding;
use chipward_proto::cose::TrustedKeys;
use chipward_proto::grpc::issuer_server::Issuer;
use chipward_proto::grpc::{EnrolChipRequest, IssueLicenseRequest, Site, SpdmEvidence, evidence};
use chipward_proto::license;
use chipward_proto::license::{LicenseClaims, SiteClaim};
use chipward_proto::result::Status;
use chipward_proto::revocation::RevocationList;
use chipward_proto::tpm::alg;
use chipward_proto::tpm::attest::{Attest, ClockInfo, TPM_GENERATED_VALUE, TPM_ST_ATTEST_QUOTE};
use chipward_proto::tpm::pcr::PcrValues;
use chipward_proto::tpm::public::TpmPublic;
use chipward_proto::tpm::signature::TpmSignature;
use chipward_proto::{ChipId, TokenId};
use chipward_verifier::appraisal::{AppraisalRequest, AppraisalSettings, Appraiser};
use chipward_verifier::challenge::{Challenges, NonceKey};
use chipward_verifier::evidence::roots::Roots;
use chipward_verifier::evidence::tpm::host::{
    HostClocks, HostContext, HostInput, HostPolicy, appraise_host, extended, tenant_pcr_value,
};
use chipward_verifier::policy::reference::ReferenceValues;
use chipward_verifier::revocation::RevocationCache;
use clap::Parser;
use ring::rand::SystemRandom;
use ring::signature::{
    ECDSA_P256_SHA256_FIXED, ECDSA_P256_SHA256_FIXED_SIGNING, ED25519, EcdsaKeyPair, KeyPair,
    UnparsedPublicKey,
};

mod log;

const MODEL: &str = "CW-100";
const FIRMWARE: &str = "1.4.2";
const HOST_FIRMWARE: &str = "uefi-2.9";
const TENANT: &str = "acme-ai";
/// Site id, latitude, longitude and radius in km of the one site used.
const SITE: (&str, f64, f64, f64) = ("fra-1", 50.11, 8.68, 25.0);
/// Challenge and evidence pairs made, untimed, ahead of appraising them.
const EVIDENCE_BATCH: usize = 2000;

#[derive(Parser)]
#[command(about = "Chipward benchmarks: appraisal and issuance against raw signatures")]
struct Args {
    /// Timed wall time of each measurement, seconds.
    #[arg(long, default_value_t = 3.0)]
    seconds: f64,
    /// Interleaved rounds of baseline and subject; the best of each is kept.
    #[arg(long, default_value_t = 2, value_parser = clap::value_parser!(u32).range(1..))]
    rounds: u32,
    /// Concurrent issuing tasks; one measurement per value.
    #[arg(long, value_delimiter = ',', default_values_t = [1, 32])]
    #[arg(value_parser = clap::value_parser!(u64).range(1..))]
    tasks: Vec<u64>,
    /// Print one JSON object instead of the table.
    #[arg(long)]
    json: bool,
    /// Entries in the audit log the proof measurement reads from.
    #[arg(long, default_value_t = 200_000)]
    log_entries: u64,
    /// A PostgreSQL database (`postgres://user@127.0.0.1:PORT/db`, on this
    /// machine) to measure issuance on as well; its tables are created if
    /// missing and it keeps the licenses written.
    #[arg(long)]
    postgres: Option<String>,
}

/// One printed figure, with its ratio to its baseline and its target from
/// TARGETS.md when it is a subject.
type Row = (String, String, f64, Option<(f64, &'static str)>);

fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let span = Duration::try_from_secs_f64(args.seconds).context("--seconds")?;
    ensure!(!span.is_zero(), "--seconds must be positive");
    let warm = (span / 5).min(Duration::from_secs(1));
    let dir = tempfile::tempdir()?;
    let pki = DevPki::create(&dir.path().join("pki"), MODEL)?;
    let chip = SimChip::manufacture(&pki.chip_ca, MODEL, 1, FIRMWARE)?;
    let mut rows: Vec<Row> = Vec::new();

    // 1. Appraisal against one raw P-384 verify.
    let verify = p384_verify_op()?;
    let (appraiser, token) = appraiser(&pki, &chip)?;
    let prepare = || answer(&appraiser, &chip, EVIDENCE_BATCH);
    let work = |item: &(Vec<u8>, SpdmEvidence)| appraise(&appraiser, &token, &item.0, &item.1);
    let (mut verifies, mut appraisals) = (0f64, 0f64);
    for round in 1..=args.rounds {
        eprintln!("round {round}/{}: P-384 verify, appraisal", args.rounds);
        verifies = verifies.max(rate(warm, span, unprepared, &verify)?);
        appraisals = appraisals.max(rate(warm, span, prepare, work)?);
    }
    let label = format!("raw P-384 verify, {P384_MESSAGE_LEN} B");
    rows.push(("p384_verify".into(), label, verifies, None));
    let judged = Some((appraisals / verifies, "ratio >= 0.8"));
    let label = "GPU report appraisal, in-process".into();
    rows.push(("appraisal".into(), label, appraisals, judged));

    // 2. Host quote appraisal against one raw P-256 verify plus one raw
    //    Ed25519 verify: the license token and the quote.
    let bound = p256_and_ed25519_verify_op()?;
    let quotes = QuoteBench::new(&pki, &chip)?;
    let prepare = || quotes.batch(EVIDENCE_BATCH);
    let work = |item: &Quote| quotes.appraise(item);
    let (mut bounds, mut appraised) = (0f64, 0f64);
    for round in 1..=args.rounds {
        eprintln!(
            "round {round}/{}: P-256 + Ed25519 verify, quote appraisal",
            args.rounds
        );
        bounds = bounds.max(rate(warm, span, unprepared, &bound)?);
        appraised = appraised.max(rate(warm, span, prepare, work)?);
    }
    let label = "raw P-256 verify + Ed25519 verify".to_owned();
    rows.push(("p256_ed25519_verify".into(), label, bounds, None));
    let judged = Some((appraised / bounds, "ratio >= 0.7"));
    let label = "TPM quote appraisal, in-process".into();
    rows.push(("quote_appraisal".into(), label, appraised, judged));

    // 3. Durable issuance against one raw Ed25519 signature.
    let sign = ed25519_sign_op()?;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    let ledger = dir.path().join("ledger.sqlite");
    let sqlite: Arc<dyn Ledger> = Arc::new(SqliteLedger::open(&ledger)?);
    let (service, request) = runtime.block_on(issuer(&pki, &chip, sqlite))?;
    let (mut signs, mut issued) = (0f64, vec![0f64; args.tasks.len()]);
    for round in 1..=args.rounds {
        eprintln!("round {round}/{}: Ed25519 sign, issuance", args.rounds);
        signs = signs.max(rate(warm, span, unprepared, &sign)?);
        for (best, &tasks) in issued.iter_mut().zip(&args.tasks) {
            runtime.block_on(issue_rate(&service, &request, tasks, warm))?;
            *best = best.max(runtime.block_on(issue_rate(&service, &request, tasks, span))?);
        }
    }
    let label = format!("raw Ed25519 sign, {ED25519_MESSAGE_LEN} B");
    rows.push(("ed25519_sign".into(), label, signs, None));
    for (&per_s, tasks) in issued.iter().zip(&args.tasks) {
        let label = format!("license issuance to SQLite, concurrency {tasks}");
        let judged = Some((per_s / signs, ">= 10000/s"));
        rows.push((format!("issuance_{tasks}_tasks"), label, per_s, judged));
    }
    if let Some(url) = &args.postgres {
        let location: LedgerLocation = url.parse()?;
        let pg = chipward_issuer::ledger::open(&location, &PostgresOptions::default())?;
        let (service, request) = runtime.block_on(issuer(&pki, &chip, pg))?;
        let mut issued = vec![0f64; args.tasks.len()];
        for round in 1..=args.rounds {
            eprintln!("round {round}/{}: issuance to PostgreSQL", args.rounds);
            for (best, &tasks) in issued.iter_mut().zip(&args.tasks) {
                runtime.block_on(issue_rate(&service, &request, tasks, warm))?;
                *best = best.max(runtime.block_on(issue_rate(&service, &request, tasks, span))?);
            }
        }
        for (&per_s, tasks) in issued.iter().zip(&args.tasks) {
            let label = format!("license issuance to PostgreSQL, concurrency {tasks}");
            let judged = Some((per_s / signs, ">= 5000/s"));
            rows.push((format!("issuance_pg_{tasks}_tasks"), label, per_s, judged));
        }
    }

    // 4. The audit log: appends and proofs against raw SHA-256.
    eprintln!("audit log: building {} entries", args.log_entries);
    let log = log::measure(
        &dir.path().join("log.sqlite"),
        args.log_entries.max(1),
        span,
    )?;
    let label = "raw SHA-256 of one encoded entry".to_owned();
    rows.push(("sha256_entry".into(), label, log.sha256_per_s, None));
    let label = format!("audit log append to SQLite, commits of {}", log::BATCH);
    let judged = Some((log.appends_per_s / log.sha256_per_s, ">= 50000/s"));
    rows.push(("log_append".into(), label, log.appends_per_s, judged));
    let label = format!("inclusion proof read and verified, log of {}", log.entries);
    let judged = Some((log.proofs_per_s / log.sha256_per_s, "<= 200 us each"));
    rows.push(("inclusion_proof".into(), label, log.proofs_per_s, judged));

    let now = SystemTime::now().duration_since(UNIX_EPOCH)?.as_secs();
    let (span, warm, rounds) = (span.as_secs_f64(), warm.as_secs_f64(), args.rounds);
    let timing = format!("{span:.1} s after {warm:.1} s warm-up, best of {rounds}");
    let header = [
        ("nproc", std::thread::available_parallelism()?.to_string()),
        ("date", utc_timestamp(now)),
        ("command", std::env::args().collect::<Vec<_>>().join(" ")),
        ("timing", timing),
        ("ledger", format!("SQLite on {}", filesystem_of(&ledger))),
    ];
    let render = if args.json { json } else { table };
    print!("{}", render(&header, &rows));
    Ok(())
}

/// One ring P-256 verify and one Ed25519 verify, the floor of a quote
/// appraisal with its license token.
fn p256_and_ed25519_verify_op() -> anyhow::Result<impl Fn(&()) -> anyhow::Result<()>> {
    let rng = SystemRandom::new();
    let pkcs8 = EcdsaKeyPair::generate_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, &rng)
        .map_err(|_| anyhow!("p-256 key"))?;
    let ec = EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, pkcs8.as_ref(), &rng)
        .map_err(|_| anyhow!("p-256 key"))?;
    let ed = Ed25519Key::generate()?;
    let message = vec![0x5a; 150];
    let ec_sig = ec
        .sign(&rng, &message)
        .map_err(|_| anyhow!("p-256 sign"))?
        .as_ref()
        .to_vec();
    let ed_sig = ed.sign(&message);
    let ec_key =
        UnparsedPublicKey::new(&ECDSA_P256_SHA256_FIXED, ec.public_key().as_ref().to_vec());
    let ed_key = UnparsedPublicKey::new(&ED25519, ed.public_key().to_vec());
    Ok(move |_: &()| {
        ec_key
            .verify(black_box(&message), &ec_sig)
            .map_err(|_| anyhow!("p-256 verify"))?;
        ed_key
            .verify(black_box(&message), &ed_sig)
            .map_err(|_| anyhow!("ed25519 verify"))
    })
}

/// A quote made ahead of timing, with the nonce it answers.
struct Quote {
    nonce: [u8; 32],
    attest: Vec<u8>,
    signature: Vec<u8>,
}

/// A host AK (a ring P-256 key shaped as a TPM public area), its issuer
/// binding, and the verifier side of a quote appraisal.
struct QuoteBench {
    ak: EcdsaKeyPair,
    binding: Vec<u8>,
    token: Vec<u8>,
    issuer_keys: TrustedKeys,
    policy: HostPolicy,
    clocks: HostClocks,
    pcrs: PcrValues,
    clock: AtomicU64,
    chip: ChipId,
}

impl QuoteBench {
    fn new(pki: &DevPki, chip: &SimChip) -> anyhow::Result<Self> {
        let rng = SystemRandom::new();
        let pkcs8 = EcdsaKeyPair::generate_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, &rng)
            .map_err(|_| anyhow!("ak key"))?;
        let ak = EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, pkcs8.as_ref(), &rng)
            .map_err(|_| anyhow!("ak key"))?;
        let public = ecc_public_area(ak.public_key().as_ref());
        let name = TpmPublic::decode_sized(&public)?.name()?;
        let now = now_ms()? / 1000;
        let key = &pki.issuer_token_key;
        let binding = AkBinding {
            host_id: "00".repeat(32),
            ak_public: hex::encode(&public),
            ak_name: hex::encode(name),
            ek_cert_sha256: "00".repeat(32),
            tpm_manufacturer: "bench".into(),
            issued_at: now,
            expires_at: now + 86_400,
        }
        .sign(&key.key_id(), |m| key.sign(m));
        let token = license_claims(chip, now).sign(&key.key_id(), |m| key.sign(m));

        let policy = host_policy(HOST_FIRMWARE);
        let mut pcrs = PcrValues::default();
        for (pcr, component) in FIRMWARE_PCRS.iter().zip(firmware_digests(HOST_FIRMWARE)) {
            pcrs.0.insert((alg::SHA256, *pcr), extended(&[component]));
        }
        pcrs.0
            .insert((alg::SHA256, TENANT_PCR), tenant_pcr_value(TENANT));
        pcrs.0
            .insert((alg::SHA256, DEVICE_PCR), extended(&[chip.chip_id.0]));
        Ok(Self {
            chip: chip.chip_id,
            ak,
            binding,
            token,
            issuer_keys: TrustedKeys::new().with(key.key_id(), key.public_key()),
            policy,
            clocks: HostClocks::default(),
            pcrs,
            clock: AtomicU64::new(1),
        })
    }

    /// Quotes as a TPM would make them, each over a fresh nonce and a later
    /// clock.
    fn batch(&self, n: usize) -> anyhow::Result<Vec<Quote>> {
        let rng = SystemRandom::new();
        let selection = self.policy.selection();
        let concat = self.pcrs.concat_for(&selection).context("pcr values")?;
        let pcr_digest = ring::digest::digest(&ring::digest::SHA256, &concat)
            .as_ref()
            .to_vec();
        (0..n)
            .map(|_| {
                let mut nonce = [0u8; 32];
                ring::rand::SecureRandom::fill(&rng, &mut nonce).map_err(|_| anyhow!("random"))?;
                let attest = Attest {
                    magic: TPM_GENERATED_VALUE,
                    attest_type: TPM_ST_ATTEST_QUOTE,
                    qualified_signer: vec![0, 0x0B],
                    extra_data: nonce.to_vec(),
                    clock_info: ClockInfo {
                        clock: self.clock.fetch_add(1, Ordering::Relaxed),
                        reset_count: 0,
                        restart_count: 0,
                        safe: true,
                    },
                    firmware_version: 1,
                    pcr_select: selection.clone(),
                    pcr_digest: pcr_digest.clone(),
                }
                .encode();
                let rs = self
                    .ak
                    .sign(&rng, &attest)
                    .map_err(|_| anyhow!("quote sign"))?;
                let (r, s) = rs.as_ref().split_at(32);
                let signature = TpmSignature::Ecdsa {
                    hash: alg::SHA256,
                    r: r.to_vec(),
                    s: s.to_vec(),
                }
                .encode();
                Ok(Quote {
                    nonce,
                    attest,
                    signature,
                })
            })
            .collect()
    }

    /// The license token and the host quote, as the verifier appraises
    /// them; fails unless every claim passes.
    fn appraise(&self, quote: &Quote) -> anyhow::Result<()> {
        let now = now_ms()? / 1000;
        let license = license::verify(&self.token, &self.issuer_keys)?;
        license.check_window(now, 60)?;
        let input = HostInput {
            attest: &quote.attest,
            signature: &quote.signature,
            pcrs: &self.pcrs,
            ak_binding: &self.binding,
            devices: &[self.chip.0.to_vec()],
        };
        let ctx = HostContext {
            policy: &self.policy,
            issuer_keys: &self.issuer_keys,
            clocks: &self.clocks,
        };
        let h = appraise_host(
            &input,
            &quote.nonce,
            Some(&license.claims().tenant),
            Some(&self.chip.to_hex()),
            &ctx,
            now,
        );
        for claim in [h.binding, h.quote, h.clock, h.firmware, h.tenant, h.device] {
            ensure!(
                claim.status == Status::Pass,
                "{} did not pass: {}",
                claim.claim,
                claim.reason
            );
        }
        Ok(())
    }
}

/// TPM2B_PUBLIC of a restricted ECDSA-SHA256 P-256 signing key holding
/// `point` (uncompressed), laid out as TPM 2.0 Part 2 tables 185 and 180.
fn ecc_public_area(point: &[u8]) -> Vec<u8> {
    let mut area = vec![0x00, 0x23, 0x00, 0x0B];
    area.extend_from_slice(&0x0005_0072u32.to_be_bytes());
    area.extend_from_slice(&[
        0, 0, 0x00, 0x10, 0x00, 0x18, 0x00, 0x0B, 0x00, 0x03, 0x00, 0x10,
    ]);
    for coordinate in [&point[1..33], &point[33..65]] {
        area.extend_from_slice(&[0, 32]);
        area.extend_from_slice(coordinate);
    }
    let mut out = (area.len() as u16).to_be_bytes().to_vec();
    out.extend_from_slice(&area);
    out
}

/// An appraiser set up as the verifier service sets one up, and a license
/// token for `chip`.
fn appraiser(pki: &DevPki, chip: &SimChip) -> anyhow::Result<(Appraiser, Vec<u8>)> {
    let now_ms = now_ms()?;
    let roots = Roots::new(&[pki.root_cert_der().to_vec()], ChainPolicy::default())?;
    let mut references = ReferenceValues::default();
    let ca = format!("{MODEL} Provisioner CA");
    for block in golden_measurements(MODEL, FIRMWARE) {
        references.insert(&ca, block.index, vec![block.value]);
    }
    let issuer = &pki.issuer_token_key;
    let issuer_keys = TrustedKeys::new().with(issuer.key_id(), issuer.public_key());
    let revocations = Arc::new(RevocationCache::new(i64::MAX));
    let empty = RevocationList {
        seq: 1,
        issued_at: 0,
        entries: vec![],
    };
    ensure!(revocations.update(empty, now_ms), "revocation list refused");
    let result_key = Ed25519Key::from_pkcs8_der(pki.verifier_result_key.pkcs8_der())?;
    let challenges = Challenges::new(NonceKey::generate(), 60_000);
    let settings = AppraisalSettings::default();
    let appraiser = Appraiser::new(
        settings,
        roots,
        references,
        issuer_keys,
        challenges,
        revocations,
        result_key,
    );
    let claims = license_claims(chip, now_ms / 1000);
    Ok((appraiser, claims.sign(&issuer.key_id(), |m| issuer.sign(m))))
}

/// Mints `count` challenges and has the chip answer each. The chip's P-384
/// signing is the device's cost, so this runs outside the timed part.
fn answer(
    appraiser: &Appraiser,
    chip: &SimChip,
    count: usize,
) -> anyhow::Result<Vec<(Vec<u8>, SpdmEvidence)>> {
    (0..count)
        .map(|_| {
            let challenge = appraiser.challenge(now_ms()?).encode();
            let evidence = chip.attest(&challenge, TENANT, SITE.0)?;
            let Some(evidence::Kind::Spdm(spdm)) = evidence.kind else {
                bail!("simulated chip gave no SPDM evidence");
            };
            Ok((challenge, spdm))
        })
        .collect()
}

/// One full appraisal, which must pass.
fn appraise(
    appraiser: &Appraiser,
    token: &[u8],
    challenge: &[u8],
    spdm: &SpdmEvidence,
) -> anyhow::Result<()> {
    let request = AppraisalRequest {
        challenge,
        transcript: &spdm.transcript,
        cert_chain: &spdm.cert_chain,
        license_token: token,
        tenant: TENANT,
        site_id: SITE.0,
        host: None,
        landmark_records: &[],
    };
    let result = appraiser.appraise(&request, now_ms()?)?.result;
    if result.verdict != Status::Pass {
        let failed = result.claims.iter().filter(|c| c.status != Status::Pass);
        let why: Vec<_> = failed
            .map(|c| format!("{} {}", c.claim, c.reason))
            .collect();
        bail!("appraisal did not pass: {}", why.join("; "));
    }
    black_box(result);
    Ok(())
}

/// The issuer service over a SQLite ledger at `ledger`, with `chip`
/// enrolled, and a request for a license for it.
async fn issuer(
    pki: &DevPki,
    chip: &SimChip,
    ledger: Arc<dyn Ledger>,
) -> anyhow::Result<(Arc<IssuerService>, IssueLicenseRequest)> {
    let settings = IssuerSettings::default();
    let service = IssuerService::from_dev_pki(settings, pki, ledger, Arc::new(SystemClock))?;
    let cert_chain = chip.enrolment_chain.clone();
    let enrol = as_admin(EnrolChipRequest { cert_chain });
    let chip_id = service.enrol_chip(enrol).await?.into_inner().chip_id;
    ensure!(chip_id == chip.chip_id.to_hex(), "enrolled another chip");
    let (id, latitude, longitude, radius_km) = SITE;
    let request = IssueLicenseRequest {
        chip_id,
        tenant: TENANT.into(),
        site: Some(Site {
            id: id.into(),
            latitude,
            longitude,
            radius_km,
        }),
        entitlements: vec!["inference".into()],
        eccn: "3A090.a".into(),
        ..IssueLicenseRequest::default()
    };
    Ok((Arc::new(service), request))
}

/// Issuances per second of wall time from `tasks` concurrent callers over
/// `span`; each call returns once the ledger has committed the license.
async fn issue_rate(
    service: &Arc<IssuerService>,
    request: &IssueLicenseRequest,
    tasks: u64,
    span: Duration,
) -> anyhow::Result<f64> {
    let start = Instant::now();
    let mut set = tokio::task::JoinSet::new();
    for _ in 0..tasks {
        let (service, request) = (Arc::clone(service), request.clone());
        set.spawn(async move {
            let mut done = 0u64;
            while start.elapsed() < span {
                let call = as_admin(request.clone());
                let response = service.issue_license(call).await?.into_inner();
                let license = response.license.context("issuer answered no license")?;
                ensure!(!license.token.is_empty(), "issued license has no token");
                done += 1;
            }
            Ok::<u64, anyhow::Error>(done)
        });
    }
    let mut done = 0u64;
    while let Some(joined) = set.join_next().await {
        done += joined??;
    }
    Ok(done as f64 / start.elapsed().as_secs_f64())
}

fn license_claims(chip: &SimChip, now: i64) -> LicenseClaims {
    let (id, latitude, longitude, radius_km) = SITE;
    LicenseClaims {
        issuer: "chipward-issuer".into(),
        chip_id: chip.chip_id,
        audience: "chipward-verifier".into(),
        issued_at: now,
        not_before: now,
        expires_at: now + 86_400,
        token_id: TokenId(*b"chipward-bench-1"),
        tenant: TENANT.into(),
        site: SiteClaim {
            id: id.into(),
            latitude,
            longitude,
            radius_km,
        },
        entitlements: vec!["inference".into()],
        eccn: "3A090.a".into(),
    }
}

fn now_ms() -> anyhow::Result<i64> {
    let since_epoch = SystemTime::now().duration_since(UNIX_EPOCH)?;
    Ok(i64::try_from(since_epoch.as_millis())?)
}

fn table(header: &[(&str, String)], rows: &[Row]) -> String {
    let mut out = String::new();
    for (name, value) in header {
        out += &format!("{name:<8} {value}\n");
    }
    out += &format!(
        "\n{:<44} {:>10} {:>7}  target\n",
        "measure", "ops/s", "ratio"
    );
    for (_, label, per_s, judged) in rows {
        let (ratio, target) = judged.map_or((String::new(), ""), |(r, t)| (format!("{r:.3}"), t));
        out += &format!("{label:<44} {per_s:>10.1} {ratio:>7}  {target}\n");
    }
    out
}

/// The figures of [`table`] as one JSON object.
fn json(header: &[(&str, String)], rows: &[Row]) -> String {
    let mut fields: Vec<_> = header
        .iter()
        // Counts (nproc) as numbers, the rest as strings.
        .map(|(name, value)| match value.parse::<u64>() {
            Ok(n) => format!("\"{name}\":{n}"),
            Err(_) => format!("\"{name}\":{}", json_string(value)),
        })
        .collect();
    for (key, _, per_s, judged) in rows {
        fields.push(format!("\"{key}_per_s\":{}", json_number(*per_s)));
        if let Some((ratio, target)) = judged {
            fields.push(format!("\"{key}_ratio\":{}", json_number(*ratio)));
            fields.push(format!("\"{key}_target\":{}", json_string(target)));
        }
    }
    format!("{{{}}}\n", fields.join(","))
}

/// A JSON string literal (RFC 8259, section 7).
fn json_string(s: &str) -> String {
    let mut out = String::from("\"");
    for c in s.chars() {
        match c {
            '"' | '\\' => out.extend(['\\', c]),
            c if u32::from(c) < 0x20 => out += &format!("\\u{:04x}", u32::from(c)),
            c => out.push(c),
        }
    }
    out + "\""
}

/// JSON has no NaN or infinity; those become null.
fn json_number(x: f64) -> String {
    if x.is_finite() {
        format!("{x:.3}")
    } else {
        "null".into()
    }
}

/// The type of the filesystem holding `path`, read from `/proc/mounts`:
/// what a durable commit costs depends on it (tmpfs never reaches a disk).
fn filesystem_of(path: &Path) -> String {
    let dir = path.parent().and_then(|p| p.canonicalize().ok());
    let mounts = std::fs::read_to_string("/proc/mounts").unwrap_or_default();
    let found = mounts
        .lines()
        .filter_map(|line| {
            let mut fields = line.split_whitespace().skip(1);
            Some((fields.next()?, fields.next()?))
        })
        .filter(|(mount, _)| dir.as_ref().is_some_and(|d| d.starts_with(mount)))
        .max_by_key(|(mount, _)| mount.len());
    found.map_or_else(|| "an unknown filesystem".into(), |(_, fs)| fs.to_owned())
}

/// A request made in process by the vendor administrator: the benchmark
/// calls the service without a socket, so no certificate carries the role.
fn as_admin<T>(message: T) -> tonic::Request<T> {
    let mut request = tonic::Request::new(message);
    let admin = chipward_proto::access::Caller::in_process(
        chipward_proto::access::Role::VendorAdmin,
        &[],
        &[],
        &[],
    );
    request.extensions_mut().insert(admin);
    request
}
