//! Indexes where each Rust function of the extension starts, so an ERROR's
//! LOCATION can name the function that raised it (`error::function_at`):
//! Rust has no `__func__`, and `#[track_caller]` gives only file and line.
//! A line scan, not a parser: a function nested in another names the rest
//! of the outer one, and a trait method goes by its own name alone.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};

fn sources(dir: &Path, out: &mut Vec<PathBuf>) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for entry in entries.flatten() {
        let path = entry.path();
        if path.is_dir() {
            sources(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

/// The name declared by a line that starts a function: `fn name`, after
/// any of `pub`, `pub(crate)`, `const`, `async`, `unsafe`, `extern "C"`.
fn declared_function(line: &str) -> Option<&str> {
    let mut rest = line.trim_start();
    // `#[inline] fn f`: attributes on the same line.
    while rest.starts_with("#[") {
        rest = rest.split_once("] ").map_or("", |(_, r)| r).trim_start();
    }
    loop {
        let before = rest;
        for prefix in [
            "pub ",
            "const ",
            "async ",
            "unsafe ",
            "extern \"C\" ",
            "extern \"C-unwind\" ",
        ] {
            rest = rest.strip_prefix(prefix).unwrap_or(rest);
        }
        if let Some(scoped) = rest.strip_prefix("pub(") {
            rest = scoped.split_once(") ").map_or(rest, |(_, r)| r);
        }
        if rest == before {
            break;
        }
    }
    let name = rest.strip_prefix("fn ")?;
    let end = name
        .find(|c: char| !(c.is_alphanumeric() || c == '_'))
        .unwrap_or(name.len());
    (end > 0).then_some(&name[..end])
}

fn main() {
    let root = PathBuf::from(std::env::var("CARGO_MANIFEST_DIR").expect("cargo sets it"));
    let mut files = Vec::new();
    sources(&root.join("src"), &mut files);
    let mut starts = Vec::new();
    for file in &files {
        let relative = file.strip_prefix(&root).expect("under the crate");
        let text = std::fs::read_to_string(file).unwrap_or_default();
        for (i, line) in text.lines().enumerate() {
            if let Some(name) = declared_function(line) {
                starts.push((relative.display().to_string(), i + 1, name.to_string()));
            }
        }
    }
    // In the order the lookup searches: by file name as text, then line.
    starts.sort();
    let mut table = String::from("&[\n");
    for (file, line, name) in &starts {
        writeln!(table, "    ({file:?}, {line}, {name:?}),").expect("writing to a String");
    }
    table.push(']');
    let out = PathBuf::from(std::env::var("OUT_DIR").expect("cargo sets it"));
    std::fs::write(out.join("functions.rs"), table).expect("OUT_DIR is writable");
    println!("cargo:rerun-if-changed=src");
    println!("cargo:rerun-if-changed=build.rs");
}
