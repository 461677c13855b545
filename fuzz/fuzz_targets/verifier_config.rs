//! The verifier's TOML files, from arbitrary UTF-8: the configuration
//! itself, the landmarks file, the reference values and the host TPM
//! policy. Each must refuse bad text with an error; reference values and
//! host policies, which the verifier also writes, must read back what they
//! write.

#![no_main]

use chipward_verifier::config::VerifierConfig;
use chipward_verifier::evidence::tpm::host::HostPolicy;
use chipward_verifier::location::records::Landmarks;
use chipward_verifier::policy::reference::ReferenceValues;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };

    let _ = toml::from_str::<VerifierConfig>(text);
    let _ = Landmarks::from_toml(text);

    if let Ok(references) = ReferenceValues::from_toml(text) {
        let written = references.to_toml();
        let reread = ReferenceValues::from_toml(&written);
        assert!(
            reread.as_ref().is_ok_and(|r| *r == references),
            "reference values do not read back: {written:?} gave {reread:?}"
        );
    }

    if let Ok(policy) = HostPolicy::from_toml(text) {
        let written = policy.to_toml();
        let reread = HostPolicy::from_toml(&written);
        assert!(
            reread.as_ref().is_ok_and(|p| *p == policy),
            "host policy does not read back: {written:?} gave {reread:?}"
        );
    }
});
