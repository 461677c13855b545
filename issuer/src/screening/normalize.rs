//! Name normalisation for screening: two spellings of one party should come
//! out as the same tokens.
//!
//! The steps, in order:
//!
//! 1. Lower-case every character with Unicode's case mapping
//!    ([`char::to_lowercase`]).
//! 2. Transliterate, one character at a time, with the hand tables below:
//!    Latin letters with diacritics to plain ASCII (é→e, ß→ss, ø→o, ł→l,
//!    æ→ae, þ→th, ...) and Cyrillic to Latin (ГАЗПРОМ→gazprom, Ж→zh, Щ→shch,
//!    the hard and soft signs dropped). Combining diacritical marks
//!    (U+0300..U+036F, as left by decomposed input) are dropped.
//! 3. Drop apostrophes and full stops, so `O'Neil`→`oneil` and
//!    `S.A.R.L.`→`sarl`; every other character that is not a letter or a
//!    digit separates words.
//! 4. Drop legal-form and filler words ([`NOISE_WORDS`], and close
//!    misspellings of the long ones, see [`is_noise`]). If a name consists
//!    of nothing else, its words are kept, so that "The Company Ltd" still
//!    has something to compare.
//! 5. Sort the words and remove repeats, so word order does not matter.
//!
//! Covered by the tables: Latin-1 Supplement and Latin Extended-A letters,
//! Romanian comma-below letters, and the Russian, Ukrainian, Belarusian,
//! Serbian and Macedonian Cyrillic alphabets (a simplified scientific /
//! BGN-style romanisation: х→kh, ц→ts, ч→ch, ш→sh, щ→shch, ю→yu, я→ya).
//! The input is untrusted text; callers bound its length first.

use super::jaro_winkler::jaro_winkler;

/// Legal-form and filler words removed from names before comparison.
///
/// English and international company forms (`ltd`, `limited`, `llc`, `llp`,
/// `lp`, `inc`, `incorporated`, `corp`, `corporation`, `co`, `company`,
/// `plc`, `pte`, `pty`), German and Dutch (`gmbh`, `ag`, `kg`, `ug`, `bv`,
/// `nv`), Romance (`sa`, `sarl`, `sas`, `srl`, `spa`, `sl`), Nordic (`oy`,
/// `oyj`, `ab`, `as`, `asa`), Central European (`sro`, `kft`, `zrt`),
/// Russian forms as transliterated (`ooo`, `zao`, `oao`, `ao`, `pao`,
/// `jsc`, `ojsc`, `pjsc`, `cjsc`), Japanese `kk`, and the fillers `the`,
/// `and`.
pub const NOISE_WORDS: &[&str] = &[
    "ab",
    "ag",
    "and",
    "ao",
    "as",
    "asa",
    "bv",
    "cjsc",
    "co",
    "company",
    "corp",
    "corporation",
    "gmbh",
    "inc",
    "incorporated",
    "jsc",
    "kft",
    "kg",
    "kk",
    "limited",
    "llc",
    "llp",
    "lp",
    "ltd",
    "nv",
    "oao",
    "ojsc",
    "ooo",
    "oy",
    "oyj",
    "pao",
    "pjsc",
    "plc",
    "pte",
    "pty",
    "sa",
    "sarl",
    "sas",
    "sl",
    "spa",
    "srl",
    "sro",
    "the",
    "ug",
    "zao",
    "zrt",
];

/// The normalised words of `name`: folded, transliterated, without noise
/// words, sorted and without repeats. Empty when `name` has no letters or
/// digits.
pub fn tokens(name: &str) -> Vec<String> {
    let mut folded = String::with_capacity(name.len());
    for c in name.chars().flat_map(char::to_lowercase) {
        push_transliterated(c, &mut folded);
    }

    let words: Vec<&str> = folded
        .split(|c: char| !c.is_alphanumeric())
        .filter(|w| !w.is_empty())
        .collect();
    let kept: Vec<&str> = words.iter().copied().filter(|w| !is_noise(w)).collect();
    let mut out: Vec<String> = if kept.is_empty() { words } else { kept }
        .into_iter()
        .map(str::to_owned)
        .collect();
    out.sort_unstable();
    out.dedup();
    out
}

/// The normalised form of `name`: its [`tokens`] joined by single spaces.
pub fn normalize(name: &str) -> String {
    tokens(name).join(" ")
}

/// Jaro-Winkler similarity at or above which a word counts as a
/// misspelling of one of the long noise words (`company`, `corporation`,
/// `incorporated`, `limited`).
pub const NOISE_MISSPELLING: f64 = 0.92;

/// Whether `word` (already normalised) is a legal-form or filler word, or
/// a misspelling of a long one (`limtied`, `corportaion`): the same first
/// letter, a length within two, and [`NOISE_MISSPELLING`].
pub fn is_noise(word: &str) -> bool {
    if NOISE_WORDS.binary_search(&word).is_ok() {
        return true;
    }
    let long = ["company", "corporation", "incorporated", "limited"];
    long.iter().any(|n| {
        word.as_bytes().first() == n.as_bytes().first()
            && word.len().abs_diff(n.len()) <= 2
            && jaro_winkler(word, n) >= NOISE_MISSPELLING
    })
}

/// Appends the transliteration of one lower-case character: a plain
/// letter, a replacement string, nothing (dropped marks), or a space
/// (separators).
fn push_transliterated(c: char, out: &mut String) {
    if c.is_ascii_alphanumeric() {
        out.push(c);
    } else if matches!(c, '\'' | '.' | '\u{2019}' | '\u{2018}' | '\u{02BC}' | '`') {
        // Apostrophes and full stops join: O'Neil, S.A.
    } else if ('\u{0300}'..='\u{036F}').contains(&c) {
        // Combining diacritical marks: dropped with their accent.
    } else if let Some(s) = latin(c).or_else(|| cyrillic(c)) {
        out.push_str(s);
    } else if c.is_alphanumeric() {
        // Limitation: letters of other scripts (Greek, Arabic, Hebrew, CJK,
        // ...) and Latin letters outside the table are kept as they are, so
        // they match only the same spelling in the same script.
        out.push(c);
    } else {
        out.push(' ');
    }
}

/// Latin letters with diacritics (lower case) and their ASCII spelling.
fn latin(c: char) -> Option<&'static str> {
    Some(match c {
        'à' | 'á' | 'â' | 'ã' | 'ä' | 'å' | 'ā' | 'ă' | 'ą' => "a",
        'æ' => "ae",
        'ç' | 'ć' | 'ĉ' | 'ċ' | 'č' => "c",
        'ď' | 'đ' | 'ð' => "d",
        'è' | 'é' | 'ê' | 'ë' | 'ē' | 'ĕ' | 'ė' | 'ę' | 'ě' => "e",
        'ĝ' | 'ğ' | 'ġ' | 'ģ' => "g",
        'ĥ' | 'ħ' => "h",
        'ì' | 'í' | 'î' | 'ï' | 'ĩ' | 'ī' | 'ĭ' | 'į' | 'ı' => "i",
        'ĳ' => "ij",
        'ĵ' => "j",
        'ķ' | 'ĸ' => "k",
        'ĺ' | 'ļ' | 'ľ' | 'ŀ' | 'ł' => "l",
        'ñ' | 'ń' | 'ņ' | 'ň' | 'ŉ' | 'ŋ' => "n",
        'ò' | 'ó' | 'ô' | 'õ' | 'ö' | 'ø' | 'ō' | 'ŏ' | 'ő' => "o",
        'œ' => "oe",
        'ŕ' | 'ŗ' | 'ř' => "r",
        'ś' | 'ŝ' | 'ş' | 'š' | 'ș' | 'ſ' => "s",
        'ß' => "ss",
        'ţ' | 'ť' | 'ŧ' | 'ț' => "t",
        'þ' => "th",
        'ù' | 'ú' | 'û' | 'ü' | 'ũ' | 'ū' | 'ŭ' | 'ů' | 'ű' | 'ų' => "u",
        'ŵ' => "w",
        'ý' | 'ÿ' | 'ŷ' => "y",
        'ź' | 'ż' | 'ž' => "z",
        _ => return None,
    })
}

/// Cyrillic letters (lower case) and their Latin spelling.
fn cyrillic(c: char) -> Option<&'static str> {
    Some(match c {
        'а' => "a",
        'б' => "b",
        'в' => "v",
        'г' | 'ґ' | 'ѓ' => "g",
        'д' => "d",
        'е' | 'ё' | 'э' => "e",
        'є' => "ye",
        'ж' => "zh",
        'з' => "z",
        'и' | 'і' => "i",
        'ї' => "yi",
        'й' | 'ы' => "y",
        'ј' => "j",
        'к' | 'ќ' => "k",
        'л' => "l",
        'љ' => "lj",
        'м' => "m",
        'н' => "n",
        'њ' => "nj",
        'о' => "o",
        'п' => "p",
        'р' => "r",
        'с' => "s",
        'т' => "t",
        'ћ' => "c",
        'у' | 'ў' => "u",
        'ф' => "f",
        'х' => "kh",
        'ц' => "ts",
        'ч' => "ch",
        'џ' | 'ѕ' => "dz",
        'ђ' => "dj",
        'ш' => "sh",
        'щ' => "shch",
        'ъ' | 'ь' => "",
        'ю' => "yu",
        'я' => "ya",
        _ => return None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn noise_words_are_sorted_for_binary_search() {
        assert!(NOISE_WORDS.windows(2).all(|w| w[0] < w[1]));
    }

    #[test]
    fn folds_case_and_sorts_words() {
        assert_eq!(normalize("Zephyr DYNAMICS"), "dynamics zephyr");
        assert_eq!(normalize("dynamics zephyr"), "dynamics zephyr");
        assert_eq!(tokens("Orbit orbit ORBIT Labs"), ["labs", "orbit"]);
    }

    #[test]
    fn transliterates_latin_diacritics() {
        assert_eq!(normalize("Ærø Straße"), "aero strasse");
        assert_eq!(normalize("Łódź Ørsted"), "lodz orsted");
        assert_eq!(normalize("Škoda Çelik Ţară"), "celik skoda tara");
        // Decomposed: e followed by a combining acute accent.
        assert_eq!(normalize("Caf\u{0065}\u{0301}"), "cafe");
    }

    #[test]
    fn transliterates_cyrillic() {
        assert_eq!(normalize("ГАЗПРОМ"), "gazprom");
        assert_eq!(normalize("Щука Хлеб"), "khleb shchuka");
        assert_eq!(normalize("Объект Юг Ёж"), "ezh obekt yug");
        assert_eq!(normalize("Їжак"), "yizhak");
    }

    #[test]
    fn punctuation_separates_and_apostrophes_join() {
        assert_eq!(normalize("Acme-Rocket/Works"), "acme rocket works");
        assert_eq!(normalize("O'Neil & Sons"), "oneil sons");
        assert_eq!(normalize("Vega, Lyra"), "lyra vega");
    }

    #[test]
    fn drops_legal_forms_in_any_spelling() {
        assert_eq!(normalize("Zephyr Dynamics GmbH"), "dynamics zephyr");
        assert_eq!(normalize("The Zephyr Dynamics"), "dynamics zephyr");
        assert_eq!(normalize("Orbit Labs S.A.R.L."), "labs orbit");
        assert_eq!(normalize("ООО Ромашка"), "romashka");
        assert_eq!(normalize("Nimbus Co., Ltd."), "nimbus");
    }

    #[test]
    fn drops_misspelt_long_legal_forms_only() {
        assert_eq!(normalize("Orbit Labs Limtied"), "labs orbit");
        assert_eq!(normalize("Orbit Labs Corportaion"), "labs orbit");
        // Not close enough, or another first letter: kept.
        assert_eq!(normalize("Orbit Companion"), "companion orbit");
        assert_eq!(normalize("Orbit Kompany"), "kompany orbit");
        assert_eq!(normalize("Orbit Limbo"), "limbo orbit");
    }

    #[test]
    fn keeps_words_when_all_are_noise() {
        assert_eq!(normalize("The Company Ltd"), "company ltd the");
    }

    #[test]
    fn empty_when_nothing_to_compare() {
        assert!(tokens("").is_empty());
        assert!(tokens(" -- !! ").is_empty());
    }

    #[test]
    fn keeps_other_scripts_as_they_are() {
        assert_eq!(normalize("Αθήνα"), "αθήνα");
    }
}
