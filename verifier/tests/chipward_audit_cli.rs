//! `chipward-audit check` run as a program: 0 on a good export, 1 on each
//! kind of tampering (with the reason printed), 2 on usage and I/O errors.

#![expect(
    clippy::unwrap_used,
    reason = "test set-up helpers fail the test loudly"
)]

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use chipward_certs::Ed25519Key;
use chipward_certs::pem;
use chipward_proto::audit::{AuditEntry, AuditExport, EntryKind, MemoryTree, TreeHead, root};
use serde_json::Value;

struct Fixture {
    dir: tempfile::TempDir,
    key: Ed25519Key,
    tree: MemoryTree,
    entries: Vec<Vec<u8>>,
}

impl Fixture {
    fn new(n: i64) -> Self {
        let key = Ed25519Key::generate().unwrap();
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(
            dir.path().join("issuer.pub"),
            pem::ed25519_public_to_pem(&key.public_key()),
        )
        .unwrap();
        let mut tree = MemoryTree::new();
        let mut entries = Vec::new();
        for i in 0..n {
            let mut e = AuditEntry::new(1_700_000_000 + i, EntryKind::ALL[i as usize % 14]);
            e.tenant = "acme".into();
            e.detail = format!("entry {i}");
            let bytes = e.encode().unwrap();
            tree.push(&bytes);
            entries.push(bytes);
        }
        Self {
            dir,
            key,
            tree,
            entries,
        }
    }

    fn head_by(&self, key: &Ed25519Key, size: u64) -> Vec<u8> {
        let head = TreeHead {
            log_id: "chipward-audit".into(),
            size,
            root: root(&self.tree, size).unwrap(),
            timestamp: 1_800_000_000,
        };
        head.sign(&self.key.key_id(), |m| key.sign(m)).unwrap()
    }

    fn head(&self, size: u64) -> Vec<u8> {
        self.head_by(&self.key, size)
    }

    fn full(&self) -> Value {
        let n = self.entries.len() as u64;
        let export = AuditExport::full(self.head(n), self.entries.clone(), vec![self.head(3)]);
        serde_json::from_str(&export.unwrap().to_json()).unwrap()
    }

    fn write(&self, name: &str, contents: impl AsRef<[u8]>) -> PathBuf {
        let path = self.dir.path().join(name);
        std::fs::write(&path, contents).unwrap();
        path
    }

    fn check(&self, export: &Value, extra: &[&str]) -> Output {
        let path = self.write("export.json", export.to_string());
        self.run(&path, extra)
    }

    fn run(&self, export: &Path, extra: &[&str]) -> Output {
        let key = self.dir.path().join("issuer.pub");
        Command::new(env!("CARGO_BIN_EXE_chipward-audit"))
            .arg("check")
            .arg("--export")
            .arg(export)
            .arg("--key")
            .arg(key)
            .args(extra)
            .output()
            .unwrap()
    }
}

fn stdout(out: &Output) -> String {
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn assert_fails_with(out: &Output, reason: &str) {
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    assert!(stdout(out).contains(reason), "{reason:?} not in {out:?}");
}

fn decode(v: &Value) -> Vec<u8> {
    STANDARD.decode(v.as_str().unwrap()).unwrap()
}

#[test]
fn a_good_full_export_passes_with_a_summary() {
    let f = Fixture::new(8);
    let out = f.check(&f.full(), &[]);
    assert_eq!(out.status.code(), Some(0), "{out:?}");
    let text = stdout(&out);
    assert!(text.starts_with("OK: log \"chipward-audit\", full log prefix [0, 8)"));
    assert!(text.contains("earlier heads consistent: 1 (sizes: 3)"));
    assert!(text.contains("entries checked: 8"));
}

#[test]
fn a_part_export_passes_against_a_trusted_head_in_either_form() {
    let f = Fixture::new(8);
    let mut export =
        AuditExport::part(&f.tree, f.head(8), vec![(2, f.entries[2].clone())], vec![]).unwrap();
    export.add_consistency_from(&f.tree, 5).unwrap();
    let export: Value = serde_json::from_str(&export.to_json()).unwrap();

    let raw = f.write("head.cose", f.head(5));
    let out = f.check(&export, &["--trusted-head", raw.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(0), "{out:?}");
    assert!(stdout(&out).contains("trusted head consistent: size 5"));

    let text = f.write("head.b64", STANDARD.encode(f.head(5)) + "\n");
    let out = f.check(&export, &["--trusted-head", text.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(0), "{out:?}");
}

#[test]
fn each_tampering_fails_with_its_reason() {
    let f = Fixture::new(8);

    let mut deleted = f.full();
    deleted["entries"].as_array_mut().unwrap().remove(3);
    assert_fails_with(&f.check(&deleted, &[]), "entry 3 was deleted");

    let mut altered = f.full();
    let mut bytes = decode(&altered["entries"][5]["entry"]);
    bytes[10] ^= 0x01;
    altered["entries"][5]["entry"] = STANDARD.encode(bytes).into();
    assert_fails_with(&f.check(&altered, &[]), "entry 5 was altered");

    let mut swapped = f.full();
    swapped["entries"].as_array_mut().unwrap().swap(1, 6);
    assert_fails_with(&f.check(&swapped, &[]), "entries 1 and 6 are out of order");

    let mut inserted = f.full();
    let copy = inserted["entries"][0].clone();
    inserted["entries"].as_array_mut().unwrap().insert(2, copy);
    assert_fails_with(&f.check(&inserted, &[]), "an entry was inserted at 2");

    let mut truncated = f.full();
    truncated["entries"].as_array_mut().unwrap().truncate(5);
    assert_fails_with(
        &f.check(&truncated, &[]),
        "the tree head covers 8 entries, the export holds 5",
    );

    let mut forged = f.full();
    let forger = Ed25519Key::generate().unwrap();
    forged["tree_head"] = STANDARD.encode(f.head_by(&forger, 8)).into();
    assert_fails_with(&f.check(&forged, &[]), "current tree head refused");

    let cut = f.full().to_string();
    let path = f.write("cut.json", &cut[..cut.len() / 2]);
    assert_fails_with(&f.run(&path, &[]), "malformed export");
}

#[test]
fn a_contradicting_trusted_head_fails() {
    let f = Fixture::new(8);
    // Signed by the real key, over a root that is not the log's at size 5.
    let mut head = TreeHead {
        log_id: "chipward-audit".into(),
        size: 5,
        root: root(&f.tree, 5).unwrap(),
        timestamp: 0,
    };
    head.root[0] ^= 1;
    let signed = head.sign(&f.key.key_id(), |m| f.key.sign(m)).unwrap();
    let path = f.write("head.cose", signed);
    let out = f.check(&f.full(), &["--trusted-head", path.to_str().unwrap()]);
    assert_fails_with(
        &out,
        "trusted tree head of size 5 is not a prefix of size 8",
    );
}

#[test]
fn the_wrong_key_fails_the_check() {
    let f = Fixture::new(4);
    let other = Ed25519Key::generate().unwrap();
    f.write(
        "issuer.pub",
        pem::ed25519_public_to_pem(&other.public_key()),
    );
    assert_fails_with(&f.check(&f.full(), &[]), "is not trusted");
}

#[test]
fn usage_and_io_errors_exit_2() {
    let f = Fixture::new(4);
    let missing = f.dir.path().join("missing.json");
    let out = f.run(&missing, &[]);
    assert_eq!(out.status.code(), Some(2), "{out:?}");
    assert!(String::from_utf8_lossy(&out.stderr).contains("missing.json"));

    let export = f.write("export.json", f.full().to_string());
    let no_key = Command::new(env!("CARGO_BIN_EXE_chipward-audit"))
        .args(["check", "--export"])
        .arg(&export)
        .output()
        .unwrap();
    assert_eq!(no_key.status.code(), Some(2), "{no_key:?}");

    f.write("issuer.pub", "not pem");
    assert_eq!(f.run(&export, &[]).status.code(), Some(2));
}
