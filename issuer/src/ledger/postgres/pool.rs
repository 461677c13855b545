//! A small bounded pool of PostgreSQL connections.
//!
//! At most `max_connections` are open at once; a call that finds none free
//! waits up to `acquire_timeout`, then fails as unavailable. Connections
//! open lazily and a closed one is dropped when it comes back, so the pool
//! recovers by itself after the server restarts. Nothing here reads
//! untrusted input.
//!
//! The sync driver runs a small tokio runtime inside every connection, and
//! tokio panics when a runtime is shut down inside an async task. So the
//! idle connections are closed on a thread of their own when the pool is
//! dropped, which makes dropping a ledger safe anywhere.

use std::sync::{Condvar, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

use postgres::{Client, NoTls};
use thiserror::Error;

use crate::ledger::LedgerError;

/// Open connections to one database.
pub(super) struct Pool {
    config: postgres::Config,
    max: usize,
    acquire_timeout: Duration,
    lock_timeout: Duration,
    state: Mutex<State>,
    freed: Condvar,
}

struct State {
    idle: Vec<Client>,
    /// Idle plus lent plus being opened.
    open: usize,
}

/// No connection came free in time.
#[derive(Debug, Error)]
#[error("no ledger connection came free within {0:?}")]
struct Exhausted(Duration);

impl Pool {
    /// A pool of at most `max` connections (at least one) made with
    /// `config`, whose statements wait at most `lock_timeout` for a lock.
    pub(super) fn new(
        config: postgres::Config,
        max: usize,
        acquire_timeout: Duration,
        lock_timeout: Duration,
    ) -> Self {
        Self {
            config,
            max: max.max(1),
            acquire_timeout,
            lock_timeout,
            state: Mutex::new(State {
                idle: Vec::new(),
                open: 0,
            }),
            freed: Condvar::new(),
        }
    }

    /// An idle connection, a new one if the pool has room, or the first one
    /// returned within the acquire timeout.
    pub(super) fn get(&self) -> Result<Lent<'_>, LedgerError> {
        let deadline = Instant::now() + self.acquire_timeout;
        let mut state = self.lock();
        loop {
            if let Some(client) = state.idle.pop() {
                if client.is_closed() {
                    state.open -= 1;
                    drop(state);
                    drop(client);
                    state = self.lock();
                    continue;
                }
                return Ok(self.lend(client));
            }
            if state.open < self.max {
                state.open += 1;
                drop(state);
                return self.open();
            }
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                let err = Exhausted(self.acquire_timeout);
                return Err(LedgerError::Unavailable(Box::new(err)));
            }
            state = self
                .freed
                .wait_timeout(state, left)
                .unwrap_or_else(PoisonError::into_inner)
                .0;
        }
    }

    /// Opens the connection whose slot the caller has just taken.
    fn open(&self) -> Result<Lent<'_>, LedgerError> {
        let session = |client| prepare_session(client, self.lock_timeout);
        match self.config.connect(NoTls).and_then(session) {
            Ok(client) => Ok(self.lend(client)),
            Err(err) => {
                self.lock().open -= 1;
                self.freed.notify_one();
                // Whatever stops a connection (refused, unknown database,
                // bad password, too many clients) leaves the ledger
                // unreachable, not broken.
                Err(LedgerError::Unavailable(Box::new(err)))
            }
        }
    }

    fn lend(&self, client: Client) -> Lent<'_> {
        Lent {
            pool: self,
            client: Some(client),
        }
    }

    fn give_back(&self, client: Client) {
        let mut state = self.lock();
        if client.is_closed() {
            state.open -= 1;
            drop(state);
            drop(client);
        } else {
            state.idle.push(client);
            drop(state);
        }
        self.freed.notify_one();
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        // The state holds no invariant a panic could break halfway: counts
        // change in single steps.
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// Sets up a new connection's session.
///
/// Every commit waits for its WAL flush, as the ledger promises, even where
/// the server turned `synchronous_commit` off; the other values (`local`,
/// `remote_write`, `on`, `remote_apply`) all flush locally and are kept.
/// And a statement waits at most `lock_timeout` for a lock another process
/// holds, then fails as unavailable, like SQLite's busy timeout.
fn prepare_session(mut client: Client, lock_timeout: Duration) -> Result<Client, postgres::Error> {
    let row = client.query_one("SHOW synchronous_commit", &[])?;
    if row.try_get::<_, &str>(0)? == "off" {
        client.batch_execute("SET synchronous_commit = on")?;
    }
    let millis = lock_timeout.as_millis().clamp(1, i32::MAX as u128);
    client.batch_execute(&format!("SET lock_timeout = {millis}"))?;
    Ok(client)
}

impl Drop for Pool {
    fn drop(&mut self) {
        let idle = std::mem::take(&mut self.lock().idle);
        if idle.is_empty() {
            return;
        }
        // Close them outside any async context (see the module note), and
        // wait, so that the server has seen them go when the ledger is gone.
        let closer = std::thread::Builder::new()
            .name("ledger-pool-close".into())
            .spawn(move || drop(idle));
        if let Ok(handle) = closer {
            let _ = handle.join();
        }
    }
}

/// A connection lent by the pool; it goes back when dropped.
pub(super) struct Lent<'p> {
    pool: &'p Pool,
    client: Option<Client>,
}

impl Lent<'_> {
    /// The connection.
    pub(super) fn client(&mut self) -> &mut Client {
        self.client
            .as_mut()
            .expect("a lent connection is only taken back when dropped")
    }
}

impl Drop for Lent<'_> {
    fn drop(&mut self) {
        if let Some(client) = self.client.take() {
            self.pool.give_back(client);
        }
    }
}
