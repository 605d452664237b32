//! The node crate's import direction, checked on its sources: each top-level module may
//! import only the modules this table allows it. What it says in words: the pure modules
//! (`erasure`, `format`, `placement`) do no I/O and import no engine; `storage` never
//! imports the peer transport or the control plane; `rpc` carries drive calls and knows no
//! subsystem above storage; only `cluster` and the entry points (`admin`, `s3`, `server`)
//! see the cluster. Test code (test modules and test-only files) may reach anywhere.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// Top-level module → the modules it may import (`crate::<module>`).
const ALLOWED: &[(&str, &[&str])] = &[
    ("erasure", &[]),
    ("format", &[]),
    ("clock", &[]),
    ("error", &["format"]),
    ("metrics", &[]),
    ("tls", &[]),
    ("placement", &["format", "erasure"]),
    ("lifecycle", &["format"]),
    ("policy", &[]),
    ("iam", &["storage", "policy", "format", "error", "clock"]),
    ("storage", &["placement", "lifecycle", "format", "erasure", "error", "metrics", "clock"]),
    ("rpc", &["storage", "placement", "format", "erasure", "error", "metrics", "clock"]),
    ("cluster", &["rpc", "storage", "placement", "format", "erasure", "error", "metrics", "clock"]),
    ("s3", &["iam", "policy", "storage", "placement", "format", "error", "metrics", "clock"]),
    ("admin", &["iam", "policy", "cluster", "storage", "placement", "format", "error", "metrics", "clock"]),
    (
        "server",
        &["admin", "s3", "iam", "cluster", "rpc", "storage", "placement", "format", "error", "metrics", "clock", "tls"],
    ),
];

fn sources(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            sources(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

/// Files that are test code as a whole: declared `#[cfg(test)] mod name;` by their parent.
fn test_only_files(files: &[PathBuf]) -> Vec<PathBuf> {
    let mut out = Vec::new();
    for file in files {
        let text = std::fs::read_to_string(file).unwrap();
        let lines: Vec<&str> = text.lines().collect();
        let dir = if file.file_name().is_some_and(|n| n == "mod.rs" || n == "lib.rs") {
            file.parent().unwrap().to_path_buf()
        } else {
            file.with_extension("")
        };
        for pair in lines.windows(2) {
            if pair[0].trim() == "#[cfg(test)]"
                && let Some(name) = pair[1].trim().trim_start_matches("pub(crate) ").strip_prefix("mod ")
                && let Some(name) = name.strip_suffix(';')
            {
                out.push(dir.join(format!("{name}.rs")));
                out.push(dir.join(name).join("mod.rs"));
            }
        }
    }
    out
}

/// `crate::<module>` paths the non-test code of `text` names (a file's test module, by
/// convention and by clippy's `items_after_test_module`, is its last item).
fn imports(text: &str) -> Vec<String> {
    let code = text.split("#[cfg(test)]\nmod tests").next().unwrap_or_default();
    let mut out = Vec::new();
    for (at, _) in code.match_indices("crate::") {
        let before = code[..at].chars().next_back();
        if before.is_some_and(|c| c.is_alphanumeric() || c == '_') {
            continue; // `buckets_crate::…` or similar, not this crate
        }
        let name: String = code[at + 7..].chars().take_while(|c| c.is_ascii_alphanumeric() || *c == '_').collect();
        out.push(name);
    }
    out
}

/// Every import against the table, as `file: module → module`.
fn violations(root: &Path) -> Vec<String> {
    let allowed: BTreeMap<&str, &[&str]> = ALLOWED.iter().copied().collect();
    let mut files = Vec::new();
    sources(root, &mut files);
    let tests = test_only_files(&files);
    let mut out = Vec::new();
    for file in files.iter().filter(|f| !tests.contains(f)) {
        let relative = file.strip_prefix(root).unwrap();
        let module =
            relative.components().next().unwrap().as_os_str().to_string_lossy().trim_end_matches(".rs").to_string();
        if matches!(module.as_str(), "lib" | "main" | "bin" | "layering") {
            continue;
        }
        let Some(may) = allowed.get(module.as_str()) else {
            out.push(format!("{}: module {module} is not in the table", relative.display()));
            continue;
        };
        for target in imports(&std::fs::read_to_string(file).unwrap()) {
            if target != module && !may.contains(&target.as_str()) {
                out.push(format!("{}: {module} → {target}", relative.display()));
            }
        }
    }
    out.sort();
    out.dedup();
    out
}

#[test]
fn modules_import_only_in_the_stated_direction() {
    let root =
        PathBuf::from(std::env::var("CARGO_MANIFEST_DIR").unwrap_or_else(|_| env!("CARGO_MANIFEST_DIR").to_string()))
            .join("src");
    let found = violations(&root);
    assert!(found.is_empty(), "imports against the direction in docs/ARCHITECTURE.md:\n{}", found.join("\n"));
}

/// The check fails when a module imports against the direction (a storage file that
/// reached into the control plane, in a copy of a few sources).
#[test]
fn an_import_against_the_direction_is_found() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    std::fs::create_dir_all(root.join("storage")).unwrap();
    std::fs::write(root.join("storage/mod.rs"), "#[cfg(test)]\nmod testing;\nuse crate::format::X;\n").unwrap();
    std::fs::write(root.join("storage/testing.rs"), "use crate::cluster::Anything;\n").unwrap();
    std::fs::write(
        root.join("format.rs"),
        "//! no imports\n#[cfg(test)]\nmod tests {\n    use crate::storage::X;\n}\n",
    )
    .unwrap();
    assert!(violations(root).is_empty(), "test code may reach anywhere: {:?}", violations(root));
    std::fs::write(root.join("storage/set.rs"), "fn f() { crate::cluster::topology::change(); }\n").unwrap();
    assert_eq!(violations(root), ["storage/set.rs: storage → cluster"]);
}
