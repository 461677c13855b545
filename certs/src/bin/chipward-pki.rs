//! `chipward-pki`: create or inspect a development PKI folder.
//!
//! Prints file names, certificate subjects, SPKI hashes and key ids; never key material.
//! Input: command-line arguments and, for `show`, the files of the PKI folder (loaded and
//! cross-checked by `DevPki::load`).

use std::path::PathBuf;

use anyhow::Context as _;
use clap::{Parser, Subcommand};

use chipward_certs::pki::{self, DevPki, tls};
use chipward_certs::spki_sha256;
use chipward_proto::access::Role;

/// Create or inspect a Chipward development PKI.
#[derive(Parser)]
#[command(name = "chipward-pki", version)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Create a new PKI folder (refuses to overwrite an existing PKI).
    Init {
        /// Folder to create the PKI in (made with mode 0700 if missing).
        #[arg(long)]
        dir: PathBuf,
        /// Chip model named in the chip CA and chip certificates.
        #[arg(long, default_value = "CW-100")]
        model: String,
    },
    /// Create a TLS folder: the CA, `issuer` and `verifier` server
    /// certificates for localhost and 127.0.0.1, clients `admin`,
    /// `reviewer`, `auditor`, `landmark`, and `operator` for the tenants
    /// given (none without --tenant).
    TlsInit {
        /// Folder to create (mode 0700 if missing); nothing is overwritten.
        #[arg(long)]
        dir: PathBuf,
        /// A tenant the `operator` client acts for (repeatable).
        #[arg(long)]
        tenant: Vec<String>,
    },
    /// Issue a server certificate (also usable as a client) from a TLS folder.
    TlsServer {
        /// The TLS folder (made by tls-init).
        #[arg(long)]
        dir: PathBuf,
        /// File stem and common name: writes `NAME.pem` and `NAME.key`.
        #[arg(long)]
        name: String,
        /// A DNS name or IP address the server is reached at (repeatable).
        #[arg(long, required = true)]
        host: Vec<String>,
        /// The role the server has when it calls other servers.
        #[arg(long, default_value = "verifier")]
        role: String,
    },
    /// Issue a client certificate carrying a role and scope.
    TlsClient {
        /// The TLS folder (made by tls-init).
        #[arg(long)]
        dir: PathBuf,
        /// File stem and common name: writes `NAME.pem` and `NAME.key`.
        #[arg(long)]
        name: String,
        /// vendor-admin, reviewer, operator, auditor, landmark, device or verifier.
        #[arg(long)]
        role: String,
        /// A tenant an operator acts for (repeatable; an operator needs one).
        #[arg(long)]
        tenant: Vec<String>,
        /// A site an operator is limited to (repeatable; none: every site).
        #[arg(long)]
        site: Vec<String>,
        /// A chip id a device is (repeatable; a device needs one).
        #[arg(long)]
        chip: Vec<String>,
    },
    /// Print the subjects and key ids of an existing PKI folder.
    Show {
        /// The PKI folder.
        #[arg(long)]
        dir: PathBuf,
    },
}

fn main() -> anyhow::Result<()> {
    match Cli::parse().command {
        Command::Init { dir, model } => {
            let pki = DevPki::create(&dir, &model)
                .with_context(|| format!("creating a dev pki in {}", dir.display()))?;
            println!("created dev pki in {}", dir.display());
            for file in pki::PKI_FILES {
                println!("  {}", dir.join(file).display());
            }
            print_summary(&pki)
        }
        Command::TlsInit { dir, tenant } => {
            let tenants: Vec<&str> = tenant.iter().map(String::as_str).collect();
            tls::create_local_deployment(&dir, &tenants)
                .with_context(|| format!("creating a tls folder in {}", dir.display()))?;
            println!("created tls folder {}", dir.display());
            Ok(())
        }
        Command::TlsServer {
            dir,
            name,
            host,
            role,
        } => {
            let ca = tls::TlsCa::load(&dir)?;
            let path = ca.issue_server(&name, &host, &tls::Grant::role(parse_role(&role)?))?;
            println!("wrote {} and its key", path.display());
            Ok(())
        }
        Command::TlsClient {
            dir,
            name,
            role,
            tenant,
            site,
            chip,
        } => {
            let ca = tls::TlsCa::load(&dir)?;
            let grant = tls::Grant {
                role: parse_role(&role)?,
                tenants: tenant,
                sites: site,
                chips: chip,
            };
            let path = ca.issue_client(&name, &grant)?;
            println!("wrote {} and its key", path.display());
            Ok(())
        }
        Command::Show { dir } => {
            let pki = DevPki::load(&dir)
                .with_context(|| format!("loading the dev pki in {}", dir.display()))?;
            println!("dev pki in {}", dir.display());
            print_summary(&pki)
        }
    }
}

/// Subjects, SPKI hashes and key ids: everything public a person needs to recognise a PKI.
fn print_summary(pki: &DevPki) -> anyhow::Result<()> {
    for (role, certified) in [("vendor root", &pki.root), ("chip ca", &pki.chip_ca)] {
        let (_, cert) = x509_parser::parse_x509_certificate(&certified.cert_der)
            .with_context(|| format!("parsing the {role} certificate"))?;
        let spki_hash = hex::encode(spki_sha256(cert.public_key().raw));
        println!("{role}: {}", cert.subject());
        println!("  spki sha-256: {spki_hash}");
    }
    println!("issuer token key id: {}", pki.issuer_token_key.key_id());
    println!(
        "verifier result key id: {}",
        pki.verifier_result_key.key_id()
    );
    Ok(())
}

fn parse_role(name: &str) -> anyhow::Result<Role> {
    Role::parse(name).with_context(|| {
        let all: Vec<&str> = Role::ALL.iter().map(|r| r.as_str()).collect();
        format!("unknown role {name:?}: one of {}", all.join(", "))
    })
}
