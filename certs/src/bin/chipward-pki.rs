//! `chipward-pki`: create or inspect a development PKI folder.
//!
//! Prints file names, certificate subjects, SPKI hashes and key ids; never key material.
//! Input: command-line arguments and, for `show`, the files of the PKI folder (loaded and
//! cross-checked by `DevPki::load`).

use std::path::PathBuf;

use anyhow::Context as _;
use clap::{Parser, Subcommand};

use chipward_certs::pki::{self, DevPki};
use chipward_certs::spki_sha256;

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
