//! Attestation-key bindings as hosts present them (see the crate's envelope
//! framing): [`ak_binding::verify`] with the fixed issuer key refuses bad
//! bytes with an error, and a verified binding survives being signed again.

#![no_main]

use chipward_fuzz::{ISSUER_KEY_ID, envelope, issuer_key, trusted};
use chipward_proto::ak_binding::{self, MAX_BINDING_LEN};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let key = issuer_key();
    let Some(bytes) = envelope(data, &key, ISSUER_KEY_ID) else {
        return;
    };
    let keys = trusted(&key, ISSUER_KEY_ID);

    let Ok(binding) = ak_binding::verify(&bytes, &keys) else {
        return;
    };

    let again = binding.sign(ISSUER_KEY_ID, |m| key.sign(m).as_ref().to_vec());
    if again.len() <= MAX_BINDING_LEN {
        assert_eq!(ak_binding::verify(&again, &keys), Ok(binding));
    }
});
