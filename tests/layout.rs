//! The code's layout, checked: no source file past the house limit of 600 lines, and
//! no two modules of a crate that import each other, directly or around a circle (at
//! the depths our modules have, 1 to 3: `process` and `publish`, but also
//! `process::writer` and `process::coordinator`). A circle is where a layer stops being
//! one; this test names it when a change draws one.
//!
//! Imports are read from the source text: every `crate::a::b` and `super::a` path, and
//! each path of a `crate::{…}` group, outside comments and unit-test modules. Coarse,
//! and enough for our code: we write paths, not glob re-exports, between modules.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

const MAX_LINES: usize = 600;

/// Each crate's source root, from the workspace root.
const CRATES: [&str; 4] = ["src", "actors/src", "chaos/src", "bench/src"];

fn workspace() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for entry in entries.flatten() {
        let path = entry.path();
        if path.is_dir() {
            rust_files(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

/// A file's module path inside its crate: `process/writer.rs` → `["process", "writer"]`.
fn module_of(root: &Path, file: &Path) -> Vec<String> {
    let relative = file.strip_prefix(root).unwrap_or(file).with_extension("");
    let mut parts: Vec<String> = relative
        .components()
        .map(|c| c.as_os_str().to_string_lossy().into_owned())
        .collect();
    if matches!(
        parts.last().map(String::as_str),
        Some("mod" | "lib" | "main")
    ) {
        parts.pop();
    }
    parts
}

/// The code of a file that counts for imports: no comments, no braced unit-test module
/// (`#[cfg(test)] mod tests { … }`, wherever it sits in the file).
fn code(text: &str) -> String {
    let mut text = text.to_owned();
    while let Some(start) = text.find("#[cfg(test)]\nmod tests {") {
        let open = start + "#[cfg(test)]\nmod tests ".len();
        let end = closing_brace(&text, open).unwrap_or(text.len());
        text.replace_range(start..end, "");
    }
    text.lines()
        .filter(|line| !line.trim_start().starts_with("//"))
        .collect::<Vec<_>>()
        .join("\n")
}

/// The index just past the brace that closes the one at `open`, skipping string and
/// character literals.
fn closing_brace(text: &str, open: usize) -> Option<usize> {
    let bytes = text.as_bytes();
    let (mut depth, mut at) = (0_usize, open);
    while at < bytes.len() {
        match bytes[at] {
            b'"' => {
                at += 1;
                while at < bytes.len() && bytes[at] != b'"' {
                    at += if bytes[at] == b'\\' { 2 } else { 1 };
                }
            }
            b'\'' if bytes.get(at + 2) == Some(&b'\'') => at += 2,
            b'{' => depth += 1,
            b'}' => {
                depth -= 1;
                if depth == 0 {
                    return Some(at + 1);
                }
            }
            _ => {}
        }
        at += 1;
    }
    None
}

/// Every `prefix` path's segments in `code`: `crate::store::kafka` → `["store", "kafka"]`;
/// a group names each of its paths: `crate::{store, model::Digest}` → `["store"]`,
/// `["model", "Digest"…]` (segments stop at the first that is not a module-like name).
fn paths_after(code: &str, prefix: &str) -> Vec<Vec<String>> {
    let mut found = Vec::new();
    for (at, _) in code.match_indices(prefix) {
        let before = code[..at].chars().next_back();
        if before.is_some_and(|c| c.is_alphanumeric() || c == '_') {
            continue;
        }
        let rest = &code[at + prefix.len()..];
        if rest.starts_with('{') {
            let end = closing_brace(rest, 0).unwrap_or(rest.len());
            let group = &rest[1..end.saturating_sub(1)];
            found.extend(group.split(',').map(segments).filter(|s| !s.is_empty()));
        } else {
            let path = segments(rest);
            if !path.is_empty() {
                found.push(path);
            }
        }
    }
    found
}

/// The module-like names a path starts with: `store::kafka::Config;` → `["store", "kafka"]`.
fn segments(path: &str) -> Vec<String> {
    let mut names = Vec::new();
    for segment in path.trim_start().split("::") {
        let name: String = segment
            .chars()
            .take_while(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || *c == '_')
            .collect();
        if name.is_empty() {
            break;
        }
        let whole = name.len() == segment.len();
        names.push(name);
        if !whole {
            break;
        }
    }
    names
}

/// Module → modules it imports, with modules cut to `depth` segments.
fn imports(
    modules: &BTreeMap<Vec<String>, String>,
    depth: usize,
) -> BTreeMap<Vec<String>, BTreeSet<Vec<String>>> {
    let cut = |path: &[String]| path[..path.len().min(depth)].to_vec();
    let mut graph: BTreeMap<Vec<String>, BTreeSet<Vec<String>>> = BTreeMap::new();
    for (module, text) in modules {
        let from = cut(module);
        let code = code(text);
        let mut targets = paths_after(&code, "crate::");
        let parent = &module[..module.len().saturating_sub(1)];
        targets.extend(paths_after(&code, "super::").into_iter().map(|path| {
            let mut full = parent.to_vec();
            full.extend(path);
            full
        }));
        for target in targets {
            // The longest prefix of the path that is a module of the crate.
            let Some(known) = (1..=target.len())
                .rev()
                .map(|n| target[..n].to_vec())
                .find(|prefix| modules.contains_key(prefix))
            else {
                continue;
            };
            let to = cut(&known);
            if to != from && !from.starts_with(&to) && !to.starts_with(&from) {
                graph.entry(from.clone()).or_default().insert(to);
            }
        }
    }
    graph
}

/// The circles of `graph`: its strongly connected components of more than one module
/// (Tarjan's algorithm).
fn circles(graph: &BTreeMap<Vec<String>, BTreeSet<Vec<String>>>) -> Vec<Vec<String>> {
    struct Walk<'g> {
        graph: &'g BTreeMap<Vec<String>, BTreeSet<Vec<String>>>,
        index: BTreeMap<&'g [String], usize>,
        low: BTreeMap<&'g [String], usize>,
        stack: Vec<&'g [String]>,
        found: Vec<Vec<String>>,
    }
    impl<'g> Walk<'g> {
        fn visit(&mut self, node: &'g [String]) {
            let n = self.index.len();
            self.index.insert(node, n);
            self.low.insert(node, n);
            self.stack.push(node);
            for next in self.graph.get(node).into_iter().flatten() {
                if !self.index.contains_key(next.as_slice()) {
                    self.visit(next);
                    let low = self.low[next.as_slice()].min(self.low[node]);
                    self.low.insert(node, low);
                } else if self.stack.contains(&next.as_slice()) {
                    let low = self.index[next.as_slice()].min(self.low[node]);
                    self.low.insert(node, low);
                }
            }
            if self.low[node] == self.index[node] {
                let mut component = Vec::new();
                while let Some(member) = self.stack.pop() {
                    component.push(member.join("::"));
                    if member == node {
                        break;
                    }
                }
                if component.len() > 1 {
                    component.sort();
                    self.found.push(component);
                }
            }
        }
    }
    let mut walk = Walk {
        graph,
        index: BTreeMap::new(),
        low: BTreeMap::new(),
        stack: Vec::new(),
        found: Vec::new(),
    };
    let nodes: BTreeSet<&[String]> = graph
        .iter()
        .flat_map(|(from, to)| std::iter::once(from.as_slice()).chain(to.iter().map(Vec::as_slice)))
        .collect();
    for node in nodes {
        if !walk.index.contains_key(node) {
            walk.visit(node);
        }
    }
    walk.found
}

#[test]
fn no_source_file_is_longer_than_the_limit() {
    let mut files = Vec::new();
    for root in CRATES.iter().chain(&["tests"]) {
        rust_files(&workspace().join(root), &mut files);
    }
    assert!(files.len() > 100, "found only {} source files", files.len());
    let long: Vec<String> = files
        .iter()
        .filter_map(|file| {
            let lines = std::fs::read_to_string(file).ok()?.lines().count();
            (lines > MAX_LINES).then(|| format!("{} ({lines} lines)", file.display()))
        })
        .collect();
    assert!(long.is_empty(), "longer than {MAX_LINES} lines: {long:#?}");
}

#[test]
fn no_modules_import_each_other_in_a_circle() {
    let mut found = Vec::new();
    for name in CRATES {
        let root = workspace().join(name);
        let mut files = Vec::new();
        rust_files(&root, &mut files);
        // Unit-test modules in files of their own (`supervisor/tests.rs`) are tests too.
        let modules: BTreeMap<Vec<String>, String> = files
            .iter()
            .map(|file| (module_of(&root, file), file))
            .filter(|(module, _)| module.last().is_none_or(|name| name != "tests"))
            .filter_map(|(module, file)| Some((module, std::fs::read_to_string(file).ok()?)))
            .collect();
        assert!(
            modules.len() >= 5,
            "{name}: only {} modules found",
            modules.len()
        );
        for depth in 1..=3 {
            for circle in circles(&imports(&modules, depth)) {
                found.push(format!("{name}: {}", circle.join(" ⇄ ")));
            }
        }
    }
    found.dedup();
    assert!(
        found.is_empty(),
        "modules importing each other in a circle: {found:#?}"
    );
}

#[test]
fn the_checker_sees_a_circle() {
    let modules: BTreeMap<Vec<String>, String> = [
        (vec!["a".to_owned()], "use crate::b::Thing;".to_owned()),
        (vec!["b".to_owned()], "use super::c::Other;".to_owned()),
        (vec!["c".to_owned()], "fn f() { crate::a::go() }".to_owned()),
        (
            vec!["d".to_owned()],
            "// crate::a is only named in a comment".to_owned(),
        ),
        (
            vec!["e".to_owned()],
            "use crate::{f, b::Thing};\n#[cfg(test)]\nmod tests {\n    use crate::g;\n}\n"
                .to_owned(),
        ),
        (vec!["f".to_owned()], "use crate::e::Other;".to_owned()),
        (vec!["g".to_owned()], "use crate::e::Third;".to_owned()),
    ]
    .into_iter()
    .collect();
    // e ⇄ f through a group import; e ⇄ g only through e's unit tests, which do not count.
    let mut found = circles(&imports(&modules, 1));
    found.sort();
    assert_eq!(found, [vec!["a", "b", "c"], vec!["e", "f"]]);
    let acyclic: BTreeMap<Vec<String>, String> = modules
        .into_iter()
        .filter(|(module, _)| module != &["c"] && module != &["f"])
        .collect();
    assert!(circles(&imports(&acyclic, 1)).is_empty());
}
