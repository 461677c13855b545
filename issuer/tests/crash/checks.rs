//! What the restarted issuer must show: every acknowledged license, a log
//! that verifies against every head handed out before the kill, entries and
//! licenses in one-to-one agreement, no stray rows, and service as usual.
//! The numbered list in the crate notes is the order of the checks.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::net::SocketAddr;
use std::sync::Arc;

use chipward_certs::keys::sha256;
use chipward_certs::pki::DevPki;
use chipward_proto::audit::{
    self, AuditEntry, AuditExport, EntryKind, Hash, leaf_hash, tree_head, verify_consistency,
    verify_inclusion,
};
use chipward_proto::cose::TrustedKeys;
use chipward_proto::grpc::audit_log_client::AuditLogClient;
use chipward_proto::grpc::issuer_client::IssuerClient;
use chipward_proto::grpc::{
    ConsistencyProofRequest, ExportBundleRequest, GetEntriesRequest, GetLicenseRequest,
    GetTreeHeadRequest, InclusionProofRequest, License, LicenseStatus, ListLicensesRequest,
    RenewLicenseRequest,
};
use tonic::transport::Channel;

use super::burst::{Record, issue_request, passing_result};
use super::{Chip, Ledger, channel};

/// Most licenses one `ListLicenses` call returns.
const LIST_MAX: usize = 1_000;
/// Connections the one-call-per-item checks spread over.
const PARALLEL: usize = 8;

/// What the restarted issuer served, for the checks after it.
pub(super) struct Served {
    /// The log's size after the restart.
    pub(super) size: u64,
    /// Its root, from the signed head.
    pub(super) root: Hash,
    /// How many licenses the ledger holds.
    pub(super) licenses: usize,
}

/// Clients of the restarted issuer and what the first one acknowledged.
pub(super) struct Checker<'a> {
    addr: SocketAddr,
    issuer: IssuerClient<Channel>,
    log: AuditLogClient<Channel>,
    keys: TrustedKeys,
    chips: &'a [Chip],
    record: &'a Record,
}

impl<'a> Checker<'a> {
    pub(super) async fn new(
        addr: SocketAddr,
        keys: TrustedKeys,
        chips: &'a [Chip],
        record: &'a Record,
    ) -> Self {
        Self {
            addr,
            issuer: IssuerClient::new(channel(addr).await),
            log: AuditLogClient::new(channel(addr).await),
            keys,
            chips,
            record,
        }
    }

    /// Checks 1 to 3 of the crate notes.
    pub(super) async fn everything(&mut self, ledger: &Ledger<'_>) -> Served {
        let licenses = self.licenses().await;
        self.acknowledged_licenses_are_served(&licenses).await;
        lineages_agree(&licenses);

        let (signed, size, root) = self.head().await;
        let entries = self.entries(size).await;
        self.log_checks_offline(&signed, &entries);
        self.proofs_verify(size, &root, &entries).await;
        let decoded = entries_match_licenses(&entries, &licenses, self.chips);
        heads_cover_earlier_acks(self.record, &decoded);
        self.bundles_check_offline(&decoded).await;
        no_stray_rows(ledger, licenses.len(), size);

        Served {
            size,
            root,
            licenses: licenses.len(),
        }
    }

    /// Check 4: one more issue and renewal, logged right after the rest.
    pub(super) async fn keeps_working(&mut self, pki: &DevPki, before: &Served) {
        let issued = self
            .issuer
            .issue_license(issue_request(&self.chips[0]))
            .await
            .unwrap()
            .into_inner()
            .license
            .unwrap();
        let request = RenewLicenseRequest {
            token_id: issued.token_id.clone(),
            attestation_result: passing_result(pki, &issued),
            lifetime_seconds: 0,
        };
        let renewed = IssuerClient::new(super::operator_channel(self.addr))
            .renew_license(request)
            .await
            .unwrap()
            .into_inner()
            .license
            .unwrap();
        assert_eq!(renewed.renewed_from, issued.token_id);
        let state = self.get(&issued.token_id).await.status;
        assert_eq!(state, LicenseStatus::Superseded as i32);
        assert_eq!(self.get(&renewed.token_id).await, renewed);

        let (_, size, root) = self.head().await;
        assert_eq!(size, before.size + 2);
        let path = self.consistency(before.size, size).await;
        verify_consistency(before.size, size, &before.root, &root, &path).unwrap();
        let request = GetEntriesRequest {
            start: before.size,
            limit: 0,
        };
        let added = self.log.get_entries(request).await.unwrap().into_inner();
        let added: Vec<(EntryKind, String)> = added
            .entries
            .iter()
            .map(|e| {
                let e = AuditEntry::decode(e).unwrap();
                (e.kind, e.token_id.unwrap().to_hex())
            })
            .collect();
        assert_eq!(
            added,
            [
                (EntryKind::Issued, issued.token_id),
                (EntryKind::Renewed, renewed.token_id)
            ]
        );
    }

    /// Every license of every chip, by token id, as `ListLicenses` gives it.
    async fn licenses(&mut self) -> HashMap<String, License> {
        let mut all = HashMap::new();
        for chip in self.chips {
            let request = ListLicensesRequest {
                chip_id: chip.id.clone(),
                tenant: String::new(),
                limit: 0,
            };
            let listed = self.issuer.list_licenses(request).await.unwrap();
            let listed = listed.into_inner().licenses;
            assert!(listed.len() < LIST_MAX, "the list may be cut short");
            for l in listed {
                assert_eq!(l.chip_id, chip.id);
                let token_id = l.token_id.clone();
                assert!(all.insert(token_id, l).is_none(), "listed twice");
            }
        }
        all
    }

    /// Check 1: each acknowledged license, as acknowledged, by `GetLicense`
    /// and in the list.
    async fn acknowledged_licenses_are_served(&mut self, listed: &HashMap<String, License>) {
        let ids = self
            .record
            .acks
            .iter()
            .map(|a| a.token_id.clone())
            .collect();
        let served = fan_out(self.addr, ids, |ch, id| async move {
            get(&mut IssuerClient::new(ch), &id).await
        })
        .await;
        for (ack, served) in self.record.acks.iter().zip(served) {
            assert_eq!(ack.status, LicenseStatus::Active as i32);
            assert_eq!(without_status(&served), without_status(ack));
            assert_eq!(listed.get(&ack.token_id), Some(&served));
        }
    }

    async fn get(&mut self, token_id: &str) -> License {
        get(&mut self.issuer, token_id).await
    }

    /// The current signed head, its signature checked: bytes, size, root.
    async fn head(&mut self) -> (Vec<u8>, u64, Hash) {
        let answer = self.log.get_tree_head(GetTreeHeadRequest {}).await;
        let answer = answer.unwrap().into_inner();
        let verified = tree_head::verify(&answer.signed_tree_head, &self.keys).unwrap();
        assert_eq!(verified.head().size, answer.tree_size);
        let root = verified.head().root;
        (answer.signed_tree_head, answer.tree_size, root)
    }

    /// Check 2: every entry, page by page; exactly `size` of them.
    async fn entries(&mut self, size: u64) -> Vec<Vec<u8>> {
        let mut all = Vec::new();
        loop {
            let request = GetEntriesRequest {
                start: all.len() as u64,
                limit: 0,
            };
            let page = self.log.get_entries(request).await.unwrap();
            let page = page.into_inner().entries;
            if page.is_empty() {
                break;
            }
            all.extend(page);
        }
        assert_eq!(all.len() as u64, size, "entries served against the head");
        all
    }

    /// Check 2: the whole log checked offline against the head, every head
    /// from before the kill an earlier head of it, the last the trusted one.
    fn log_checks_offline(&self, signed: &[u8], entries: &[Vec<u8>]) {
        let earlier: Vec<Vec<u8>> = self.record.heads.iter().map(|h| h.signed.clone()).collect();
        let sizes: Vec<u64> = self.record.heads.iter().map(|h| h.size).collect();
        assert!(sizes.is_sorted(), "heads shrank before the kill: {sizes:?}");
        let trusted = earlier.last().expect("a head was fetched before the kill");
        let export = AuditExport::full(signed.to_vec(), entries.to_vec(), earlier.clone());
        let report = audit::check(&export.unwrap(), &self.keys, Some(trusted)).unwrap();
        assert_eq!(report.entries.len(), entries.len());
        assert_eq!(report.earlier_heads.len(), earlier.len());
        assert!(report.trusted_head.is_some());
    }

    /// Check 2: consistency from each head before the kill, inclusion of
    /// every entry under the new head, and of every entry the last head
    /// before the kill covered under that head.
    async fn proofs_verify(&mut self, size: u64, root: &Hash, entries: &[Vec<u8>]) {
        let mut earlier = BTreeMap::new();
        for head in &self.record.heads {
            let verified = tree_head::verify(&head.signed, &self.keys).unwrap();
            earlier.insert(head.size, verified.head().root);
        }
        let sizes = earlier.keys().copied().collect();
        let paths = fan_out(self.addr, sizes, move |ch, old_size| async move {
            consistency(&mut AuditLogClient::new(ch), old_size, size).await
        })
        .await;
        for ((&old_size, old_root), path) in earlier.iter().zip(paths) {
            verify_consistency(old_size, size, old_root, root, &path)
                .unwrap_or_else(|e| panic!("from {old_size} to {size}: {e:?}"));
        }

        let (&last_size, last_root) = earlier.last_key_value().unwrap();
        let mut asks: Vec<(u64, u64, Hash)> = (0..size).map(|i| (i, size, *root)).collect();
        asks.extend((0..last_size).map(|i| (i, last_size, *last_root)));
        let proofs = fan_out(
            self.addr,
            asks.clone(),
            |ch, (index, tree_size, _)| async move {
                let request = InclusionProofRequest { index, tree_size };
                let proof = AuditLogClient::new(ch).get_inclusion_proof(request).await;
                proof.unwrap().into_inner()
            },
        )
        .await;
        for ((index, tree_size, root), proof) in asks.into_iter().zip(proofs) {
            let entry = &entries[usize::try_from(index).unwrap()];
            assert_eq!(&proof.entry, entry, "entry {index}");
            let path = hashes(&proof.path);
            verify_inclusion(&leaf_hash(entry), index, tree_size, &path, &root)
                .unwrap_or_else(|e| panic!("entry {index} in the tree of {tree_size}: {e:?}"));
        }
    }

    async fn consistency(&mut self, old_size: u64, new_size: u64) -> Vec<Hash> {
        consistency(&mut self.log, old_size, new_size).await
    }

    /// Check 3: each chip's evidence bundle checks offline against the last
    /// head before the kill, which the issuer kept, and carries every
    /// license token and result its entries name.
    async fn bundles_check_offline(&mut self, decoded: &[AuditEntry]) {
        let last = self.record.heads.last().unwrap();
        let (trusted, trusted_size) = (last.signed.clone(), last.size);
        let chips: Vec<String> = self.chips.iter().map(|c| c.id.clone()).collect();
        let bundles = fan_out(self.addr, chips.clone(), move |ch, chip_id| async move {
            let request = ExportBundleRequest {
                chip_id,
                from: 0,
                to: i64::MAX,
                trusted_size,
                ..ExportBundleRequest::default()
            };
            let bundle = AuditLogClient::new(ch).export_bundle(request).await;
            bundle.unwrap().into_inner().export_json
        })
        .await;
        for (chip, json) in chips.iter().zip(bundles) {
            let report = audit::check_json(&json, &self.keys, Some(&trusted));
            let report = report.unwrap_or_else(|e| panic!("bundle of {chip}: {e:?}"));
            let of_chip = |e: &&AuditEntry| e.chip_id.map(|c| c.to_hex()).as_ref() == Some(chip);
            assert_eq!(report.entries.len(), decoded.iter().filter(of_chip).count());

            let export = AuditExport::from_json(&json).unwrap();
            let kept = export.earlier_tree_heads.iter().map(|h| {
                let head = tree_head::decode_unverified(&h.0).unwrap();
                head.size
            });
            assert_eq!(kept.collect::<Vec<_>>(), [trusted_size]);
            let carried: BTreeSet<Hash> =
                export.artifacts.iter().map(|a| sha256(&a.data.0)).collect();
            for (index, entry) in &report.entries {
                for name in ["license", "result"] {
                    if let Some(digest) = entry.digests.get(name) {
                        assert!(
                            carried.contains(digest),
                            "{name} of entry {index} is missing"
                        );
                    }
                }
            }
        }
    }
}

/// Runs `call` once per item, spread over [`PARALLEL`] connections of
/// their own, so that calls overlap; the answers come back in item order.
async fn fan_out<I, O, F, Fut>(addr: SocketAddr, items: Vec<I>, call: F) -> Vec<O>
where
    I: Send + 'static,
    O: Send + 'static,
    F: Fn(Channel, I) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = O> + Send,
{
    let call = Arc::new(call);
    let per_task = items.len().div_ceil(PARALLEL).max(1);
    let mut items = items.into_iter();
    let mut tasks = Vec::new();
    loop {
        let chunk: Vec<I> = items.by_ref().take(per_task).collect();
        if chunk.is_empty() {
            break;
        }
        let ch = channel(addr).await;
        let call = Arc::clone(&call);
        tasks.push(tokio::spawn(async move {
            let mut out = Vec::with_capacity(chunk.len());
            for item in chunk {
                out.push(call(ch.clone(), item).await);
            }
            out
        }));
    }
    let mut out = Vec::new();
    for task in tasks {
        out.extend(task.await.unwrap());
    }
    out
}

async fn get(client: &mut IssuerClient<Channel>, token_id: &str) -> License {
    let request = GetLicenseRequest {
        token_id: token_id.into(),
    };
    let answer = client.get_license(request).await;
    let answer = answer.unwrap_or_else(|e| panic!("license {token_id} is gone: {e:?}"));
    answer.into_inner().license.unwrap()
}

async fn consistency(log: &mut AuditLogClient<Channel>, old: u64, new: u64) -> Vec<Hash> {
    let request = ConsistencyProofRequest {
        old_size: old,
        new_size: new,
    };
    let proof = log.get_consistency_proof(request).await;
    let proof = proof.unwrap_or_else(|e| panic!("consistency {old} to {new}: {e:?}"));
    hashes(&proof.into_inner().path)
}

/// Check 1: states follow the lineages. Every renewal's parent is present
/// and superseded; a license is superseded if and only if exactly one
/// license renewed it, and active if none did; nothing was revoked.
fn lineages_agree(licenses: &HashMap<String, License>) {
    let mut children: HashMap<&str, Vec<&str>> = HashMap::new();
    for l in licenses.values() {
        if l.renewed_from.is_empty() {
            continue;
        }
        let parent = licenses.get(&l.renewed_from);
        let parent = parent.unwrap_or_else(|| panic!("{} renewed a missing license", l.token_id));
        assert_eq!(parent.chip_id, l.chip_id);
        children
            .entry(&parent.token_id)
            .or_default()
            .push(&l.token_id);
    }
    for l in licenses.values() {
        let renewals = children.get(l.token_id.as_str()).map_or(0, Vec::len);
        let expected = match renewals {
            0 => LicenseStatus::Active,
            1 => LicenseStatus::Superseded,
            n => panic!("{} was renewed {n} times", l.token_id),
        };
        assert_eq!(l.status, expected as i32, "license {}", l.token_id);
    }
}

/// Check 3: the log names each chip's enrolment once and each license
/// exactly once, issued or renewed as it was, with its token's digest;
/// nothing else. Returns the decoded entries.
fn entries_match_licenses(
    entries: &[Vec<u8>],
    licenses: &HashMap<String, License>,
    chips: &[Chip],
) -> Vec<AuditEntry> {
    let decoded: Vec<AuditEntry> = entries
        .iter()
        .map(|e| AuditEntry::decode(e).unwrap())
        .collect();
    let mut enrolled = Vec::new();
    let mut logged = BTreeSet::new();
    for (index, e) in decoded.iter().enumerate() {
        let chip = e.chip_id.map(|c| c.to_hex());
        if e.kind == EntryKind::ChipEnrolled {
            enrolled.push(chip.unwrap());
            continue;
        }
        assert!(
            matches!(e.kind, EntryKind::Issued | EntryKind::Renewed),
            "entry {index} is {:?}",
            e.kind
        );
        let token_id = e.token_id.unwrap().to_hex();
        let l = licenses
            .get(&token_id)
            .unwrap_or_else(|| panic!("entry {index} names missing license {token_id}"));
        assert!(logged.insert(token_id), "license logged twice at {index}");
        let renewal = !l.renewed_from.is_empty();
        assert_eq!(e.kind == EntryKind::Renewed, renewal, "entry {index}");
        assert_eq!(e.digests.get("license"), Some(&sha256(&l.token)));
        assert_eq!(e.digests.contains_key("result"), renewal);
        assert_eq!(chip.as_ref(), Some(&l.chip_id));
        assert_eq!(e.tenant, l.tenant);
        assert_eq!(&e.site_id, &l.site.as_ref().unwrap().id);
    }
    let ours: Vec<String> = chips.iter().map(|c| c.id.clone()).collect();
    assert_eq!(enrolled, ours, "enrolments, in order");
    assert_eq!(logged.len(), licenses.len(), "licenses without an entry");
    decoded
}

/// Check 2: a head asked for after a license was acknowledged covers that
/// license's entry; an acknowledged write was in the log when answered.
fn heads_cover_earlier_acks(record: &Record, decoded: &[AuditEntry]) {
    let index_of: HashMap<String, usize> = (decoded.iter().enumerate())
        .filter_map(|(i, e)| Some((e.token_id?.to_hex(), i)))
        .collect();
    for head in &record.heads {
        for ack in &record.acks[..head.acks_before] {
            let index = index_of[&ack.token_id];
            assert!(
                (index as u64) < head.size,
                "license {} acknowledged before a head of {} was asked for, logged at {index}",
                ack.token_id,
                head.size
            );
        }
    }
}

/// Check 3: behind the service's back, the database holds exactly the
/// licenses it listed, `size` entries with indices 0 to `size - 1`, and the
/// perfect subtree nodes of a log of that size: at each level, one per
/// complete group of leaves.
fn no_stray_rows(ledger: &Ledger<'_>, licenses: usize, size: u64) {
    let nodes: u64 = (0..64).map(|level| size >> level).sum();
    let count = |sql: &str| -> u64 {
        let n = match ledger {
            Ledger::Sqlite(path) => {
                let flags = rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY;
                let conn = rusqlite::Connection::open_with_flags(path, flags).unwrap();
                conn.query_row(sql, [], |r| r.get::<_, i64>(0)).unwrap()
            }
            Ledger::Postgres(db) => db.query_i64(sql),
        };
        u64::try_from(n).unwrap()
    };
    assert_eq!(count("SELECT count(*) FROM licenses"), licenses as u64);
    assert_eq!(count("SELECT count(*) FROM audit_entries"), size);
    let dense = "SELECT count(*) FROM audit_entries WHERE idx >= 0 AND idx < ";
    assert_eq!(count(&format!("{dense}{size}")), size);
    assert_eq!(count("SELECT count(*) FROM audit_nodes"), nodes);
    if let Ledger::Postgres(_) = ledger {
        assert_eq!(count("SELECT size FROM audit_head"), size);
    }
}

fn without_status(l: &License) -> License {
    License {
        status: LicenseStatus::Unspecified as i32,
        ..l.clone()
    }
}

fn hashes(path: &[Vec<u8>]) -> Vec<Hash> {
    path.iter()
        .map(|h| <Hash>::try_from(h.as_slice()).unwrap())
        .collect()
}
