use proptest::prelude::*;
use ring::rand::SystemRandom;
use ring::signature::{Ed25519KeyPair, KeyPair};

use super::*;

fn key() -> Ed25519KeyPair {
    let pkcs8 = Ed25519KeyPair::generate_pkcs8(&SystemRandom::new()).unwrap();
    Ed25519KeyPair::from_pkcs8(pkcs8.as_ref()).unwrap()
}

fn keys_for(k: &Ed25519KeyPair) -> TrustedKeys {
    TrustedKeys::new().with("issuer-1", k.public_key().as_ref().try_into().unwrap())
}

fn claims() -> LicenseClaims {
    LicenseClaims {
        issuer: "chipward-issuer".into(),
        chip_id: ChipId([3; 32]),
        audience: "chipward-verifier".into(),
        issued_at: 1_700_000_000,
        not_before: 1_700_000_000,
        expires_at: 1_700_086_400,
        token_id: TokenId([9; 16]),
        tenant: "acme-ai".into(),
        site: SiteClaim {
            id: "fra-1".into(),
            latitude: 50.11,
            longitude: 8.68,
            radius_km: 25.0,
        },
        entitlements: vec!["inference".into(), "training".into()],
        eccn: "3A090.a".into(),
    }
}

#[test]
fn verifies_what_it_signs() {
    let k = key();
    let token = claims().sign("issuer-1", |d| k.sign(d).as_ref().to_vec());
    let verified = verify(&token, &keys_for(&k)).unwrap();
    assert_eq!(verified.claims(), &claims());
    assert_eq!(verified.key_id(), "issuer-1");
}

#[test]
fn carries_the_subject_as_hex_under_cwt_label_2() {
    let k = key();
    let token = claims().sign("issuer-1", |d| k.sign(d).as_ref().to_vec());
    let payload = cose::peek_payload(&token, MAX_TOKEN_LEN).unwrap();
    let map: Value = ciborium::from_reader(payload.as_slice()).unwrap();
    let Value::Map(entries) = map else {
        panic!("claims are not a map")
    };
    let sub = entries.iter().find(|(k, _)| k == &Value::from(2)).unwrap();
    assert_eq!(sub.1, Value::Text("03".repeat(32)));
}

#[test]
fn rejects_tokens_signed_by_another_key() {
    let token = claims().sign("issuer-1", |d| key().sign(d).as_ref().to_vec());
    assert_eq!(
        verify(&token, &keys_for(&key())),
        Err(TokenError::Envelope(CoseError::BadSignature))
    );
}

#[test]
fn checks_the_window_with_skew() {
    let k = key();
    let v = verify(
        &claims().sign("issuer-1", |d| k.sign(d).as_ref().to_vec()),
        &keys_for(&k),
    )
    .unwrap();
    let c = claims();
    assert_eq!(v.check_window(c.not_before - 30, 60), Ok(()));
    assert_eq!(
        v.check_window(c.not_before - 61, 60),
        Err(TokenError::NotYetValid {
            not_before: c.not_before,
            now: c.not_before - 61
        })
    );
    assert_eq!(v.check_window(c.expires_at + 60, 60), Ok(()));
    assert_eq!(
        v.check_window(c.expires_at + 61, 60),
        Err(TokenError::Expired {
            expires_at: c.expires_at,
            now: c.expires_at + 61
        })
    );
}

#[test]
fn rejects_a_signed_payload_missing_a_claim() {
    let k = key();
    let partial = ClaimsSetBuilder::new()
        .issuer("x".into())
        .build()
        .to_vec()
        .unwrap();
    let token = cose::seal(partial, "issuer-1", |d| k.sign(d).as_ref().to_vec());
    assert_eq!(verify(&token, &keys_for(&k)), Err(TokenError::Claim("sub")));

    let token = cose::seal(b"\x01".to_vec(), "issuer-1", |d| {
        k.sign(d).as_ref().to_vec()
    });
    assert_eq!(verify(&token, &keys_for(&k)), Err(TokenError::Claims));
}

proptest! {
    #[test]
    fn round_trips_any_claims(tenant in ".{0,40}", site in "[a-z0-9-]{1,20}", lat in -90.0f64..90.0,
                              lon in -180.0f64..180.0, ents in proptest::collection::vec(".{0,10}", 0..5),
                              exp in 0i64..4_000_000_000) {
        let k = key();
        let mut c = claims();
        c.tenant = tenant;
        c.site.id = site;
        c.site.latitude = lat;
        c.site.longitude = lon;
        c.entitlements = ents;
        c.expires_at = exp;
        let token = c.sign("issuer-1", |d| k.sign(d).as_ref().to_vec());
        let verified = verify(&token, &keys_for(&k)).unwrap();
        prop_assert_eq!(verified.claims(), &c);
    }

    #[test]
    fn never_panics_on_garbage(bytes in proptest::collection::vec(any::<u8>(), 0..300)) {
        let _ = verify(&bytes, &keys_for(&key()));
        let _ = decode_unverified(&bytes);
    }
}
