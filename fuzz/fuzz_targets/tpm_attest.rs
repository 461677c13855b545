//! TPMS_ATTEST quote structures from a host's TPM: [`Attest::decode`] must
//! refuse bad bytes with an error, and what it accepts must marshal back to
//! exactly the bytes that were signed.

#![no_main]

use chipward_proto::tpm::attest::Attest;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(attest) = Attest::decode(data) else {
        return;
    };

    assert_eq!(attest.encode(), data);
    let slots = attest.pcr_select.slots();
    assert!(attest.pcr_select.same_pcrs(&attest.pcr_select));
    assert!(slots.len() <= 8 * 8 * 8, "at most 8 banks of 64 pcrs");
});
