//! Checks that an example configuration file documents every key of its
//! configuration struct.
//!
//! The keys come from the struct itself, through serde, so the list cannot
//! drift from the code: a struct with `deny_unknown_fields` refuses an
//! unknown key with "unknown field `x`, expected one of `a`, `b`, ...",
//! naming every field it has. Probing each field in turn with a table value
//! finds the fields that are tables themselves (`[rate_limits]`, and inline
//! tables such as `{ burst = N, interval_ms = M }`) and lists theirs the
//! same way.
//!
//! What [`check_example`] asks of the example file:
//! 1. every key appears, set (`key = value`) or commented out
//!    (`# key = value`), in its table; a table appears as its `[header]`
//!    or as an inline-table value; a field of an inline table appears
//!    inside that value and is named in the comments of its key or table;
//! 2. a comment stands right above each key, or above the run of key lines
//!    it belongs to, or, for a field of an inline table, above its key or
//!    table; a key named `*_secs`, `*_ms` or `*_bytes` has a comment that
//!    names its unit (seconds, milliseconds, bytes);
//! 3. every commented-out assignment names a key of its table, and parses
//!    once uncommented, so the examples in comments stay valid.
//!
//! Limitation: a field that holds a list of tables (`[[x]]`) is taken as a
//! plain key; the fields of its tables are not listed.

/// The probe key, which no configuration struct has.
const PROBE: &str = "zz_probe_unknown_key";

/// A key, as the path of table names leading to it.
pub type KeyPath = Vec<String>;

/// What [`check_example`] found.
#[derive(Debug)]
pub struct Report {
    /// Every key of the struct, tables first then their fields, in the
    /// struct's order.
    pub keys: Vec<KeyPath>,
    /// What the example fails to document, one line each.
    pub problems: Vec<String>,
}

/// Lists the keys that `parse` accepts and checks that `example` documents
/// each of them. `parse` parses configuration text with the real loader and
/// returns serde's message when it refuses it.
pub fn check_example(example: &str, parse: &dyn Fn(&str) -> Result<(), String>) -> Report {
    let keys = config_keys(parse);
    let lines: Vec<Line<'_>> = example.lines().map(classify).collect();
    let sections = sections(&lines);
    let mut problems = Vec::new();
    for key in &keys {
        if let Err(problem) = documented(key, &lines, &sections) {
            problems.push(format!("{}: {problem}", key.join(".")));
        }
    }
    problems.extend(bad_commented_assignments(&lines, &sections, &keys, parse));
    Report { keys, problems }
}

/// Every key `parse` accepts, found by probing (see the module note).
/// Fails the test if the top level does not refuse unknown keys.
pub fn config_keys(parse: &dyn Fn(&str) -> Result<(), String>) -> Vec<KeyPath> {
    let top = table_fields(&[], parse).unwrap_or_else(|| {
        panic!("the configuration does not refuse unknown keys (deny_unknown_fields)")
    });
    let mut keys = Vec::new();
    let mut pending: Vec<KeyPath> = top.into_iter().rev().map(|f| vec![f]).collect();
    while let Some(key) = pending.pop() {
        let fields = table_fields(&key, parse).unwrap_or_default();
        for field in fields.into_iter().rev() {
            let mut path = key.clone();
            path.push(field);
            pending.push(path);
        }
        keys.push(key);
    }
    keys
}

/// The field names of a struct, read from its pretty `Debug` form
/// (`format!("{:#?}", value)`): a second list, from another derive, to
/// hold the probed keys against.
pub fn debug_field_names(pretty: &str) -> Vec<String> {
    pretty
        .lines()
        .filter_map(|line| line.strip_prefix("    "))
        .filter(|line| !line.starts_with(' '))
        .filter_map(|line| line.split_once(": "))
        .map(|(name, _)| name.to_owned())
        .collect()
}

/// The fields of the table at `path`, or `None` if the value there is not
/// a table (serde then refuses the probe otherwise).
fn table_fields(
    path: &[String],
    parse: &dyn Fn(&str) -> Result<(), String>,
) -> Option<Vec<String>> {
    let text = if path.is_empty() {
        format!("{PROBE} = 0\n")
    } else {
        format!("[{}]\n{PROBE} = 0\n", path.join("."))
    };
    let message = match parse(&text) {
        Ok(()) => panic!("{text:?} parsed: the value at {path:?} takes any key"),
        Err(message) => message,
    };
    let (_, expected) = message.split_once(&format!("unknown field `{PROBE}`, "))?;
    Some(
        expected
            .split('`')
            .skip(1)
            .step_by(2)
            .map(str::to_owned)
            .collect(),
    )
}

/// One line of the example file.
#[derive(Clone, Copy, Debug, PartialEq)]
enum Line<'a> {
    Blank,
    /// `[a.b]`, as written between the brackets.
    Header(&'a str),
    /// `key = value`.
    Set {
        key: &'a str,
        value: &'a str,
    },
    /// `# key = value` (or with more spaces after `#`).
    Commented {
        key: &'a str,
        value: &'a str,
    },
    /// Any other comment: the documentation.
    Prose(&'a str),
    /// Anything else (a continued value).
    Other,
}

fn classify(line: &str) -> Line<'_> {
    let line = line.trim();
    if line.is_empty() {
        return Line::Blank;
    }
    if let Some(comment) = line.strip_prefix('#') {
        return match assignment(comment.trim_start()) {
            Some((key, value)) => Line::Commented { key, value },
            None => Line::Prose(comment.trim()),
        };
    }
    if let Some(header) = line.strip_prefix('[').and_then(|l| l.strip_suffix(']')) {
        return Line::Header(header.trim());
    }
    match assignment(line) {
        Some((key, value)) => Line::Set { key, value },
        None => Line::Other,
    }
}

/// `key = value` with a bare key.
fn assignment(text: &str) -> Option<(&str, &str)> {
    let (key, value) = text.split_once(" = ")?;
    let bare = !key.is_empty()
        && key
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_');
    bare.then_some((key, value.trim()))
}

/// The table each line belongs to: the last header above it.
fn sections(lines: &[Line<'_>]) -> Vec<Vec<String>> {
    let mut current = Vec::new();
    lines
        .iter()
        .map(|line| {
            if let Line::Header(h) = line {
                current = h.split('.').map(|p| p.trim().to_owned()).collect();
            }
            current.clone()
        })
        .collect()
}

/// Checks one key: present where it belongs, with its documentation.
fn documented(key: &KeyPath, lines: &[Line<'_>], sections: &[Vec<String>]) -> Result<(), String> {
    let (name, table) = key.split_last().expect("a key path is never empty");
    if let Some(at) = header_line(lines, key) {
        let doc = doc_above(lines, at).ok_or("no comment above its [header]")?;
        return check_unit(name, &doc);
    }
    if let Some((at, _)) = key_line(lines, sections, table, name) {
        let doc = doc_above(lines, at).ok_or("no comment right above it or its group")?;
        return check_unit(name, &doc);
    }
    let Some((parent, grandparent)) = table.split_last() else {
        return Err("neither set nor commented out".into());
    };
    if header_line(lines, table).is_some() {
        return Err(format!(
            "neither set nor commented out in [{}]",
            table.join(".")
        ));
    }

    // A field of an inline table: inside its parent's value, and named in
    // the comments of the parent or of the parent's table.
    let (at, value) = key_line(lines, sections, grandparent, parent)
        .ok_or("its table is neither set nor commented out")?;
    if !value.contains(&format!("{name} =")) {
        return Err(format!("missing from the value of {parent}, {value}"));
    }
    let mut doc = doc_above(lines, at).unwrap_or_default();
    if let Some(h) = header_line(lines, grandparent) {
        doc.push_str(&doc_above(lines, h).unwrap_or_default());
    }
    if !doc.contains(name.as_str()) {
        return Err(format!("not named in the comments about {parent}"));
    }
    check_unit(name, &doc)
}

/// The `[header]` line of the table at `path`.
fn header_line(lines: &[Line<'_>], path: &[String]) -> Option<usize> {
    let name = path.join(".");
    lines
        .iter()
        .position(|l| matches!(l, Line::Header(h) if *h == name))
}

/// The line that sets or comments out `name` in `table`, and its value.
fn key_line<'a>(
    lines: &[Line<'a>],
    sections: &[Vec<String>],
    table: &[String],
    name: &str,
) -> Option<(usize, &'a str)> {
    lines
        .iter()
        .zip(sections)
        .enumerate()
        .find_map(|(i, (line, section))| {
            let (Line::Set { key, value } | Line::Commented { key, value }) = *line else {
                return None;
            };
            (key == name && section == table).then_some((i, value))
        })
}

/// The comment documenting line `at`: the comment lines right above it,
/// or above the run of assignments it ends (its group). `None` when a blank
/// line, a header or the start of the file comes first.
fn doc_above(lines: &[Line<'_>], at: usize) -> Option<String> {
    let mut i = at;
    while i > 0
        && matches!(
            lines[i - 1],
            Line::Set { .. } | Line::Commented { .. } | Line::Other
        )
    {
        i -= 1;
    }
    let mut doc = Vec::new();
    while i > 0 {
        let Line::Prose(text) = lines[i - 1] else {
            break;
        };
        doc.push(text);
        i -= 1;
    }
    let doc: Vec<&str> = doc.into_iter().rev().filter(|t| !t.is_empty()).collect();
    (!doc.is_empty()).then(|| doc.join(" ") + " ")
}

/// A key whose name carries a unit must have it named in its comment.
fn check_unit(name: &str, doc: &str) -> Result<(), String> {
    let units = [
        ("_secs", "second"),
        ("_ms", "millisecond"),
        ("_bytes", "byte"),
    ];
    for (suffix, unit) in units {
        if name.ends_with(suffix) && !doc.to_lowercase().contains(unit) {
            return Err(format!("its comment does not say it is in {unit}s: {doc}"));
        }
    }
    Ok(())
}

/// Commented-out assignments that name no key of their table, or that do
/// not parse once uncommented.
fn bad_commented_assignments(
    lines: &[Line<'_>],
    sections: &[Vec<String>],
    keys: &[KeyPath],
    parse: &dyn Fn(&str) -> Result<(), String>,
) -> Vec<String> {
    let mut problems = Vec::new();
    for (line, table) in lines.iter().zip(sections) {
        let Line::Commented { key, value } = line else {
            continue;
        };
        let mut path = table.clone();
        path.push((*key).to_owned());
        if !keys.contains(&path) {
            problems.push(format!("`# {key} = {value}` names no key of its table"));
            continue;
        }
        let header = if table.is_empty() {
            String::new()
        } else {
            format!("[{}]\n", table.join("."))
        };
        if let Err(e) = parse(&format!("{header}{key} = {value}\n")) {
            problems.push(format!("`# {key} = {value}` does not parse: {e}"));
        }
    }
    problems
}

#[cfg(test)]
mod tests {
    use serde::Deserialize;

    use super::*;

    #[derive(Debug, Default, Deserialize)]
    #[serde(default, deny_unknown_fields)]
    struct Config {
        listen: String,
        timeout_secs: u64,
        cache: Option<String>,
        limits: Limits,
    }

    #[derive(Debug, Default, Deserialize)]
    #[serde(default, deny_unknown_fields)]
    struct Limits {
        max_keys: u64,
        rate: Rate,
    }

    #[derive(Debug, Default, Deserialize)]
    #[serde(deny_unknown_fields)]
    #[expect(dead_code, reason = "only the field names matter here")]
    struct Rate {
        burst: u32,
        interval_ms: u64,
    }

    fn parse(text: &str) -> Result<(), String> {
        toml::from_str::<Config>(text)
            .map(drop)
            .map_err(|e| e.message().to_owned())
    }

    const GOOD: &str = "\
# Where to listen.
listen = \"x\"

# How long to wait, in seconds.
timeout_secs = 5
# A cache file; unset by default.
# cache = \"./cache\"

# Limits. Each rate is { burst = N, interval_ms = M }: N at once, then one
# every M milliseconds.
[limits]
# Most keys kept.
max_keys = 10
# The one rate.
rate = { burst = 1, interval_ms = 2 }
";

    fn path(key: &str) -> KeyPath {
        key.split('.').map(str::to_owned).collect()
    }

    #[test]
    fn lists_every_key_of_the_struct_and_its_tables() {
        let keys = config_keys(&parse);
        let expected = [
            "listen",
            "timeout_secs",
            "cache",
            "limits",
            "limits.max_keys",
            "limits.rate",
            "limits.rate.burst",
            "limits.rate.interval_ms",
        ];
        assert_eq!(keys, expected.map(path));
    }

    #[test]
    fn reads_field_names_from_a_pretty_debug_form() {
        let config = Config {
            cache: Some("c".into()),
            ..Config::default()
        };
        let names = debug_field_names(&format!("{config:#?}"));
        assert_eq!(names, ["listen", "timeout_secs", "cache", "limits"]);
    }

    #[test]
    fn accepts_a_file_that_documents_every_key() {
        let report = check_example(GOOD, &parse);
        assert!(report.problems.is_empty(), "{:#?}", report.problems);
    }

    #[test]
    fn finds_keys_missing_undocumented_or_without_their_unit() {
        let cases = [
            // Missing: a key, a key of a table, a field of an inline table.
            (GOOD.replace("# cache = \"./cache\"\n", ""), "cache"),
            (GOOD.replace("max_keys = 10\n", ""), "limits.max_keys"),
            (
                GOOD.replace("burst = 1, interval_ms = 2", "burst = 1"),
                "limits.rate.interval_ms",
            ),
            // No comment above the key, its group or its table.
            (GOOD.replace("# Where to listen.\n", ""), "listen"),
            (GOOD.replace("# Most keys kept.\n", ""), "limits.max_keys"),
            (
                GOOD.replace(
                    "# Limits. Each rate is { burst = N, interval_ms = M }",
                    "# Limits",
                ),
                "limits.rate.burst",
            ),
            // No unit.
            (GOOD.replace(", in seconds.", "."), "timeout_secs"),
            (
                GOOD.replace("every M milliseconds", "every M"),
                "limits.rate.interval_ms",
            ),
            // A comment separated by a blank line documents nothing.
            (
                GOOD.replace("# Where to listen.\n", "# Where to listen.\n\n"),
                "listen",
            ),
        ];
        for (text, key) in cases {
            let problems = check_example(&text, &parse).problems;
            assert!(
                problems.iter().any(|p| p.starts_with(&format!("{key}: "))),
                "{key} not reported: {problems:#?}"
            );
        }
    }

    #[test]
    fn refuses_commented_assignments_of_unknown_keys_or_bad_values() {
        let typo = GOOD.replace("# cache = ", "# cache = \"a\"\n# cahce = ");
        let problems = check_example(&typo, &parse).problems;
        assert_eq!(problems.len(), 1, "{problems:#?}");
        assert!(problems[0].contains("cahce"), "{problems:#?}");

        let bad = GOOD.replace("# cache = \"./cache\"", "# cache = 5");
        let problems = check_example(&bad, &parse).problems;
        assert_eq!(problems.len(), 1, "{problems:#?}");
        assert!(problems[0].contains("does not parse"), "{problems:#?}");
    }
}
