//! The fleet watched over time: after the first round, the clock moves on
//! and the chips attest again, then every signed result of the run is
//! read back and analysed as a whole
//! ([`chipward_verifier::fleet::analyse`]) against the licenses the issuer
//! holds for the chips seen.
//!
//! Round 2, [`ROUND_GAP_SECS`] later: every chip that passed round 1, on
//! the license it holds now, except the chips that go silent
//! ([`Fault::Reappearing`]). Round 3, [`REAPPEAR_AFTER_SECS`] after round
//! 1: only those, back at another site. That is long enough to fly between
//! any two of the fleet's sites, so only the silence gives them away. Other
//! chips are not asked to attest in round 3; the analysis reads each chip's
//! own sequence, so that changes nothing for them.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::{Duration, Instant};

use chipward_proto::grpc::{InfoRequest, ListLicensesRequest};
use chipward_proto::result::{self, Status, VerifiedResult};
use chipward_verifier::fleet::{
    Finding, LicenseView, Sighting, WatchSettings, analyse, site_directory,
};
use chipward_verifier::location::{Cap, Point};

use super::{AttestContext, Attested, Fault, Member, REAPPEAR_ROUND, Visit, attest_round};

/// Scenario time between rounds, seconds: shorter than the analysis's
/// silence threshold, so a chip that attests every round is never silent.
pub const ROUND_GAP_SECS: i64 = 4 * 3_600;

/// Scenario time from round 1 to round 3, seconds: Washington to Singapore,
/// the farthest pair of sites (about 15,500 km), takes an airliner about 16
/// hours.
pub const REAPPEAR_AFTER_SECS: i64 = 20 * 3_600;

/// The later rounds and what the fleet view found.
#[derive(Clone, Debug)]
pub struct Integrity {
    /// Rounds run, the first included.
    pub rounds: u8,
    /// Signed results read back.
    pub appraisals: usize,
    /// Results whose evidence the chip itself made.
    pub sightings: usize,
    /// What the analysis flagged.
    pub findings: Vec<Finding>,
    /// Fleet indices of each chip id, lowercase hex (a leaked key's copy
    /// shares its chip's id).
    pub indices: BTreeMap<String, Vec<usize>>,
}

impl Integrity {
    /// Fleet indices of every chip id involved in a finding of `kind`.
    pub fn chips_in(&self, kind: &str) -> BTreeSet<usize> {
        self.findings
            .iter()
            .filter(|f| f.kind() == kind)
            .flat_map(Finding::chips)
            .flat_map(|id| self.indices.get(id).into_iter().flatten().copied())
            .collect()
    }
}

/// Rounds 2 and 3, then the analysis over every result of the run.
pub(super) async fn follow_up(
    members: &Arc<Vec<Member>>,
    first: &[Attested],
    ctx: &Arc<AttestContext>,
) -> anyhow::Result<Integrity> {
    let mut signed: Vec<Vec<u8>> = first.iter().flat_map(|a| a.signed.clone()).collect();
    let visit = |a: &Attested| Visit {
        slot: a.outcome.index,
        token: a.token.clone(),
        token_id: a.token_id.clone(),
    };

    let second: Vec<Visit> = first
        .iter()
        .filter(|a| a.outcome.verdict == Status::Pass)
        .filter(|a| a.outcome.fault != Some(Fault::Reappearing))
        .map(visit)
        .collect();
    advance(ctx, ROUND_GAP_SECS).await?;
    for a in attest_round(members, second, 2, ctx).await? {
        signed.extend(a.signed);
    }

    let third: Vec<Visit> = first
        .iter()
        .filter(|a| a.outcome.fault == Some(Fault::Reappearing))
        .map(visit)
        .collect();
    advance(ctx, REAPPEAR_AFTER_SECS - ROUND_GAP_SECS).await?;
    for a in attest_round(members, third, REAPPEAR_ROUND, ctx).await? {
        signed.extend(a.signed);
    }

    analyse_run(members, &signed, ctx).await
}

/// Moves the clock to the next round and waits until the verifier holds a
/// revocation list signed since, so no appraisal meets a stale one.
async fn advance(ctx: &AttestContext, secs: i64) -> anyhow::Result<()> {
    ctx.clock.advance(secs)?;
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let info = ctx
            .verifier
            .clone()
            .info(InfoRequest {})
            .await?
            .into_inner();
        if (0..5_000).contains(&info.revocation_age_ms) {
            return Ok(());
        }
        anyhow::ensure!(
            Instant::now() < deadline,
            "verifier did not refresh its revocation list in 30 s"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

async fn analyse_run(
    members: &[Member],
    signed: &[Vec<u8>],
    ctx: &AttestContext,
) -> anyhow::Result<Integrity> {
    let verified = signed
        .iter()
        .map(|bytes| result::verify(bytes, &ctx.verifier_keys))
        .collect::<Result<Vec<VerifiedResult>, _>>()?;
    let chip_ids: BTreeSet<&str> = verified
        .iter()
        .map(|v| v.result().chip_id.as_str())
        .filter(|id| !id.is_empty())
        .collect();
    let licenses = licenses_of(&chip_ids, ctx).await?;
    let sites = site_directory(&licenses);
    let sightings: Vec<Sighting> = verified
        .iter()
        .filter_map(|v| Sighting::from_result(v, &sites))
        .collect();
    let mut indices: BTreeMap<String, Vec<usize>> = BTreeMap::new();
    for m in members {
        indices
            .entry(m.chip.chip_id.to_hex())
            .or_default()
            .push(m.index);
    }
    Ok(Integrity {
        rounds: REAPPEAR_ROUND,
        appraisals: verified.len(),
        sightings: sightings.len(),
        findings: analyse(&sightings, &licenses, &WatchSettings::default()),
        indices,
    })
}

/// Every license the issuer holds for these chips, renewals included.
async fn licenses_of(
    chip_ids: &BTreeSet<&str>,
    ctx: &AttestContext,
) -> anyhow::Result<Vec<LicenseView>> {
    let mut out = Vec::new();
    for chip_id in chip_ids {
        let request = ListLicensesRequest {
            chip_id: (*chip_id).to_owned(),
            tenant: String::new(),
            limit: 0,
        };
        let listed = ctx
            .auditor
            .clone()
            .list_licenses(request)
            .await?
            .into_inner();
        for l in listed.licenses {
            let site = l
                .site
                .ok_or_else(|| anyhow::anyhow!("license {} has no site", l.token_id))?;
            out.push(LicenseView {
                chip_id: l.chip_id,
                tenant: l.tenant,
                site_id: site.id,
                site: Cap {
                    center: Point::new(site.latitude, site.longitude)?,
                    radius_km: site.radius_km,
                },
                not_before: l.not_before,
                expires_at: l.expires_at,
            });
        }
    }
    Ok(out)
}
