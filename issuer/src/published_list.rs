//! The signed revocation list as served: signed afresh each second.
//!
//! Verifiers judge a list's freshness by its signed `issued_at`, so a list
//! replayed from the past goes stale on its own. Every fetch therefore gets
//! a list signed in the current second. To keep that affordable under load,
//! [`PublishedList`] caches the signed bytes by (sequence number, second)
//! and lets one fetch at a time build: concurrent fetches in the same
//! second wait for that one and share its signature, so at most one
//! Ed25519 signature is made per second and list version. The entries of a
//! version never change, so they are kept too and read from the ledger only
//! when the sequence number moves.
//!
//! Nothing here is attacker-controlled: the entries come from the ledger
//! and the time from the service's clock.

use std::future::Future;
use std::sync::Arc;

use chipward_proto::revocation::{RevocationList, RevokedLicense};
use tokio::sync::Mutex;

/// The last list signed, with its bytes.
struct Signed {
    list: RevocationList,
    bytes: Arc<Vec<u8>>,
}

/// The revocation list most recently signed; see the module notes.
#[derive(Default)]
pub(crate) struct PublishedList {
    last: Mutex<Option<Signed>>,
}

impl PublishedList {
    /// The list to serve at time `now` (Unix seconds), given that the ledger
    /// has reached sequence number `seq`.
    ///
    /// Returns the cached bytes when a list of at least `seq` was signed in
    /// second `now`. Otherwise signs one with `issued_at = now`: over the
    /// cached entries when they are at least `seq`, else over what `read`
    /// returns (a sequence number and the entries it carries, read
    /// together). `now` is taken from `clock` once the build lock is held,
    /// so lists signed one after another never go back in time.
    pub(crate) async fn current<R, Fut, E>(
        &self,
        seq: u64,
        clock: impl FnOnce() -> i64,
        read: R,
        sign: impl FnOnce(&RevocationList) -> Vec<u8>,
    ) -> Result<(u64, Arc<Vec<u8>>), E>
    where
        R: FnOnce() -> Fut,
        Fut: Future<Output = Result<(u64, Vec<RevokedLicense>), E>>,
    {
        let mut last = self.last.lock().await;
        let now = clock();

        // 1. Signed this second, at this version or a newer one: share it.
        let current = last.as_ref().filter(|s| s.list.seq >= seq);
        if let Some(s) = current.filter(|s| s.list.issued_at == now) {
            return Ok((s.list.seq, Arc::clone(&s.bytes)));
        }

        // 2. Same entries, another second: sign them again. A new version:
        //    read its entries first.
        let list = match last.take().filter(|s| s.list.seq >= seq) {
            Some(s) => RevocationList {
                issued_at: now,
                ..s.list
            },
            None => {
                let (seq, entries) = read().await?;
                RevocationList {
                    seq,
                    issued_at: now,
                    entries,
                }
            }
        };

        // 3. Sign, keep, serve.
        let bytes = Arc::new(sign(&list));
        tracing::debug!(
            seq = list.seq,
            issued_at = now,
            bytes = bytes.len(),
            "revocation list signed"
        );
        let seq = list.seq;
        *last = Some(Signed {
            list,
            bytes: Arc::clone(&bytes),
        });
        Ok((seq, bytes))
    }
}

#[cfg(test)]
mod tests {
    use std::convert::Infallible;
    use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};

    use super::*;

    fn entry(n: u8) -> RevokedLicense {
        RevokedLicense {
            token_id: format!("{n:02x}").repeat(16),
            chip_id: "01".repeat(32),
            revoked_at: 5,
            reason: String::new(),
        }
    }

    /// A fake ledger at `seq` holding `seq` entries, counting its reads.
    struct Source {
        seq: u64,
        reads: AtomicU64,
    }

    impl Source {
        async fn read(&self) -> Result<(u64, Vec<RevokedLicense>), Infallible> {
            self.reads.fetch_add(1, Ordering::SeqCst);
            let n = u8::try_from(self.seq).unwrap();
            Ok((self.seq, (1..=n).map(entry).collect()))
        }
    }

    /// "Signs" by encoding the list's number, time and length, so tests
    /// can read back what was signed, and counts the signatures.
    #[derive(Default)]
    struct Signer {
        count: AtomicU64,
    }

    impl Signer {
        fn sign(&self, list: &RevocationList) -> Vec<u8> {
            self.count.fetch_add(1, Ordering::SeqCst);
            format!("{}@{}/{}", list.seq, list.issued_at, list.entries.len()).into_bytes()
        }

        fn count(&self) -> u64 {
            self.count.load(Ordering::SeqCst)
        }
    }

    async fn fetch(
        cache: &PublishedList,
        source: &Source,
        signer: &Signer,
        now: i64,
    ) -> (u64, String) {
        let (seq, bytes) = cache
            .current(source.seq, || now, || source.read(), |l| signer.sign(l))
            .await
            .unwrap();
        (seq, String::from_utf8(bytes.to_vec()).unwrap())
    }

    #[tokio::test]
    async fn signs_once_per_second_and_reads_once_per_version() {
        let cache = PublishedList::default();
        let signer = Signer::default();
        let mut source = Source {
            seq: 2,
            reads: AtomicU64::new(0),
        };

        assert_eq!(
            fetch(&cache, &source, &signer, 100).await,
            (2, "2@100/2".into())
        );
        assert_eq!(
            fetch(&cache, &source, &signer, 100).await,
            (2, "2@100/2".into())
        );
        assert_eq!(signer.count(), 1);

        // A later second: signed again, entries not read again.
        assert_eq!(
            fetch(&cache, &source, &signer, 105).await,
            (2, "2@105/2".into())
        );
        assert_eq!(
            (signer.count(), source.reads.load(Ordering::SeqCst)),
            (2, 1)
        );

        // A new version in the same second: read and signed.
        source.seq = 3;
        assert_eq!(
            fetch(&cache, &source, &signer, 105).await,
            (3, "3@105/3".into())
        );
        assert_eq!(
            (signer.count(), source.reads.load(Ordering::SeqCst)),
            (3, 2)
        );

        // A caller that saw an older number gets the newer list.
        source.seq = 1;
        assert_eq!(
            fetch(&cache, &source, &signer, 105).await,
            (3, "3@105/3".into())
        );
        assert_eq!(
            fetch(&cache, &source, &signer, 106).await,
            (3, "3@106/3".into())
        );
        assert_eq!(source.reads.load(Ordering::SeqCst), 2);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn concurrent_fetches_in_one_second_share_one_signature() {
        let cache = Arc::new(PublishedList::default());
        let source = Arc::new(Source {
            seq: 4,
            reads: AtomicU64::new(0),
        });
        let signer = Arc::new(Signer::default());
        let now = Arc::new(AtomicI64::new(1_000));

        for second in 0..3 {
            let tasks: Vec<_> = (0..32)
                .map(|_| {
                    let (cache, source, now) =
                        (Arc::clone(&cache), Arc::clone(&source), Arc::clone(&now));
                    let signer = Arc::clone(&signer);
                    tokio::spawn(async move {
                        let clock = || now.load(Ordering::SeqCst);
                        let (_, bytes) = cache
                            .current(4, clock, || source.read(), |l| signer.sign(l))
                            .await
                            .unwrap();
                        bytes
                    })
                })
                .collect();
            for task in tasks {
                let bytes = task.await.unwrap();
                let expected = format!("4@{}/4", 1_000 + second);
                assert_eq!(bytes.as_slice(), expected.as_bytes());
            }
            assert_eq!(signer.count(), u64::try_from(second).unwrap() + 1);
            now.fetch_add(1, Ordering::SeqCst);
        }
        assert_eq!(source.reads.load(Ordering::SeqCst), 1);
    }
}
