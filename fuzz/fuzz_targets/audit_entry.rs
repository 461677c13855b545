//! Audit log entries as they reach an auditor inside an export:
//! [`AuditEntry::decode`] refuses bad bytes with an error and accepts only
//! the one encoding of each entry, so what it accepts encodes back to the
//! bytes received, hashes to the leaf those bytes make, and names its kind
//! by a code and a name that both read back.

#![no_main]

use chipward_proto::audit::{AuditEntry, EntryKind, leaf_hash};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(entry) = AuditEntry::decode(data) else {
        return;
    };
    assert_eq!(entry.encode().as_deref(), Ok(data));
    assert_eq!(entry.leaf_hash(), Ok(leaf_hash(data)));
    assert_eq!(
        EntryKind::from_code(entry.kind.code().into()),
        Some(entry.kind)
    );
    assert_eq!(entry.kind.name().parse::<EntryKind>(), Ok(entry.kind));
    for digest in entry.digests.values() {
        assert!(entry.references(digest));
    }
});
