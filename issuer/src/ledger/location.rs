//! Where the ledger lives, as the configuration's `database` key and the
//! `--db` flag write it.
//!
//! - `postgres://…` or `postgresql://…`: a PostgreSQL database
//!   ([`PostgresUrl`] checks it);
//! - `sqlite:PATH`: a SQLite file, for paths that would otherwise read as
//!   a URL;
//! - anything else: a SQLite file path, as the key always meant.
//!
//! Comes from the operator; checked when the configuration is read, so a
//! malformed URL stops the issuer at start-up.

use std::fmt;
use std::path::PathBuf;
use std::str::FromStr;

use serde::Deserialize;
use thiserror::Error;

use super::{PostgresUrl, PostgresUrlError};

/// A ledger's backend and address.
#[derive(Clone, PartialEq, Eq, Deserialize)]
#[serde(try_from = "String")]
pub enum LedgerLocation {
    /// A SQLite file, created if missing.
    Sqlite(PathBuf),
    /// A PostgreSQL database, which must exist; its tables are created.
    Postgres(PostgresUrl),
}

/// Why a ledger location was refused.
#[derive(Debug, Error)]
#[non_exhaustive]
pub enum LocationError {
    /// The location is empty.
    #[error("the ledger location is empty")]
    Empty,
    /// A PostgreSQL URL was refused.
    #[error("invalid ledger url")]
    Url(#[source] PostgresUrlError),
}

impl FromStr for LedgerLocation {
    type Err = LocationError;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        if text.starts_with("postgres://") || text.starts_with("postgresql://") {
            return PostgresUrl::parse(text)
                .map(Self::Postgres)
                .map_err(LocationError::Url);
        }
        let path = text.strip_prefix("sqlite:").unwrap_or(text);
        if path.is_empty() {
            return Err(LocationError::Empty);
        }
        Ok(Self::Sqlite(PathBuf::from(path)))
    }
}

impl TryFrom<String> for LedgerLocation {
    type Error = String;

    fn try_from(text: String) -> Result<Self, Self::Error> {
        // serde shows only the message, so the cause goes into it.
        text.parse().map_err(|e: LocationError| match e {
            LocationError::Url(ref source) => format!("{e}: {source}"),
            LocationError::Empty => e.to_string(),
        })
    }
}

/// The SQLite path, or the URL without its password.
impl fmt::Display for LedgerLocation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Sqlite(path) => write!(f, "{}", path.display()),
            Self::Postgres(url) => write!(f, "{url}"),
        }
    }
}

impl fmt::Debug for LedgerLocation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Sqlite(path) => f.debug_tuple("Sqlite").field(path).finish(),
            Self::Postgres(url) => f.debug_tuple("Postgres").field(url).finish(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_stay_sqlite_and_urls_become_postgres() {
        let sqlite = |text: &str| match text.parse::<LedgerLocation>().unwrap() {
            LedgerLocation::Sqlite(path) => path,
            other => panic!("{text}: {other:?}"),
        };
        assert_eq!(
            sqlite("./chipward.sqlite"),
            PathBuf::from("./chipward.sqlite")
        );
        assert_eq!(
            sqlite("/var/lib/cw/ledger"),
            PathBuf::from("/var/lib/cw/ledger")
        );
        assert_eq!(
            sqlite("sqlite:postgres://odd"),
            PathBuf::from("postgres://odd")
        );

        let url = "postgres://issuer:pw@127.0.0.1:5433/ledger";
        let location: LedgerLocation = url.parse().unwrap();
        assert_eq!(
            location,
            LedgerLocation::Postgres(PostgresUrl::parse(url).unwrap())
        );
        assert_eq!(
            location.to_string(),
            "postgres://issuer:***@127.0.0.1:5433/ledger"
        );
        assert!(!format!("{location:?}").contains("pw@"));
    }

    #[test]
    fn refuses_empty_locations_and_bad_urls() {
        for text in ["", "sqlite:"] {
            let err = text.parse::<LedgerLocation>().unwrap_err();
            assert!(matches!(err, LocationError::Empty), "{text:?}: {err:?}");
        }
        let err = "postgresql://u@192.0.2.8/x"
            .parse::<LedgerLocation>()
            .unwrap_err();
        assert!(
            matches!(
                err,
                LocationError::Url(PostgresUrlError::NotLoopback { .. })
            ),
            "{err:?}"
        );
        let shown = LedgerLocation::try_from("postgres://127.0.0.1/x".to_owned()).unwrap_err();
        assert_eq!(shown, "invalid ledger url: postgres url names no user");
    }
}
