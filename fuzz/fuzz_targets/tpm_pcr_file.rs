//! PCR selections and values a host reports: the whole input as a
//! TPML_PCR_SELECTION and as tpm2-tools' `serialized` PCR file, then, with
//! the first byte as a length, a selection followed by the values it
//! selects. Each decoder refuses bad bytes with an error, and what it
//! accepted survives its encoder.

#![no_main]

use std::collections::BTreeSet;

use chipward_proto::tpm::pcr::{
    PcrSelection, encode_tpm2_tools_serialized, parse_tpm2_tools_serialized,
};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(selection) = PcrSelection::decode(data) {
        assert_eq!(selection.encode(), data);
    }

    if let Ok((selection, values)) = parse_tpm2_tools_serialized(data) {
        let file = encode_tpm2_tools_serialized(&selection, &values)
            .expect("a parsed file has at most 16 banks of 4 bytes and a value per pcr");
        assert_eq!(parse_tpm2_tools_serialized(&file), Ok((selection, values)));
    }

    if let Some((&len, rest)) = data.split_first() {
        let (selection, values) = rest.split_at(usize::from(len).min(rest.len()));
        if let Ok(selection) = PcrSelection::decode(selection) {
            // A bank may name a PCR twice; its value is then the last one read.
            let slots = selection.slots();
            let distinct = slots.iter().collect::<BTreeSet<_>>().len() == slots.len();
            if let (Ok(split), true) = (selection.split_values(values), distinct) {
                assert_eq!(split.concat_for(&selection).as_deref(), Some(values));
            }
        }
    }
});
