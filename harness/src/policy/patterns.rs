//! Istio's authorization patterns: exact, prefix, suffix and presence matches
//! (`pilot/pkg/security/authz/matcher`), and path templates (`template.go` there, with
//! the behaviour `TestAuthz_PathTemplating` in `tests/integration/security/authz_test.go`
//! checks at 1.30.3: `{*}` is one non-empty segment, `{**}` any string, `/` included).

/// Istio string matching: exact, `prefix*`, `*suffix`, or `*` for any non-empty value.
pub fn string_match(pattern: &str, value: &str) -> bool {
    if pattern == "*" {
        return !value.is_empty();
    }
    if let Some(prefix) = pattern.strip_suffix('*') {
        return value.starts_with(prefix);
    }
    if let Some(suffix) = pattern.strip_prefix('*') {
        return value.ends_with(suffix);
    }
    pattern == value
}

/// `security.ContainsPathTemplate`.
pub fn is_path_template(p: &str) -> bool {
    p.contains("{*}") || p.contains("{**}")
}

/// Matches a path template: `{*}` takes one non-empty segment, `{**}` any string
/// (including `/` and nothing), every other character is literal.
pub fn template_match(template: &str, path: &str) -> bool {
    let Some(start) = template.find('{') else {
        return template == path;
    };
    let Some(rest) = path.strip_prefix(&template[..start]) else {
        return false;
    };
    let after = &template[start..];
    if let Some(tail) = after.strip_prefix("{**}") {
        return (0..=rest.len())
            .filter(|i| rest.is_char_boundary(*i))
            .any(|i| template_match(tail, &rest[i..]));
    }
    if let Some(tail) = after.strip_prefix("{*}") {
        let segment = rest.find('/').unwrap_or(rest.len());
        return (1..=segment)
            .filter(|i| rest.is_char_boundary(*i))
            .any(|i| template_match(tail, &rest[i..]));
    }
    // A lone `{` is rejected at admission; compare it literally.
    rest.strip_prefix('{')
        .is_some_and(|r| template_match(&after[1..], r))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The cases of `TestAuthz_PathTemplating` (Istio 1.30.3), for its three templates.
    #[test]
    fn path_templates_as_istio_tests_them() {
        let table = [
            ("/allow/admin/{**}", "/allow/admin/", true),
            // `{**}` last needs the trailing slash.
            ("/allow/admin/{**}", "/allow/admin", false),
            ("/allow/admin/{**}", "/allow/user/", false),
            ("/allow/admin/{**}", "/allow", false),
            ("/allow/admin/{**}", "/allow/admin/temp", true),
            ("/allow/admin/{**}", "/allow/admin/temp.txt", true),
            ("/allow/admin/{**}", "/allow/admin/foo/temp.txt", true),
            ("/foo/{*}/bar/{**}", "/foo/buzz/bar/bat.txt", true),
            ("/foo/{*}/bar/{**}", "/foo/buzz/bar/bat.temp.txt", true),
            ("/foo/{*}/bar/{**}", "/foo/buzz/bar/bat/fuzz.txt", true),
            ("/foo/{*}/bar/{**}", "/foo/bar/bat.txt", false),
            ("/foo/{*}/bar/{**}", "/foo//bar/bat.txt", false),
            ("/foo/{*}/bar/{**}", "/foo/buzz/bar/bat", true),
            ("/store/{**}/cart", "/store//cart", true),
            ("/store/{**}/cart", "/store/cart", false),
            ("/store/{**}/cart", "/store/foo/cart", true),
            ("/store/{**}/cart", "/store/foo/bar/cart", true),
        ];
        for (template, path, want) in table {
            assert!(is_path_template(template));
            assert_eq!(template_match(template, path), want, "{template} {path}");
        }
    }

    #[test]
    fn string_patterns() {
        assert!(string_match("*", "x") && !string_match("*", ""));
        assert!(string_match("/api/*", "/api/v1") && !string_match("/api/*", "/ap"));
        assert!(string_match("*.txt", "a.txt") && string_match("GET", "GET"));
    }
}
