//! Screening tests over the hand-written fixtures in
//! `issuer/tests/data/screening/` and a generated list. Every listed name is
//! invented.

use super::*;

const JSON: &[u8] = include_bytes!("../../tests/data/screening/list.json");
const CSV: &[u8] = include_bytes!("../../tests/data/screening/list.csv");

// Printed by `sha256sum` when the fixtures were written.
pub(super) const JSON_SHA256: &str =
    "9c9ef57a80b302aa9b384581f902c95d71074086092e3aaf083a00501ddd3241";
pub(super) const CSV_SHA256: &str =
    "2cb2aa67cde7a4abae0638e87ef1e4fa4569e63179ea89f9fa2cd28f77721ac8";

pub(super) fn json_list() -> ScreeningList {
    ScreeningList::parse(ListFormat::Json, "TEST-CSL", "2026-12-01", JSON).unwrap()
}

pub(super) fn csv_list() -> ScreeningList {
    ScreeningList::parse(ListFormat::Csv, "TEST-CSL", "2026-12-01", CSV).unwrap()
}

fn party(name: &str) -> Party {
    Party {
        role: PartyRole::Tenant,
        name: name.to_owned(),
        address: None,
        country: None,
    }
}

fn screen(screener: &Screener, name: &str) -> ScreeningDecision {
    screener.screen(&party(name)).unwrap()
}

fn best(decision: &ScreeningDecision) -> &Candidate {
    decision.candidates.first().expect("a candidate")
}

#[test]
fn screening_hits_misspelt_and_compounded_names() {
    let s = Screener::new(json_list());
    for query in [
        "Acme Rocket Works",
        "Acme Rocketwork",
        "ACME ROKETWORKS SARL",
    ] {
        let d = screen(&s, query);
        assert!(d.hit, "{query}: {:?}", d.candidates);
        assert_eq!(best(&d).entry_id, "tel-0001", "{query}");
    }
    // Split words joined equal the listed word: an exact normalised match.
    assert!(best(&screen(&s, "Acme Rocket-Works")).exact);
}

#[test]
fn screening_hits_split_and_misspelt_words_on_the_whole_name() {
    // Three words against two: no word of "werks" is close to a listed
    // word, but the whole names differ by one letter.
    let s = Screener::new(json_list());
    let d = screen(&s, "Acme Rocket Werks");
    assert!(d.hit, "{:?}", d.candidates);
    assert_eq!(best(&d).entry_id, "tel-0001");
    assert!(!best(&d).exact);
}

#[test]
fn screening_ignores_misspelt_legal_forms() {
    let s = Screener::new(json_list());
    assert!(best(&screen(&s, "Zephyr Dynamics Limtied")).exact);
}

#[test]
fn screening_does_not_hit_on_shared_common_words() {
    // Many listed names share "international trading"; only the
    // distinctive word tells them apart, and it differs.
    let distinct = [
        "morvex",
        "tallibor",
        "quenstrad",
        "vorlani",
        "peskaro",
        "ulmbrith",
    ];
    let results: Vec<String> = (0..30)
        .map(|i| {
            let name = format!("{} International Trading", distinct[i % 6]);
            format!(r#"{{"id": "i{i}", "name": "{name} {i}"}}"#)
        })
        .collect();
    let json = format!(r#"{{"results": [{}]}}"#, results.join(","));
    let list = ScreeningList::parse(ListFormat::Json, "T", "2026-12-01", json.as_bytes()).unwrap();
    let s = Screener::new(list);
    let d = screen(&s, "Qelvarin International Trading 3");
    assert!(!d.hit, "{:?}", d.candidates);
}

#[test]
fn screening_hits_cyrillic_listing_from_latin_query() {
    let s = Screener::new(json_list());
    let d = screen(&s, "Severnyy Veter");
    assert!(d.hit);
    let c = best(&d);
    assert_eq!((c.entry_id.as_str(), c.exact), ("tel-0003", true));
    assert_eq!(c.matched_name, "ЗАО Северный Ветер");

    // And a looser spelling of the same name.
    let d = screen(&s, "Severny Veter JSC");
    assert!(d.hit, "{:?}", d.candidates);
    assert_eq!(best(&d).entry_id, "tel-0003");
}

#[test]
fn screening_hits_in_any_word_order() {
    let s = Screener::new(json_list());
    let d = screen(&s, "Evander Quill Tarnowski");
    assert!(d.hit);
    assert_eq!(best(&d).entry_id, "tel-0005");
    assert!(best(&d).exact);
}

#[test]
fn screening_ignores_legal_form_words() {
    let s = Screener::new(json_list());
    let d = screen(&s, "The Zephyr Dynamics");
    assert!(d.hit);
    assert_eq!(best(&d).entry_id, "tel-0002");
    assert!(best(&d).exact);
    assert_eq!(best(&d).listed_name, "Zephyr Dynamics GmbH");
}

#[test]
fn screening_hits_through_diacritics() {
    let s = Screener::new(json_list());
    let d = screen(&s, "Blabaer Prazisionsteknik");
    assert!(d.hit);
    assert_eq!(best(&d).entry_id, "tel-0004");
    assert!(best(&d).exact);
}

#[test]
fn screening_reports_the_alternative_name_that_matched() {
    let s = Screener::new(json_list());
    let d = screen(&s, "HQF Semiconductor Trading");
    assert!(d.hit);
    let c = best(&d);
    assert_eq!(c.entry_id, "tel-0007");
    assert_eq!(c.listed_name, "Helix Quantum Foundry Limited");
    assert_eq!(c.matched_name, "HQF Semiconductor Trading Co.");
}

#[test]
fn screening_hits_csv_listings() {
    let s = Screener::new(csv_list());
    for (query, id) in [
        ("Kestrel Avionics", "csv-0001"),
        ("Granit Optika LLC", "csv-0002"),
        ("Tobias Wren Marlowe", "csv-0003"),
    ] {
        let d = screen(&s, query);
        assert!(d.hit, "{query}");
        assert_eq!(best(&d).entry_id, id, "{query}");
    }
}

#[test]
fn screening_does_not_hit_different_names() {
    let s = Screener::new(json_list());
    for query in [
        "Northbridge Orbital Services",
        "Zenith Dynamo Works",
        "Acme Bakery",
        "Helios Quantum Software",
        "Evander Holdings",
        "Blue Harbour Logistics",
    ] {
        let d = screen(&s, query);
        assert!(!d.hit, "{query}: {:?}", d.candidates);
        assert!(
            d.candidates
                .iter()
                .all(|c| c.score < d.threshold && !c.exact)
        );
    }
}

#[test]
fn screening_notes_a_country_difference_without_clearing_the_hit() {
    let s = Screener::new(json_list());
    let mut p = party("Zephyr Dynamics");
    p.country = Some("nz".to_owned());
    let d = s.screen(&p).unwrap();
    assert!(d.hit);
    assert!(best(&d).country_differs);
    assert_eq!(best(&d).listed_countries, ["DE"]);

    p.country = Some("DE".to_owned());
    assert!(!best(&s.screen(&p).unwrap()).country_differs);
    p.country = None;
    assert!(!best(&s.screen(&p).unwrap()).country_differs);
}

#[test]
fn screening_decision_names_the_list_and_party() {
    let s = Screener::new(json_list());
    let mut p = party("Zephyr Dynamics");
    p.role = PartyRole::EndUser;
    p.address = Some("5 Anywhere Lane".to_owned());
    let d = s.screen(&p).unwrap();
    assert_eq!(d.list_digest, JSON_SHA256);
    assert_eq!(d.list_date, "2026-12-01");
    assert_eq!(d.list_label, "TEST-CSL");
    assert_eq!(d.party, p);
    assert_eq!(d.threshold, DEFAULT_THRESHOLD);
}

#[test]
fn screening_ranks_best_first_and_caps_candidates() {
    // Three entries: the query itself, one letter dropped, and a shorter
    // last word.
    let json = r#"{"results": [
        {"id": "c", "name": "Orbitex Lumen Fabrik"},
        {"id": "a", "name": "Orbitex Lumen Fabrications"},
        {"id": "b", "name": "Orbitex Lumen Fabricatons"}]}"#;
    let list = ScreeningList::parse(ListFormat::Json, "T", "2026-12-01", json.as_bytes()).unwrap();
    let all = Screener::new(list.clone());
    assert_eq!(
        screen(&all, "Orbitex Lumen Fabrications").candidates.len(),
        3
    );
    let config = ScreenerConfig {
        max_candidates: 2,
        ..ScreenerConfig::default()
    };
    let s = Screener::with_config(list, config).unwrap();
    let d = screen(&s, "Orbitex Lumen Fabrications");
    let ids: Vec<&str> = d.candidates.iter().map(|c| c.entry_id.as_str()).collect();
    assert_eq!(ids, ["a", "b"]);
    assert!(d.candidates[0].score > d.candidates[1].score);
}

#[test]
fn screening_refuses_inconsistent_config() {
    let bad = [
        (0.9, 0.95, 10),
        (1.1, 0.8, 10),
        (0.9, -0.1, 10),
        (0.9, 0.8, 0),
    ];
    for (threshold, report_floor, max_candidates) in bad {
        let config = ScreenerConfig {
            threshold,
            report_floor,
            max_candidates,
        };
        assert_eq!(
            Screener::with_config(json_list(), config).unwrap_err(),
            ConfigError
        );
    }
}

#[test]
fn screening_refuses_unusable_parties() {
    let s = Screener::new(json_list());
    assert_eq!(s.screen(&party(" -- ")), Err(ScreenError::UnscreenableName));
    let long = party(&"a".repeat(MAX_PARTY_NAME_BYTES + 1));
    assert_eq!(s.screen(&long), Err(ScreenError::NameTooLong { max: 1024 }));
    let mut p = party("Zephyr");
    p.country = Some("Germany".to_owned());
    assert_eq!(s.screen(&p), Err(ScreenError::BadCountry));
    p.country = None;
    p.address = Some("x".repeat(MAX_PARTY_ADDRESS_BYTES + 1));
    assert_eq!(s.screen(&p), Err(ScreenError::AddressTooLong { max: 4096 }));
}

#[test]
fn rescreening_returns_only_parties_that_now_hit() {
    let s = Screener::new(json_list());
    let parties = [
        party("Blue Harbour Logistics"),
        party("Zephyr Dynamics AG"),
        party("Acme Bakery"),
        party("Granit"),
    ];
    let hits = rescreen(&s, &parties).unwrap();
    let indices: Vec<usize> = hits.iter().map(|(i, _)| *i).collect();
    assert_eq!(indices, [1]);
    assert_eq!(hits[0].1.party.name, "Zephyr Dynamics AG");

    let bad = [party("Acme Bakery"), party("!!")];
    let err = rescreen(&s, &bad).unwrap_err();
    assert_eq!((err.index, err.source), (1, ScreenError::UnscreenableName));
}

#[test]
fn screening_finds_planted_name_in_twenty_thousand_entries() {
    let (csv, planted_line) = generated_csv(20_000, 13_579);
    let list = ScreeningList::parse(ListFormat::Csv, "GEN", "2026-12-01", csv.as_bytes()).unwrap();
    assert_eq!(list.entries().len(), 20_000);
    let s = Screener::new(list);

    let d = screen(&s, "Quorvex Halvane Dynamiks");
    assert!(d.hit, "{:?}", d.candidates);
    assert_eq!(best(&d).entry_id, format!("gen-{planted_line}"));
}

/// A CSV list of `n` invented three-word names built from syllables by a
/// fixed linear congruential generator, with "QUORVEX HALVANE DYNAMICS
/// LTD" planted at position `planted`. No generated word can equal a
/// planted one: generated words are two or three syllables from a pool
/// without "quor", "hal" or "dyn".
fn generated_csv(n: usize, planted: usize) -> (String, usize) {
    const SYLLABLES: [&str; 24] = [
        "ba", "cor", "den", "fi", "gal", "ho", "ker", "lim", "mo", "nex", "pra", "ri", "sol", "tu",
        "vel", "wen", "xa", "yor", "zu", "tri", "bel", "dor", "fen", "gro",
    ];
    let mut seed: u64 = 0x5eed;
    let mut next = move || {
        seed = seed
            .wrapping_mul(6_364_136_223_846_793_005)
            .wrapping_add(1_442_695_040_888_963_407);
        (seed >> 33) as usize
    };
    let mut word = || {
        let parts = 2 + next() % 2;
        (0..parts)
            .map(|_| SYLLABLES[next() % SYLLABLES.len()])
            .collect::<String>()
    };

    let mut csv = String::from("_id,source,name,alt_names\n");
    for i in 0..n {
        let name = if i == planted {
            "QUORVEX HALVANE DYNAMICS LTD".to_owned()
        } else {
            format!("{} {} {}", word(), word(), word())
        };
        csv.push_str(&format!("gen-{i},GEN,{name},\n"));
    }
    (csv, planted)
}
