//! The run's canary and the `{{canary}}` placeholder in probe payloads.
//!
//! A canary is a random marker that is unique per run and obviously not a secret: it
//! says what it is (`MESHPROOF-CANARY-...`), so finding it in a capture, a log or a
//! database can never leak anything real.

use std::fmt;

use rand::Rng;

/// The placeholder probes use for the canary.
pub const PLACEHOLDER: &str = "{{canary}}";

/// A unique marker for one run.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Canary(String);

impl Canary {
    /// A fresh random canary: `MESHPROOF-CANARY-` and 16 characters of `[a-z0-9]`.
    pub fn generate() -> Canary {
        const ALPHABET: &[u8] = b"abcdefghijklmnopqrstuvwxyz0123456789";
        let mut rng = rand::rng();
        let tail: String = (0..16)
            .map(|_| ALPHABET[rng.random_range(0..ALPHABET.len())] as char)
            .collect();
        Canary(format!("MESHPROOF-CANARY-{tail}"))
    }

    /// A fixed canary, for tests and recorded fixtures.
    pub fn fixed(text: &str) -> Canary {
        Canary(text.to_string())
    }

    /// The marker text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for Canary {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// Replaces every `{{canary}}` in `text`.
pub fn render(text: &str, canary: &Canary) -> String {
    text.replace(PLACEHOLDER, canary.as_str())
}

/// The placeholders in `text` other than `{{canary}}`, for the loader to reject.
pub fn unknown_placeholders(text: &str) -> Vec<String> {
    let mut found = Vec::new();
    let mut rest = text;
    while let Some(start) = rest.find("{{") {
        let after = &rest[start..];
        let Some(end) = after.find("}}") else { break };
        let placeholder = &after[..end + 2];
        if placeholder != PLACEHOLDER {
            found.push(placeholder.to_string());
        }
        rest = &after[end + 2..];
    }
    found
}

/// Every string (keys and values) of a JSON document, for placeholder checks.
pub(crate) fn json_strings<'a>(v: &'a serde_json::Value, out: &mut Vec<&'a str>) {
    match v {
        serde_json::Value::String(s) => out.push(s),
        serde_json::Value::Array(items) => items.iter().for_each(|i| json_strings(i, out)),
        serde_json::Value::Object(map) => {
            for (k, v) in map {
                out.push(k);
                json_strings(v, out);
            }
        }
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn canaries_are_unique_and_labelled() {
        let a = Canary::generate();
        let b = Canary::generate();
        assert_ne!(a, b);
        assert!(a.as_str().starts_with("MESHPROOF-CANARY-"));
        assert_eq!(a.as_str().len(), "MESHPROOF-CANARY-".len() + 16);
    }

    #[test]
    fn render_replaces_every_placeholder() {
        let c = Canary::fixed("MESHPROOF-CANARY-x");
        assert_eq!(
            render("a={{canary}}&b={{canary}}", &c),
            "a=MESHPROOF-CANARY-x&b=MESHPROOF-CANARY-x"
        );
    }

    #[test]
    fn unknown_placeholders_are_found() {
        assert_eq!(
            unknown_placeholders("{{canary}} {{ canary }} {{run}}"),
            vec!["{{ canary }}", "{{run}}"]
        );
        assert!(unknown_placeholders("no braces").is_empty());
    }
}
