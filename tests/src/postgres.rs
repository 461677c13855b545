//! A throwaway PostgreSQL server for the ledger tests, run from Debian's
//! server binaries (`/usr/lib/postgresql/<version>/bin`, from the
//! `postgresql` package; `CHIPWARD_PG_BIN` names another folder).
//!
//! [`start`] creates a private cluster in a temporary folder: trust
//! authentication, superuser `chipward`, listening on 127.0.0.1 only at a
//! free port, its unix socket in that folder, `fsync` on. A server already
//! running on the machine is never used. PostgreSQL refuses to run as
//! root, so as root the cluster belongs to the `postgres` system user and
//! its commands run through `runuser`. Missing binaries fail the test with
//! a message saying how to install them; nothing is skipped.
//!
//! A watchdog process stops the server and removes the folder as soon as
//! this process lets go of it: when the [`Server`] drops, or when the test
//! binary exits, however it exits. That is what lets [`shared`] start one
//! server per test binary and never stop it itself. [`database`] hands each
//! test a fresh database on it with a random name, dropped afterwards.
//!
//! Every database call here runs on a thread of its own, so tests may use
//! these helpers inside async tests too: the sync driver must not run
//! inside a tokio runtime.

use std::collections::hash_map::RandomState;
use std::fs::{self, OpenOptions};
use std::hash::BuildHasher;
use std::io::Write;
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::OnceLock;
use std::sync::atomic::{AtomicU64, Ordering};

use postgres::{Client, NoTls};

/// The superuser of every throwaway cluster.
pub const SUPERUSER: &str = "chipward";

/// How to get the binaries, for every message that misses them.
const INSTALL: &str = "run scripts/test.sh, or apt-get install postgresql \
     (the tests start their own server; a running one is not used)";

/// A running throwaway PostgreSQL server.
pub struct Server {
    port: u16,
    dir: PathBuf,
    watchdog: Child,
}

impl std::fmt::Debug for Server {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Server").field("port", &self.port).finish()
    }
}

/// Starts a server of its own for the caller, or fails the test, saying
/// why. It stops when the [`Server`] drops.
pub fn start() -> Server {
    let bin = bin_dir().unwrap_or_else(|e| panic!("{e}"));
    let user = RunAs::detect();
    let dir = tempfile::Builder::new()
        .prefix("chipward-pg-")
        .tempdir()
        .expect("creating a temporary folder")
        .keep();
    user.own(&dir);

    // The watchdog comes first, so the folder is removed whatever fails.
    let data = dir.join("data");
    let pg_ctl = bin.join("pg_ctl");
    let mut stop = user.command(&pg_ctl);
    stop.arg("-D").arg(&data).args(["-m", "fast", "-w", "stop"]);
    let watchdog = watchdog(&dir, &stop);
    let mut server = Server {
        port: 0,
        dir,
        watchdog,
    };

    let mut initdb = user.command(&bin.join("initdb"));
    initdb.arg("-D").arg(&data);
    initdb.args(["-U", SUPERUSER, "-A", "trust", "-E", "UTF8", "--locale=C"]);
    run(&mut initdb, "initdb");

    // A free port may be taken between finding and binding it: try again.
    for _ in 0..5 {
        server.port = free_port();
        configure(&data, &server.dir, server.port);
        let mut start = user.command(&pg_ctl);
        start
            .arg("-D")
            .arg(&data)
            .arg("-l")
            .arg(server.dir.join("server.log"));
        start.args(["-w", "-t", "60", "start"]);
        if start.output().is_ok_and(|o| o.status.success()) {
            return server;
        }
        let log = fs::read_to_string(server.dir.join("server.log")).unwrap_or_default();
        assert!(
            log.contains("could not bind") || log.contains("already in use"),
            "postgres did not start:\n{log}"
        );
    }
    panic!("postgres found no free port in five tries");
}

/// The server shared by every test of this binary, started on first use.
pub fn shared() -> &'static Server {
    static SHARED: OnceLock<Server> = OnceLock::new();
    SHARED.get_or_init(start)
}

/// A fresh, empty database on the [`shared`] server.
pub fn database() -> Database<'static> {
    shared().database()
}

impl Server {
    /// The TCP port on 127.0.0.1.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// The URL of `database` on this server, as the superuser.
    pub fn url(&self, database: &str) -> String {
        format!("postgres://{SUPERUSER}@127.0.0.1:{}/{database}", self.port)
    }

    /// Creates a database with a random name, dropped with the guard.
    pub fn database(&self) -> Database<'_> {
        static COUNT: AtomicU64 = AtomicU64::new(0);
        let count = COUNT.fetch_add(1, Ordering::Relaxed);
        let random = RandomState::new().hash_one(count);
        let name = format!("cw_{random:016x}_{count}");
        let create = format!("CREATE DATABASE \"{name}\"");
        self.admin(move |c| c.batch_execute(&create))
            .unwrap_or_else(|e| panic!("creating a test database: {e}"));
        Database { server: self, name }
    }

    /// Runs `f` on a connection to the `postgres` database, on a thread of
    /// its own.
    fn admin<T: Send>(
        &self,
        f: impl FnOnce(&mut Client) -> Result<T, postgres::Error> + Send,
    ) -> Result<T, postgres::Error> {
        let url = self.url("postgres");
        off_runtime(move || f(&mut Client::connect(&url, NoTls)?))
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        // The watchdog stops the server once its input closes.
        drop(self.watchdog.stdin.take());
        let _ = self.watchdog.wait();
    }
}

/// A database on a test server, dropped (connections and all) with it.
pub struct Database<'s> {
    server: &'s Server,
    name: String,
}

impl std::fmt::Debug for Database<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Database")
            .field("name", &self.name)
            .finish()
    }
}

impl Database<'_> {
    /// Its name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Its URL, as the superuser.
    pub fn url(&self) -> String {
        self.server.url(&self.name)
    }

    /// Runs SQL statements on it, on a fresh connection; panics on failure.
    pub fn execute(&self, sql: &str) {
        self.try_execute(sql).unwrap_or_else(|e| panic!("{e:?}"));
    }

    /// Runs SQL statements on it, on a fresh connection.
    pub fn try_execute(&self, sql: &str) -> Result<(), postgres::Error> {
        let url = self.url();
        let sql = sql.to_owned();
        off_runtime(move || Client::connect(&url, NoTls)?.batch_execute(&sql))
    }

    /// The first column of the single row `sql` returns, as an `i64`.
    pub fn query_i64(&self, sql: &str) -> i64 {
        let url = self.url();
        let sql = sql.to_owned();
        off_runtime(move || {
            Client::connect(&url, NoTls)?
                .query_one(&sql, &[])?
                .try_get(0)
        })
        .unwrap_or_else(|e| panic!("{e:?}"))
    }
}

impl Drop for Database<'_> {
    fn drop(&mut self) {
        let drop_it = format!("DROP DATABASE IF EXISTS \"{}\" WITH (FORCE)", self.name);
        if let Err(e) = self.server.admin(move |c| c.batch_execute(&drop_it)) {
            eprintln!("dropping test database {}: {e}", self.name);
        }
    }
}

/// Runs `f` on a new thread and waits for it: outside any tokio runtime.
fn off_runtime<T: Send>(f: impl FnOnce() -> T + Send) -> T {
    std::thread::scope(|s| s.spawn(f).join()).unwrap_or_else(|p| std::panic::resume_unwind(p))
}

/// The newest `/usr/lib/postgresql/<version>/bin` holding the server
/// binaries, or `CHIPWARD_PG_BIN`.
fn bin_dir() -> Result<PathBuf, String> {
    let complete = |dir: &Path| {
        ["initdb", "pg_ctl", "postgres"]
            .iter()
            .all(|b| dir.join(b).is_file())
    };
    if let Some(dir) = std::env::var_os("CHIPWARD_PG_BIN") {
        let dir = PathBuf::from(dir);
        if !complete(&dir) {
            return Err(format!(
                "CHIPWARD_PG_BIN={} lacks initdb, pg_ctl or postgres",
                dir.display()
            ));
        }
        return Ok(dir);
    }
    let root = Path::new("/usr/lib/postgresql");
    let newest = fs::read_dir(root)
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|e| {
            let version: u32 = e.file_name().to_str()?.parse().ok()?;
            let bin = e.path().join("bin");
            complete(&bin).then_some((version, bin))
        })
        .max();
    newest.map(|(_, bin)| bin).ok_or_else(|| {
        format!(
            "PostgreSQL server binaries not found in {}/<version>/bin: {INSTALL}",
            root.display()
        )
    })
}

/// Who runs the server's commands: this user, or `postgres` when this is
/// root.
enum RunAs {
    Me,
    Postgres { uid: u32, gid: u32 },
}

impl RunAs {
    fn detect() -> Self {
        if id(&["-u"]) != 0 {
            return Self::Me;
        }
        Self::Postgres {
            uid: id(&["-u", "postgres"]),
            gid: id(&["-g", "postgres"]),
        }
    }

    fn own(&self, dir: &Path) {
        if let Self::Postgres { uid, gid } = self {
            std::os::unix::fs::chown(dir, Some(*uid), Some(*gid))
                .unwrap_or_else(|e| panic!("handing {} to postgres: {e}", dir.display()));
        }
    }

    fn command(&self, program: &Path) -> Command {
        match self {
            Self::Me => Command::new(program),
            Self::Postgres { .. } => {
                let mut c = Command::new("runuser");
                c.args(["-u", "postgres", "--"]).arg(program);
                c
            }
        }
    }
}

/// The number `id args` prints; fails the test when there is none.
fn id(args: &[&str]) -> u32 {
    let out = Command::new("id").args(args).output();
    let text = out.map(|o| String::from_utf8_lossy(&o.stdout).trim().to_owned());
    text.ok().and_then(|t| t.parse().ok()).unwrap_or_else(|| {
        panic!(
            "`id {}` failed: as root the tests need the postgres system user: {INSTALL}",
            args.join(" ")
        )
    })
}

/// Starts `sh` waiting for its input to close, then running `stop` and
/// removing `dir`. Our end of the pipe closes when this process exits.
fn watchdog(dir: &Path, stop: &Command) -> Child {
    let script = "dir=$1; shift; cat >/dev/null; \"$@\" >/dev/null 2>&1; rm -rf \"$dir\"";
    Command::new("sh")
        .args(["-c", script, "sh"])
        .arg(dir)
        .arg(stop.get_program())
        .args(stop.get_args())
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap_or_else(|e| panic!("starting the postgres watchdog: {e}"))
}

fn run(command: &mut Command, what: &str) {
    let out = command
        .output()
        .unwrap_or_else(|e| panic!("{what} did not run: {e}: {INSTALL}"));
    assert!(
        out.status.success(),
        "{what} failed: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

fn free_port() -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").expect("binding a loopback port");
    listener.local_addr().expect("a bound address").port()
}

/// Appends the settings of a private loopback server to the cluster's
/// configuration; the last value of a setting wins.
fn configure(data: &Path, socket_dir: &Path, port: u16) {
    let quoted = socket_dir.display().to_string().replace('\'', "''");
    let settings = format!(
        "\nlisten_addresses = '127.0.0.1'\nport = {port}\nunix_socket_directories = '{quoted}'\n\
         fsync = on\nsynchronous_commit = on\nmax_connections = 200\n"
    );
    OpenOptions::new()
        .append(true)
        .open(data.join("postgresql.conf"))
        .and_then(|mut f| f.write_all(settings.as_bytes()))
        .unwrap_or_else(|e| panic!("configuring the test cluster: {e}"));
}
