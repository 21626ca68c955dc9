//! The core's imports run one way: no module imports from one that imports
//! it, at two levels.
//!
//! - The top-level modules (`backend`, `model`, `train`, …) form a DAG.
//! - Within a folder, the files form a DAG too, and the folder's `mod.rs`
//!   counts as one of them: a child file reads its siblings directly, never
//!   its parent's re-exports or items.
//!
//! Every `crate::…`, `super::…` and `self::…` path in `src/` (comments and
//! `#[cfg(test)]` files aside) is resolved to the file that defines its
//! module; names the crate root re-exports (`crate::Model`) resolve to
//! where they are defined. The test prints the cycle it finds.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

/// Module path (e.g. `["model", "tokens"]`) of every source file.
fn modules(src: &Path) -> BTreeMap<Vec<String>, PathBuf> {
    let mut out = BTreeMap::new();
    let mut stack = vec![src.to_path_buf()];
    while let Some(dir) = stack.pop() {
        for entry in std::fs::read_dir(&dir).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                stack.push(path);
            } else if path.extension().is_some_and(|e| e == "rs") {
                let rel = path.strip_prefix(src).unwrap().with_extension("");
                let mut parts: Vec<String> = rel
                    .iter()
                    .map(|p| p.to_string_lossy().into_owned())
                    .collect();
                if parts.last().is_some_and(|p| p == "mod" || p == "lib") {
                    parts.pop();
                }
                out.insert(parts, path);
            }
        }
    }
    out
}

/// Code without comments (doc links name modules without importing them).
fn code(path: &Path) -> String {
    std::fs::read_to_string(path)
        .unwrap()
        .lines()
        .map(|l| match l.find("//") {
            Some(i) if !l[..i].contains('"') => &l[..i],
            _ => l,
        })
        .collect::<Vec<_>>()
        .join("\n")
}

/// Expands a `use` tree (`a::{b, c::{d, e}}`) into its paths.
fn expand(tree: &str) -> Vec<String> {
    let tree = tree.trim();
    let Some(open) = tree.find('{') else {
        let path = tree.split(" as ").next().unwrap_or(tree);
        return vec![path.replace(' ', "")];
    };
    let prefix = tree[..open].replace(' ', "");
    let close = tree.rfind('}').unwrap_or(tree.len());
    let inner = &tree[open + 1..close];
    let (mut depth, mut start, mut parts) = (0, 0, Vec::new());
    for (i, c) in inner.char_indices() {
        match c {
            '{' => depth += 1,
            '}' => depth -= 1,
            ',' if depth == 0 => {
                parts.push(&inner[start..i]);
                start = i + 1;
            }
            _ => {}
        }
    }
    parts.push(&inner[start..]);
    parts
        .into_iter()
        .filter(|p| !p.trim().is_empty())
        .flat_map(expand)
        .map(|p| {
            if p == "self" {
                prefix.trim_end_matches("::").to_string()
            } else {
                format!("{prefix}{p}")
            }
        })
        .collect()
}

/// Every path that starts at `crate`, `super` or `self` in `text`.
fn paths(text: &str) -> Vec<String> {
    let mut found = Vec::new();
    // `use` items (also `pub use`), braces and all.
    let mut rest = text;
    while let Some(i) = rest.find("use ") {
        let line_start = rest[..i].rfind('\n').map_or(0, |n| n + 1);
        let head = rest[line_start..i].trim();
        rest = &rest[i + 4..];
        let is_item = head.is_empty() || head == "pub" || head.starts_with("pub(");
        if !is_item {
            continue;
        }
        let end = rest.find(';').unwrap_or(rest.len());
        let tree = rest[..end].split_whitespace().collect::<Vec<_>>().join(" ");
        if tree.matches('{').count() == tree.matches('}').count() {
            found.extend(expand(&tree));
        }
        rest = &rest[end..];
    }
    // Paths written inline: `crate::backend::memory::check(…)`.
    for root in ["crate::", "super::"] {
        let mut at = 0;
        while let Some(i) = text[at..].find(root) {
            let start = at + i;
            let end = text[start..]
                .find(|c: char| !(c.is_alphanumeric() || c == '_' || c == ':'))
                .map_or(text.len(), |e| start + e);
            found.push(text[start..end].trim_end_matches(':').to_string());
            at = end.max(start + 1);
        }
    }
    found
}

/// The module (a key of `mods`) that `path`, written in module `from`, names.
fn resolve(
    path: &str,
    from: &[String],
    mods: &BTreeMap<Vec<String>, PathBuf>,
    root_names: &BTreeMap<String, Vec<String>>,
) -> Option<Vec<String>> {
    let mut segments: Vec<&str> = path.split("::").filter(|s| !s.is_empty()).collect();
    let mut base: Vec<String> = match segments.first().copied() {
        Some("crate") => Vec::new(),
        Some("super") => from[..from.len().checked_sub(1)?].to_vec(),
        Some("self") => from.to_vec(),
        _ => return None,
    };
    segments.remove(0);
    while segments.first() == Some(&"super") {
        base.pop();
        segments.remove(0);
    }
    if base.is_empty() {
        if let Some(module) = segments.first().and_then(|s| root_names.get(*s)) {
            return Some(module.clone());
        }
    }
    // The longest prefix that is a file.
    let mut best = base.clone();
    let mut current = base;
    for s in segments {
        current.push(s.to_string());
        if mods.contains_key(&current) {
            best = current.clone();
        } else {
            break;
        }
    }
    Some(best)
}

/// Names the crate root re-exports, with the module that defines them.
fn root_names(lib: &str, mods: &BTreeMap<Vec<String>, PathBuf>) -> BTreeMap<String, Vec<String>> {
    let mut names = BTreeMap::new();
    for path in paths(lib) {
        let full = path.trim_start_matches("crate::");
        let mut parts: Vec<String> = full.split("::").map(str::to_string).collect();
        let name = parts.pop().unwrap_or_default();
        while !parts.is_empty() && !mods.contains_key(&parts) {
            parts.pop();
        }
        if !parts.is_empty() {
            names.insert(name, parts);
        }
    }
    names
}

fn find_cycle(edges: &BTreeMap<String, BTreeSet<String>>) -> Option<Vec<String>> {
    fn visit(
        node: &str,
        edges: &BTreeMap<String, BTreeSet<String>>,
        state: &mut BTreeMap<String, u8>,
        stack: &mut Vec<String>,
    ) -> Option<Vec<String>> {
        state.insert(node.to_string(), 1);
        stack.push(node.to_string());
        for next in edges.get(node).into_iter().flatten() {
            match state.get(next.as_str()) {
                Some(1) => {
                    let from = stack.iter().position(|n| n == next).unwrap();
                    let mut cycle = stack[from..].to_vec();
                    cycle.push(next.clone());
                    return Some(cycle);
                }
                Some(_) => {}
                None => {
                    if let Some(c) = visit(next, edges, state, stack) {
                        return Some(c);
                    }
                }
            }
        }
        stack.pop();
        state.insert(node.to_string(), 2);
        None
    }
    let mut state = BTreeMap::new();
    for node in edges.keys() {
        if !state.contains_key(node.as_str()) {
            if let Some(c) = visit(node, edges, &mut state, &mut Vec::new()) {
                return Some(c);
            }
        }
    }
    None
}

#[test]
fn the_core_imports_run_one_way() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mods = modules(&src);
    let names = root_names(&code(&src.join("lib.rs")), &mods);
    let (mut top, mut files) = (BTreeMap::new(), BTreeMap::new());
    for (module, path) in &mods {
        let is_test = module.last().is_some_and(|m| m == "tests");
        if module.is_empty() || is_test {
            continue;
        }
        let text = code(path);
        // A module's own `#[cfg(test)] mod tests { … }` may import freely.
        let text = text.split("#[cfg(test)]\nmod tests {").next().unwrap();
        for p in paths(text) {
            let Some(target) = resolve(&p, module, &mods, &names) else {
                continue;
            };
            if target.is_empty() || target == *module {
                continue;
            }
            if target[0] != module[0] {
                top.entry(module[0].clone())
                    .or_insert_with(BTreeSet::new)
                    .insert(target[0].clone());
            } else {
                files
                    .entry(module.join("::"))
                    .or_insert_with(BTreeSet::new)
                    .insert(target.join("::"));
            }
        }
    }
    assert!(top.len() >= 8, "too few modules seen: {top:?}");
    if let Some(cycle) = find_cycle(&top) {
        panic!("top-level modules import each other: {}", cycle.join(" → "));
    }
    if let Some(cycle) = find_cycle(&files) {
        panic!(
            "files of one folder import each other: {}",
            cycle.join(" → ")
        );
    }
    // And the order the crate's docs state holds.
    let layers = [
        "cli", "train", "domain", "plot", "infer", "model", "backend", "signal", "io", "error",
    ];
    for (module, targets) in &top {
        let rank = |m: &str| layers.iter().position(|l| *l == m);
        for target in targets {
            assert!(
                rank(module) < rank(target),
                "`{module}` imports `{target}`, a layer above it ({layers:?}, top first)"
            );
        }
    }
}

#[test]
fn the_checker_finds_a_cycle_and_reads_use_trees() {
    let mut edges = BTreeMap::new();
    edges.insert("a".to_string(), BTreeSet::from(["b".to_string()]));
    edges.insert("b".to_string(), BTreeSet::from(["a".to_string()]));
    assert!(find_cycle(&edges).is_some());
    edges.get_mut("b").unwrap().clear();
    assert!(find_cycle(&edges).is_none());
    assert_eq!(
        expand("crate::{a::{b,c},d::{self,x},e as f}"),
        [
            "crate::a::b",
            "crate::a::c",
            "crate::d",
            "crate::d::x",
            "crate::e"
        ]
    );
}
