//! SPDM 1.1 GET_MEASUREMENTS transcripts, as a chip or a GPU sends them:
//! [`Transcript::parse`] must refuse bad bytes with an error, and whatever
//! it accepts must encode back to exactly the bytes it read, since the
//! signature covers those bytes and nothing may be lost or reinterpreted.

#![no_main]

use chipward_proto::spdm::{P384_SIGNATURE_LEN, Transcript, UnsignedTranscript};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(transcript) = Transcript::parse(data) else {
        return;
    };

    assert_eq!(transcript.signed_len + P384_SIGNATURE_LEN, data.len());
    let again = UnsignedTranscript::new(&transcript.request, &transcript.response);
    assert_eq!(again.signed_bytes(), &data[..transcript.signed_len]);
    assert_eq!(again.finish(&transcript.signature), data);

    for block in &transcript.response.blocks {
        assert_eq!(transcript.block(block.index), Some(block));
    }
});
