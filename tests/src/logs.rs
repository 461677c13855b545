//! Checks on what a server process logged: that every line is JSON, which
//! span a line ran in, and that a secret appears in none of the forms a
//! log could carry it in.

use base64::Engine;
use base64::engine::general_purpose::{STANDARD, STANDARD_NO_PAD, URL_SAFE_NO_PAD};
use serde_json::Value;

/// Every line of `text`, each parsed as a JSON object; fails the test
/// naming the first line that is not one.
pub fn json_lines(text: &str) -> Vec<Value> {
    text.lines()
        .map(|line| match serde_json::from_str::<Value>(line) {
            Ok(event) if event.is_object() => event,
            _ => panic!("a log line is not a JSON object: {line:?}"),
        })
        .collect()
}

/// The `message` field of a JSON log event.
pub fn message(event: &Value) -> Option<&str> {
    event.get("fields")?.get("message")?.as_str()
}

/// The string field `field` of the span a JSON log event ran in (its
/// innermost span).
pub fn span_field<'a>(event: &'a Value, field: &str) -> Option<&'a str> {
    event.get("span")?.get(field)?.as_str()
}

/// The forms `bytes` could take in a log line: hex (both cases), base64
/// (padded and not), base64url and Rust's `Debug` of a byte slice.
pub fn encodings(bytes: &[u8]) -> Vec<String> {
    let hex = hex::encode(bytes);
    vec![
        hex.to_uppercase(),
        hex,
        STANDARD.encode(bytes),
        STANDARD_NO_PAD.encode(bytes),
        URL_SAFE_NO_PAD.encode(bytes),
        format!("{bytes:?}"),
    ]
}

/// The base64 lines of a PEM file's bodies, without the `BEGIN` and `END`
/// lines: any one of them in a log gives part of the key away.
pub fn pem_body_lines(pem: &str) -> Vec<String> {
    pem.lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with("-----"))
        .map(str::to_owned)
        .collect()
}

/// The DER bytes of a PEM file holding one body.
pub fn pem_der(pem: &str) -> Vec<u8> {
    STANDARD
        .decode(pem_body_lines(pem).concat())
        .expect("a PEM body is base64")
}

/// Fails the test if any line of `log` contains one of `forms`, naming
/// `what` and the line (the secret itself is not repeated).
pub fn assert_absent(log: &str, what: &str, forms: &[String]) {
    assert!(!forms.is_empty(), "no form of {what} to look for");
    for (number, line) in log.lines().enumerate() {
        if let Some(form) = forms.iter().position(|f| line.contains(f.as_str())) {
            panic!("log line {} carries {what} (form {form})", number + 1);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_a_secret_in_each_form() {
        let secret = [0xfb, 0xff, 0x01, 0x7e];
        let forms = encodings(&secret);
        assert_eq!(
            forms,
            [
                "FBFF017E",
                "fbff017e",
                "+/8Bfg==",
                "+/8Bfg",
                "-_8Bfg",
                "[251, 255, 1, 126]"
            ]
        );
        for form in &forms {
            let log = format!("{{\"a\":1}}\nbefore {form} after\n");
            let caught = std::panic::catch_unwind(|| assert_absent(&log, "it", &forms));
            assert!(caught.is_err(), "{form} not found");
        }
        assert_absent("{\"a\":1}\nnothing here\n", "it", &forms);
    }

    #[test]
    fn reads_pem_bodies_and_json_spans() {
        let pem = "-----BEGIN PRIVATE KEY-----\nAAAA\nBBBB\n-----END PRIVATE KEY-----\n";
        assert_eq!(pem_body_lines(pem), ["AAAA", "BBBB"]);
        assert_eq!(pem_der(pem), [0, 0, 0, 4, 16, 65]);

        let events =
            json_lines(r#"{"fields":{"message":"done"},"span":{"rpc":"Info","request_id":"r1"}}"#);
        assert_eq!(message(&events[0]), Some("done"));
        assert_eq!(span_field(&events[0], "request_id"), Some("r1"));
        assert_eq!(span_field(&events[0], "rpc"), Some("Info"));
    }

    #[test]
    #[should_panic(expected = "not a JSON object")]
    fn refuses_a_text_line_among_json_ones() {
        json_lines("{\"a\":1}\n2026-01-01T00:00:00Z INFO started\n");
    }
}
