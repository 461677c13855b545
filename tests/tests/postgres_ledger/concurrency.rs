//! Two ledgers on one database, as two issuer processes sharing it would
//! be, each driven by several threads released together. Whatever the
//! interleaving, the ledger's invariants must hold: one new revocation
//! version per revoking call with no gaps or repeats, a license renewed at
//! most once, token ids and chip identities never taken twice, and a
//! lineage never left half revoked.

use std::sync::Barrier;

use chipward_issuer::ledger::conformance::{chip, host_key, license, note};
use chipward_issuer::ledger::{
    ChipRecord, Ledger, LedgerError, LicenseFilter, LicenseRecord, LicenseState, PostgresLedger,
    Revocation,
};
use chipward_proto::{ChipId, TokenId};
use chipward_tests::postgres::{self, Database};

use super::connect;

/// Threads per ledger in every race.
pub(super) const THREADS: usize = 4;

/// A fresh database and two ledgers on it, each with a pool of its own.
pub(super) fn two_ledgers() -> (Database<'static>, [PostgresLedger; 2]) {
    let db = postgres::database();
    let ledgers = [connect(&db), connect(&db)];
    (db, ledgers)
}

/// Runs `work(ledger, racer)` for racers `0..2 * THREADS`, even racers on
/// the first ledger and odd ones on the second, all released at once, and
/// returns the results in racer order.
pub(super) fn race<T: Send>(
    ledgers: &[PostgresLedger; 2],
    work: impl Fn(&dyn Ledger, usize) -> T + Sync,
) -> Vec<T> {
    let start = Barrier::new(2 * THREADS);
    std::thread::scope(|s| {
        let racers: Vec<_> = (0..2 * THREADS)
            .map(|racer| {
                let (start, work) = (&start, &work);
                let ledger: &dyn Ledger = &ledgers[racer % 2];
                s.spawn(move || {
                    start.wait();
                    work(ledger, racer)
                })
            })
            .collect();
        racers.into_iter().map(|r| r.join().unwrap()).collect()
    })
}

/// A token id from two numbers, distinct for distinct pairs.
fn tid(a: u8, b: u8) -> TokenId {
    let mut id = [0x5a; 16];
    id[0] = a;
    id[1] = b;
    TokenId(id)
}

fn licensed(token_id: TokenId, tenant: &str, renewed_from: Option<TokenId>) -> LicenseRecord {
    let mut l = license(0, 1, tenant, 100);
    l.token_id = token_id;
    l.renewed_from = renewed_from;
    l
}

#[test]
fn revocation_versions_grow_by_one_per_revoking_call_across_two_issuers() {
    let (db, ledgers) = two_ledgers();
    let ledger = &ledgers[0];
    ledger.enrol_chip(&chip(1), &note()).unwrap();
    let singles: Vec<TokenId> = (0..64).map(|n| tid(1, n)).collect();
    for &t in &singles {
        ledger
            .insert_license(&licensed(t, "acme", None), &note())
            .unwrap();
    }
    // One lineage of three, reached through each of its members.
    let lineage = [tid(2, 0), tid(2, 1), tid(2, 2)];
    ledger
        .insert_license(&licensed(lineage[0], "acme", None), &note())
        .unwrap();
    for pair in lineage.windows(2) {
        let next = licensed(pair[1], "acme", Some(pair[0]));
        ledger.renew(&pair[0], &next, &note()).unwrap();
    }

    // Every racer revokes its share of the singles, then the first single
    // and one lineage member, which every racer goes for.
    let results = race(&ledgers, |ledger, racer| {
        let mut mine = Vec::new();
        for &t in singles.iter().skip(racer).step_by(2 * THREADS) {
            mine.push((t, ledger.revoke(&t, "racing", 1, &note()).unwrap()));
        }
        for t in [singles[0], lineage[racer % 3]] {
            mine.push((t, ledger.revoke(&t, "contended", 2, &note()).unwrap()));
        }
        mine
    });
    let calls: Vec<(TokenId, Revocation)> = results.into_iter().flatten().collect();

    // 64 singles and one lineage: 65 versions, each made by exactly one call.
    let mut made: Vec<u64> = calls
        .iter()
        .filter(|(_, r)| r.newly_revoked > 0)
        .map(|(_, r)| r.seq)
        .collect();
    made.sort_unstable();
    assert_eq!(made, (1..=65).collect::<Vec<u64>>());

    // Calls on an already revoked license name the version that revoked it.
    let first_single = version_of(&calls, &[singles[0]]);
    let whole_lineage = version_of(&calls, &lineage);
    assert_ne!(first_single, whole_lineage);
    let lineage_calls = calls.iter().filter(|(t, _)| lineage.contains(t));
    assert!(lineage_calls.clone().all(|(_, r)| r.lineage == 3));
    assert_eq!(
        lineage_calls.map(|(_, r)| r.newly_revoked).sum::<usize>(),
        3
    );

    for ledger in &ledgers {
        let (seq, entries) = ledger.revocations().unwrap();
        assert_eq!(seq, 65);
        assert_eq!(entries.len(), 67);
    }
    assert_eq!(
        db.query_i64("SELECT count(DISTINCT seq) * 1000 + max(seq) FROM revocations"),
        65_065
    );
    let active = ledgers[1]
        .list_licenses(&LicenseFilter::default(), 1000)
        .unwrap()
        .into_iter()
        .filter(|l| l.state != LicenseState::Revoked)
        .count();
    assert_eq!(active, 0);
}

/// The one version every call on a member of `tokens` returned.
fn version_of(calls: &[(TokenId, Revocation)], tokens: &[TokenId]) -> u64 {
    let mut seqs: Vec<u64> = calls
        .iter()
        .filter(|(t, _)| tokens.contains(t))
        .map(|(_, r)| r.seq)
        .collect();
    seqs.dedup();
    assert_eq!(seqs.len(), 1, "{seqs:?}");
    seqs[0]
}

#[test]
fn a_license_is_renewed_once_when_two_issuers_race_to_renew_it() {
    let (_db, ledgers) = two_ledgers();
    ledgers[0].enrol_chip(&chip(1), &note()).unwrap();
    for round in 0..15 {
        let old = tid(3, round);
        ledgers[0]
            .insert_license(&licensed(old, "acme", None), &note())
            .unwrap();

        let outcomes = race(&ledgers, |ledger, racer| {
            let new = licensed(
                tid(4 + u8::try_from(racer).unwrap(), round),
                "acme",
                Some(old),
            );
            ledger.renew(&old, &new, &note())
        });

        let winners: Vec<usize> = (0..outcomes.len())
            .filter(|&r| outcomes[r].is_ok())
            .collect();
        assert_eq!(winners.len(), 1, "round {round}: {outcomes:?}");
        for outcome in outcomes.iter().filter_map(|o| o.as_ref().err()) {
            assert!(
                matches!(
                    outcome,
                    LedgerError::NotActive {
                        state: LicenseState::Superseded,
                        ..
                    }
                ),
                "round {round}: {outcome:?}"
            );
        }
        let winner = u8::try_from(winners[0]).unwrap();
        let ledger = &ledgers[usize::from(winner % 2)];
        assert_eq!(
            ledger.license(&old).unwrap().unwrap().state,
            LicenseState::Superseded
        );
        for racer in 0..u8::try_from(2 * THREADS).unwrap() {
            let stored = ledgers[1].license(&tid(4 + racer, round)).unwrap();
            assert_eq!(
                stored.is_some(),
                racer == winner,
                "round {round} racer {racer}"
            );
        }
    }
    let all = ledgers[1]
        .list_licenses(&LicenseFilter::default(), 1000)
        .unwrap();
    assert_eq!(all.len(), 30);
    assert_eq!(
        all.iter()
            .filter(|l| l.state == LicenseState::Active)
            .count(),
        15
    );
}

#[test]
fn token_ids_and_enrolments_are_taken_once_when_two_issuers_race() {
    let (_db, ledgers) = two_ledgers();
    ledgers[0].enrol_chip(&chip(1), &note()).unwrap();
    for round in 0..15 {
        // The same token id, each racer for another tenant.
        let token = tid(5, round);
        let outcomes = race(&ledgers, |ledger, racer| {
            ledger.insert_license(&licensed(token, &format!("tenant-{racer}"), None), &note())
        });
        let winners: Vec<usize> = (0..outcomes.len())
            .filter(|&r| outcomes[r].is_ok())
            .collect();
        assert_eq!(winners.len(), 1, "round {round}: {outcomes:?}");
        for err in outcomes.iter().filter_map(|o| o.as_ref().err()) {
            assert!(
                matches!(err, LedgerError::DuplicateToken { token_id } if *token_id == token),
                "{err:?}"
            );
        }
        let stored = ledgers[1].license(&token).unwrap().unwrap();
        assert_eq!(stored.tenant, format!("tenant-{}", winners[0]));

        // One chip, half the racers with one certificate, half another.
        let id = 10 + round;
        let outcomes = race(&ledgers, |ledger, racer| {
            let mut record = chip(id);
            record.identity_cert.push(u8::try_from(racer % 2).unwrap());
            ledger.enrol_chip(&record, &note())
        });
        let stored: ChipRecord = ledgers[0].chip(&ChipId([id; 32])).unwrap().unwrap();
        let kept = usize::from(*stored.identity_cert.last().unwrap());
        for (racer, outcome) in outcomes.iter().enumerate() {
            match outcome {
                Ok(_) => assert_eq!(racer % 2, kept, "round {round}"),
                Err(LedgerError::Conflict { .. }) => assert_ne!(racer % 2, kept),
                Err(e) => panic!("round {round}: {e:?}"),
            }
        }
        let inserted = outcomes.iter().filter(|o| matches!(o, Ok(true))).count();
        assert_eq!(inserted, 1, "round {round}: {outcomes:?}");

        // One host key, recorded once.
        let outcomes = race(&ledgers, |ledger, _| {
            ledger.enrol_host(&host_key(id, 1, 5), &note())
        });
        let recorded = outcomes.iter().filter(|o| matches!(o, Ok(true))).count();
        assert_eq!(recorded, 1, "round {round}: {outcomes:?}");
        assert!(outcomes.iter().all(Result::is_ok), "{outcomes:?}");
    }
}

/// What one racer of a revocation-and-renewal race did.
#[derive(Debug)]
enum Move {
    Revoked(Result<Revocation, LedgerError>),
    Renewed(Result<u64, LedgerError>),
}

#[test]
fn a_renewal_racing_a_revocation_never_leaves_the_lineage_half_revoked() {
    let (_db, ledgers) = two_ledgers();
    ledgers[0].enrol_chip(&chip(1), &note()).unwrap();
    for round in 0..15 {
        let old = tid(6, round);
        ledgers[0]
            .insert_license(&licensed(old, "acme", None), &note())
            .unwrap();

        // Even racers revoke, odd ones renew, each into its own token.
        let moves = race(&ledgers, |ledger, racer| {
            if racer % 2 == 0 {
                Move::Revoked(ledger.revoke(&old, "stolen", 9, &note()))
            } else {
                let new_id = tid(7 + u8::try_from(racer).unwrap(), round);
                Move::Renewed(ledger.renew(&old, &licensed(new_id, "acme", Some(old)), &note()))
            }
        });
        let mut revocations = Vec::new();
        let mut renewed = 0;
        for m in &moves {
            match m {
                Move::Revoked(r) => revocations.push(*r.as_ref().unwrap()),
                Move::Renewed(Ok(_)) => renewed += 1,
                Move::Renewed(Err(e)) => assert!(
                    matches!(e, LedgerError::NotActive { .. }),
                    "round {round}: {e:?}"
                ),
            }
        }

        // At most one renewal, and the revocation saw it or it saw the
        // revocation: the lineage is one license or two, all revoked.
        assert!(renewed <= 1, "round {round}: {moves:?}");
        let made: Vec<&Revocation> = revocations.iter().filter(|r| r.newly_revoked > 0).collect();
        assert_eq!(made.len(), 1, "round {round}: {revocations:?}");
        assert_eq!(made[0].seq, u64::from(round) + 1);
        assert!(revocations.iter().all(|r| r.seq == made[0].seq));
        assert_eq!(made[0].lineage, 1 + renewed, "round {round}: {moves:?}");
        assert_eq!(made[0].newly_revoked, 1 + renewed);
    }
    let active = ledgers[0]
        .list_licenses(&LicenseFilter::default(), 1000)
        .unwrap()
        .into_iter()
        .filter(|l| l.state == LicenseState::Active)
        .count();
    assert_eq!(active, 0);
}

#[test]
fn issuers_starting_together_create_the_schema_once() {
    let db = postgres::database();
    let url = db.url().parse().unwrap();
    let start = Barrier::new(8);
    let opened: Vec<_> = std::thread::scope(|s| {
        let openers: Vec<_> = (0..8)
            .map(|_| {
                s.spawn(|| {
                    start.wait();
                    PostgresLedger::connect(&url)
                })
            })
            .collect();
        openers.into_iter().map(|o| o.join().unwrap()).collect()
    });
    for ledger in &opened {
        assert!(ledger.is_ok(), "{:?}", ledger.as_ref().err());
    }
    assert_eq!(db.query_i64("SELECT count(*) FROM schema_version"), 1);
    let ledger = opened.into_iter().next().unwrap().unwrap();
    assert!(ledger.enrol_chip(&chip(1), &note()).unwrap());
}
