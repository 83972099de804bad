//! House rules that are cheaper to check as a test than to remember.
//!
//! Runs with `cargo test`: every Rust file opens with a `//!` doc, stays under the size
//! limit, and holds no stubs or should-panic tests.

#[cfg(test)]
mod tests {
    use std::path::{Path, PathBuf};

    /// The hard limit; the house style aims for ~500 lines.
    const MAX_LINES: usize = 650;

    fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
        for entry in std::fs::read_dir(dir).into_iter().flatten().flatten() {
            let path = entry.path();
            let name = entry.file_name();
            if path.is_dir() && name != "target" && !name.to_string_lossy().starts_with('.') {
                rust_files(&path, out);
            } else if path.extension().is_some_and(|e| e == "rs") {
                out.push(path);
            }
        }
    }

    fn sources() -> Vec<PathBuf> {
        let root = Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap();
        let mut files = Vec::new();
        for dir in ["harness", "xtask", "fuzz"] {
            rust_files(&root.join(dir), &mut files);
        }
        assert!(files.len() > 10, "found only {files:?}");
        files
    }

    #[test]
    fn every_file_opens_with_a_module_doc() {
        let missing: Vec<_> = sources()
            .into_iter()
            .filter(|f| {
                !std::fs::read_to_string(f)
                    .unwrap()
                    .trim_start()
                    .starts_with("//!")
            })
            .collect();
        assert!(
            missing.is_empty(),
            "files without a `//!` doc: {missing:#?}"
        );
    }

    #[test]
    fn files_stay_small() {
        let big: Vec<_> = sources()
            .into_iter()
            .map(|f| (std::fs::read_to_string(&f).unwrap().lines().count(), f))
            .filter(|(n, _)| *n > MAX_LINES)
            .collect();
        assert!(big.is_empty(), "files over {MAX_LINES} lines: {big:#?}");
    }

    #[test]
    fn no_stubs_or_should_panic() {
        let banned = [
            concat!("todo", "!("),
            concat!("unimplemented", "!("),
            concat!("#[should", "_panic"),
        ];
        let mut found = Vec::new();
        for f in sources() {
            let text = std::fs::read_to_string(&f).unwrap();
            for (n, line) in text.lines().enumerate() {
                if banned.iter().any(|b| line.contains(b)) {
                    found.push(format!("{}:{}: {}", f.display(), n + 1, line.trim()));
                }
            }
        }
        assert!(found.is_empty(), "{found:#?}");
    }
}
