//! A PostgreSQL connection URL, checked before anything connects with it.
//!
//! The URL comes from the operator's configuration, so it is trusted, but it
//! is still checked: it must name a user, and every host in it must be on
//! this machine (a loopback address, `localhost` or a unix socket folder),
//! because the ledger speaks to PostgreSQL without TLS. A password in the
//! URL never appears in `Debug` or `Display` output.

use std::fmt;
use std::net::IpAddr;
use std::str::FromStr;

use postgres::config::Host;
use thiserror::Error;

/// A checked `postgres://` or `postgresql://` URL naming a local server.
#[derive(Clone)]
pub struct PostgresUrl {
    text: String,
    config: Box<postgres::Config>,
}

/// Why a PostgreSQL URL was refused.
#[derive(Debug, Error)]
#[non_exhaustive]
pub enum PostgresUrlError {
    /// The text does not start with `postgres://` or `postgresql://`.
    #[error("a postgres url starts with postgres:// or postgresql://")]
    Scheme,
    /// The driver cannot parse the URL.
    #[error("malformed postgres url")]
    Malformed(#[source] postgres::Error),
    /// The URL names no user to log in as.
    #[error("postgres url names no user")]
    NoUser,
    /// A host is not on this machine.
    #[error("postgres host {host} is not loopback; the ledger connects without tls")]
    NotLoopback {
        /// The host as written.
        host: String,
    },
}

impl PostgresUrl {
    /// Parses and checks `text`.
    ///
    /// ```
    /// # use chipward_issuer::ledger::PostgresUrl;
    /// let url = PostgresUrl::parse("postgres://issuer:secret@127.0.0.1:5432/ledger").unwrap();
    /// assert_eq!(url.to_string(), "postgres://issuer:***@127.0.0.1:5432/ledger");
    /// assert!(PostgresUrl::parse("postgres://issuer@db.example.net/ledger").is_err());
    /// ```
    pub fn parse(text: &str) -> Result<Self, PostgresUrlError> {
        if !(text.starts_with("postgres://") || text.starts_with("postgresql://")) {
            return Err(PostgresUrlError::Scheme);
        }
        let config = postgres::Config::from_str(text).map_err(PostgresUrlError::Malformed)?;
        if config.get_user().is_none_or(str::is_empty) {
            return Err(PostgresUrlError::NoUser);
        }

        // Limitation: no TLS, so the server must be on this machine; a
        // database elsewhere needs TLS support here first.
        for host in config.get_hosts() {
            if let Host::Tcp(name) = host
                && !is_loopback(name)
            {
                return Err(PostgresUrlError::NotLoopback { host: name.clone() });
            }
        }
        if let Some(addr) = config.get_hostaddrs().iter().find(|a| !a.is_loopback()) {
            return Err(PostgresUrlError::NotLoopback {
                host: addr.to_string(),
            });
        }
        Ok(Self {
            text: text.to_owned(),
            config: Box::new(config),
        })
    }

    /// The driver's view of the URL.
    pub(super) fn config(&self) -> &postgres::Config {
        &self.config
    }
}

fn is_loopback(host: &str) -> bool {
    let bare = host.trim_start_matches('[').trim_end_matches(']');
    bare.eq_ignore_ascii_case("localhost")
        || bare.parse::<IpAddr>().is_ok_and(|ip| ip.is_loopback())
}

impl FromStr for PostgresUrl {
    type Err = PostgresUrlError;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        Self::parse(text)
    }
}

impl PartialEq for PostgresUrl {
    fn eq(&self, other: &Self) -> bool {
        self.text == other.text
    }
}

impl Eq for PostgresUrl {}

/// The URL with any password replaced by `***`.
impl fmt::Display for PostgresUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&redact(&self.text))
    }
}

impl fmt::Debug for PostgresUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("PostgresUrl")
            .field(&redact(&self.text))
            .finish()
    }
}

/// Replaces every password the driver reads from `text` with `***`: the
/// one in the user part, and the value of every parameter whose name,
/// percent-decoded, is `password`.
///
/// The parts are found as the driver finds them, not as RFC 3986 would:
/// the user part runs to the first `@` anywhere after the scheme, `/` and
/// `?` included, and parameter names are percent-decoded. So a password
/// holding an unescaped `/` or `?`, or one under `pass%77ord=`, which the
/// driver uses all the same, is hidden too.
fn redact(text: &str) -> String {
    let Some((scheme, rest)) = text.split_once("://") else {
        return "***".into();
    };
    let (userinfo, rest) = match rest.split_once('@') {
        Some((userinfo, rest)) => match userinfo.split_once(':') {
            Some((user, _)) => (format!("{user}:***@"), rest),
            None => (format!("{userinfo}@"), rest),
        },
        None => (String::new(), rest),
    };
    let rest = match rest.split_once('?') {
        Some((hosts_and_path, query)) => format!("{hosts_and_path}?{}", redact_query(query)),
        None => rest.to_owned(),
    };
    format!("{scheme}://{userinfo}{rest}")
}

/// A query with the value of every `password` parameter replaced, split
/// as the driver splits it: a name runs to the next `=`, its value to the
/// next `&`.
fn redact_query(query: &str) -> String {
    let mut params = Vec::new();
    let mut rest = query;
    while !rest.is_empty() {
        let Some((name, after)) = rest.split_once('=') else {
            // The driver refuses a name without a value; shown as given.
            params.push(rest.to_owned());
            break;
        };
        let (value, next) = after.split_once('&').unwrap_or((after, ""));
        if percent_decoded(name) == b"password" {
            params.push(format!("{name}=***"));
        } else {
            params.push(format!("{name}={value}"));
        }
        rest = next;
    }
    params.join("&")
}

/// `text` with every `%` and two hex digits replaced by the byte they
/// name; any other `%` is kept, as the driver keeps it.
fn percent_decoded(text: &str) -> Vec<u8> {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let mut decoded = [0u8];
        let escaped = bytes[i] == b'%'
            && bytes
                .get(i + 1..i + 3)
                .is_some_and(|hex| hex::decode_to_slice(hex, &mut decoded).is_ok());
        if escaped {
            out.push(decoded[0]);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_loopback_hosts_and_unix_sockets() {
        for text in [
            "postgres://issuer@127.0.0.1:5432/ledger",
            "postgresql://issuer@localhost/ledger",
            "postgres://issuer@[::1]:6000/ledger",
            "postgres://issuer@127.0.0.2,127.0.0.3/ledger",
            "postgres://issuer@%2Frun%2Fpostgresql/ledger",
            "postgres://issuer@127.0.0.1/ledger?connect_timeout=3",
        ] {
            let url = PostgresUrl::parse(text).unwrap_or_else(|e| panic!("{text}: {e}"));
            assert_eq!(url.config().get_user(), Some("issuer"), "{text}");
        }
    }

    #[test]
    fn refuses_other_schemes_missing_users_and_remote_hosts() {
        let refused = |text: &str| PostgresUrl::parse(text).unwrap_err();
        assert!(matches!(
            refused("mysql://a@127.0.0.1/x"),
            PostgresUrlError::Scheme
        ));
        assert!(matches!(
            refused("host=127.0.0.1 user=a"),
            PostgresUrlError::Scheme
        ));
        assert!(matches!(
            refused("postgres://127.0.0.1/x"),
            PostgresUrlError::NoUser
        ));
        assert!(matches!(
            refused("postgres://a@127.0.0.1:notaport/x"),
            PostgresUrlError::Malformed(_)
        ));
        let err = refused("postgres://a@127.0.0.1,10.0.0.7/x");
        assert!(
            matches!(&err, PostgresUrlError::NotLoopback { host } if host == "10.0.0.7"),
            "{err:?}"
        );
        let err = refused("postgres://a@localhost/x?hostaddr=192.0.2.1");
        assert!(
            matches!(&err, PostgresUrlError::NotLoopback { host } if host == "192.0.2.1"),
            "{err:?}"
        );
    }

    #[test]
    fn never_shows_a_password() {
        let url = PostgresUrl::parse(
            "postgres://issuer:s3cr%40t@127.0.0.1:5432/ledger?password=other&application_name=cw",
        )
        .unwrap();
        let shown = format!("{url} {url:?}");
        assert!(!shown.contains("s3cr"), "{shown}");
        assert!(!shown.contains("other"), "{shown}");
        assert_eq!(
            url.to_string(),
            "postgres://issuer:***@127.0.0.1:5432/ledger?password=***&application_name=cw"
        );
        let plain = PostgresUrl::parse("postgres://issuer@127.0.0.1/ledger").unwrap();
        assert_eq!(plain.to_string(), "postgres://issuer@127.0.0.1/ledger");
    }

    #[test]
    fn never_shows_a_password_the_driver_reads_past_a_slash() {
        // The driver reads the user part up to the first '@', '/' and '?'
        // included: this password is "ab/c?d" and the host 127.0.0.1.
        let url = PostgresUrl::parse("postgres://issuer:ab/c?d@127.0.0.1:5432/ledger").unwrap();
        assert_eq!(url.config().get_password(), Some(&b"ab/c?d"[..]));
        assert_eq!(
            url.to_string(),
            "postgres://issuer:***@127.0.0.1:5432/ledger"
        );
        assert!(!format!("{url:?}").contains("c?d"));
    }

    #[test]
    fn never_shows_a_password_under_an_escaped_parameter_name() {
        // The driver percent-decodes parameter names: pass%77ord is password.
        let text = "postgres://issuer@127.0.0.1/ledger?pass%77ord=hunter2&application_name=cw";
        let url = PostgresUrl::parse(text).unwrap();
        assert_eq!(url.config().get_password(), Some(&b"hunter2"[..]));
        assert_eq!(
            url.to_string(),
            "postgres://issuer@127.0.0.1/ledger?pass%77ord=***&application_name=cw"
        );
        assert!(!format!("{url:?}").contains("hunter2"));
    }

    #[test]
    fn decodes_escapes_and_keeps_stray_percent_signs() {
        assert_eq!(percent_decoded("pass%77ord"), b"password");
        assert_eq!(percent_decoded("a%2x%41%4"), b"a%2xA%4");
        assert_eq!(percent_decoded("%"), b"%");
    }
}
