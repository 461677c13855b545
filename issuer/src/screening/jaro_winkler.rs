//! Jaro and Jaro-Winkler similarity of two strings, counted in `char`s.
//!
//! Jaro similarity of `a` and `b` with `m` matching characters and `t`
//! transpositions is `(m/|a| + m/|b| + (m - t)/m) / 3`, or 0 when `m` is 0.
//! Two characters match when they are equal and their positions differ by
//! at most `max(|a|, |b|) / 2 - 1`; each character is matched at most once,
//! scanning `a` left to right and taking the first free partner in `b`. `t`
//! is half the number of matched pairs that appear in a different order in
//! the two strings.
//!
//! Winkler's variant adds a bonus for a common prefix of length `l` (at most
//! [`MAX_PREFIX`]): `jw = jaro + l * PREFIX_SCALE * (1 - jaro)`.
//!
//! Two empty strings are equal and score 1; an empty string against a
//! non-empty one scores 0. Inputs come from the screening normaliser, which
//! bounds their length; the work is `O(|a| * window)`.

/// Winkler's prefix scale `p`.
pub const PREFIX_SCALE: f64 = 0.1;

/// The longest common prefix that earns Winkler's bonus.
pub const MAX_PREFIX: usize = 4;

/// Jaro similarity of two strings, in `[0, 1]`.
pub fn jaro(a: &str, b: &str) -> f64 {
    let a: Vec<char> = a.chars().collect();
    let b: Vec<char> = b.chars().collect();
    jaro_chars(&a, &b)
}

/// Jaro-Winkler similarity of two strings, in `[0, 1]`.
pub fn jaro_winkler(a: &str, b: &str) -> f64 {
    let a: Vec<char> = a.chars().collect();
    let b: Vec<char> = b.chars().collect();
    jaro_winkler_chars(&a, &b)
}

/// Jaro similarity of two `char` sequences, in `[0, 1]`.
pub fn jaro_chars(a: &[char], b: &[char]) -> f64 {
    jaro_and_matches(a, b).0
}

/// Jaro similarity of two `char` sequences and their number of matching
/// characters `m`.
fn jaro_and_matches(a: &[char], b: &[char]) -> (f64, usize) {
    if a.is_empty() && b.is_empty() {
        return (1.0, 0);
    }
    if a.is_empty() || b.is_empty() {
        return (0.0, 0);
    }
    // Names are short: up to 64 characters a side, the match flags are the
    // bits of one word each.
    if a.len() <= 64 && b.len() <= 64 {
        jaro_with(a, b, 0u64, 0u64)
    } else {
        jaro_with(a, b, vec![false; a.len()], vec![false; b.len()])
    }
}

/// Jaro similarity of two non-empty sequences, with match flags of type
/// `F` (all clear) for each side.
fn jaro_with<F: Flags>(a: &[char], b: &[char], mut a_matched: F, mut b_matched: F) -> (f64, usize) {
    // 1. Pair each character of `a` with the first free equal character of
    //    `b` inside the window.
    let window = (a.len().max(b.len()) / 2).saturating_sub(1);
    let mut matches = 0usize;
    for (i, &ca) in a.iter().enumerate() {
        let lo = i.saturating_sub(window);
        let hi = (i + window + 1).min(b.len());
        if let Some(j) = (lo..hi).find(|&j| !b_matched.is_set(j) && b[j] == ca) {
            a_matched.set(i);
            b_matched.set(j);
            matches += 1;
        }
    }
    if matches == 0 {
        return (0.0, 0);
    }

    // 2. Walk both matched subsequences in order; each position where they
    //    differ is half a transposition. `b` has as many flags set as `a`,
    //    so `j` stays in range.
    let mut out_of_order = 0usize;
    let mut j = 0;
    for (i, &ca) in a.iter().enumerate() {
        if a_matched.is_set(i) {
            while !b_matched.is_set(j) {
                j += 1;
            }
            if b[j] != ca {
                out_of_order += 1;
            }
            j += 1;
        }
    }

    let m = matches as f64;
    let t = (out_of_order / 2) as f64;
    let jaro = (m / a.len() as f64 + m / b.len() as f64 + (m - t) / m) / 3.0;
    (jaro, matches)
}

/// Which positions of a string are matched.
trait Flags {
    fn is_set(&self, i: usize) -> bool;
    fn set(&mut self, i: usize);
}

/// Positions below 64, one bit each.
impl Flags for u64 {
    fn is_set(&self, i: usize) -> bool {
        (self >> i) & 1 == 1
    }

    fn set(&mut self, i: usize) {
        *self |= 1 << i;
    }
}

impl Flags for Vec<bool> {
    fn is_set(&self, i: usize) -> bool {
        self[i]
    }

    fn set(&mut self, i: usize) {
        self[i] = true;
    }
}

/// Jaro-Winkler similarity of two `char` sequences, in `[0, 1]`.
pub fn jaro_winkler_chars(a: &[char], b: &[char]) -> f64 {
    jaro_winkler_and_coverage(a, b).0
}

/// Jaro-Winkler similarity of two `char` sequences, and the share of the
/// longer one's characters that matched (`m / max(|a|, |b|)`, 1 for two
/// empty sequences).
pub fn jaro_winkler_and_coverage(a: &[char], b: &[char]) -> (f64, f64) {
    let (j, m) = jaro_and_matches(a, b);
    let prefix = a
        .iter()
        .zip(b)
        .take(MAX_PREFIX)
        .take_while(|(x, y)| x == y)
        .count();
    let longer = a.len().max(b.len());
    let coverage = if longer == 0 {
        1.0
    } else {
        m as f64 / longer as f64
    };
    (j + prefix as f64 * PREFIX_SCALE * (1.0 - j), coverage)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn close(got: f64, want: f64, tol: f64) -> bool {
        (got - want).abs() <= tol
    }

    // Jaro values published with the Rosetta Code task "Jaro similarity"
    // (rosettacode.org/wiki/Jaro_similarity): MARTHA/MARHTA 0.944444,
    // DIXON/DICKSONX 0.766667, JELLYFISH/SMELLYFISH 0.896296 and the worked
    // example DWAYNE/DUANE 0.822222 (m = 4, t = 0).
    #[test]
    fn jaro_matches_published_values() {
        assert!(close(jaro("MARTHA", "MARHTA"), 0.944_444, 1e-6));
        assert!(close(jaro("DIXON", "DICKSONX"), 0.766_667, 1e-6));
        assert!(close(jaro("JELLYFISH", "SMELLYFISH"), 0.896_296, 1e-6));
        assert!(close(jaro("DWAYNE", "DUANE"), 0.822_222, 1e-6));
    }

    // Jaro-Winkler values as quoted on Wikipedia's "Jaro-Winkler distance"
    // page and its mirrors (MARTHA/MARHTA 0.961 is also the documented
    // example of FalkorDB's text.jaroWinkler): MARTHA/MARHTA 0.961,
    // DWAYNE/DUANE 0.84, DIXON/DICKSONX 0.813. By hand with p = 0.1:
    // 0.9444 + 3 * 0.1 * 0.0556 = 0.9611; 0.8222 + 1 * 0.1 * 0.1778 = 0.8400;
    // 0.7667 + 2 * 0.1 * 0.2333 = 0.8133.
    #[test]
    fn jaro_winkler_matches_published_values() {
        assert!(close(jaro_winkler("MARTHA", "MARHTA"), 0.961, 5e-4));
        assert!(close(jaro_winkler("DWAYNE", "DUANE"), 0.84, 5e-4));
        assert!(close(jaro_winkler("DIXON", "DICKSONX"), 0.813, 5e-4));
        // No common prefix: no bonus.
        assert!(close(
            jaro_winkler("JELLYFISH", "SMELLYFISH"),
            0.896_296,
            1e-6
        ));
    }

    #[test]
    fn coverage_is_matches_over_the_longer_length() {
        // DWAYNE / DUANE: m = 4 (Rosetta Code's worked example), longer 6.
        let (a, b): (Vec<char>, Vec<char>) =
            ("DWAYNE".chars().collect(), "DUANE".chars().collect());
        let (jw, coverage) = jaro_winkler_and_coverage(&a, &b);
        assert!(close(jw, 0.84, 5e-4));
        assert!(close(coverage, 4.0 / 6.0, 1e-12));
        assert_eq!(jaro_winkler_and_coverage(&[], &[]), (1.0, 1.0));
        assert_eq!(jaro_winkler_and_coverage(&a, &[]), (0.0, 0.0));
    }

    #[test]
    fn prefix_bonus_stops_at_four_characters() {
        // ABCDEX / ABCDEY: m = 5 of 6, t = 0, so Jaro = (5/6 + 5/6 + 1) / 3
        // = 8/9; the common prefix is 5 long but only 4 count.
        let j = 8.0 / 9.0;
        let want = j + 4.0 * 0.1 * (1.0 - j);
        assert!(close(jaro_winkler("ABCDEX", "ABCDEY"), want, 1e-12));
    }

    #[test]
    fn counts_characters_not_bytes() {
        // Each side is three characters but six bytes; by characters the
        // strings differ in one place: m = 2, Jaro = (2/3 + 2/3 + 1) / 3.
        let want = (2.0 / 3.0 + 2.0 / 3.0 + 1.0) / 3.0;
        assert!(close(
            jaro("жук", "жам"),
            (1.0 / 3.0 + 1.0 / 3.0 + 1.0) / 3.0,
            1e-12
        ));
        assert!(close(jaro("жук", "жуа"), want, 1e-12));
    }

    #[test]
    fn long_strings_score_like_short_ones() {
        // 102 characters each, past the one-word flags: the 100 x's match in
        // order, the final "ab" / "ba" match crosswise (window 50), so
        // m = 102 and t = 1; the common prefix is 4 or more.
        let a = format!("{}ab", "x".repeat(100));
        let b = format!("{}ba", "x".repeat(100));
        let j = (1.0 + 1.0 + 101.0 / 102.0) / 3.0;
        assert!(close(jaro(&a, &b), j, 1e-12));
        assert!(close(jaro_winkler(&a, &b), j + 0.4 * (1.0 - j), 1e-12));
    }

    #[test]
    fn equal_strings_score_one_and_disjoint_score_zero() {
        for s in ["", "a", "acme", "zephyr dynamics", "газпром"] {
            assert_eq!(jaro_winkler(s, s), 1.0, "{s}");
        }
        assert_eq!(jaro_winkler("abc", "xyz"), 0.0);
        assert_eq!(jaro_winkler("", "xyz"), 0.0);
        assert_eq!(jaro_winkler("xyz", ""), 0.0);
    }

    #[test]
    fn is_symmetric_and_bounded() {
        let words = [
            "",
            "a",
            "ab",
            "ba",
            "martha",
            "marhta",
            "acme rocket works",
            "acme rocketworks",
            "zephyr",
            "zefyr",
            "dynamics",
            "northwind",
            "aaaaab",
            "baaaaa",
            "abcabcabc",
        ];
        for a in words {
            for b in words {
                let ab = jaro_winkler(a, b);
                let ba = jaro_winkler(b, a);
                assert!((0.0..=1.0).contains(&ab), "{a} {b} {ab}");
                assert!(close(ab, ba, 1e-12), "{a} {b} {ab} {ba}");
                assert!(jaro(a, b) <= ab + 1e-12, "{a} {b}");
            }
        }
    }
}
