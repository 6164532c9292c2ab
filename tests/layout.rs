//! The code's layout, checked: no source file past the house limit of 600 lines, and
//! no two modules of a crate that import each other, directly or around a circle (at
//! every depth: `process` and `publish`, but also `process::writer` and
//! `process::coordinator`). A circle is where a layer stops being one; this test names
//! it when a change draws one.
//!
//! Imports are read from the source text: every `crate::a::b` and `super::a` path
//! outside comments and `#[cfg(test)] mod tests`. Coarse, and enough for our code:
//! we write paths, not glob re-exports, between modules.

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

/// The code of a file that counts for imports: no comments, no unit-test module.
fn code(text: &str) -> String {
    let text = text
        .split("#[cfg(test)]\nmod tests")
        .next()
        .unwrap_or_default();
    text.lines()
        .filter(|line| !line.trim_start().starts_with("//"))
        .collect::<Vec<_>>()
        .join("\n")
}

/// Every `prefix` path's segments in `code`: `crate::store::kafka` → `["store", "kafka"]`.
fn paths_after(code: &str, prefix: &str) -> Vec<Vec<String>> {
    let mut found = Vec::new();
    for (at, _) in code.match_indices(prefix) {
        let before = code[..at].chars().next_back();
        if before.is_some_and(|c| c.is_alphanumeric() || c == '_') {
            continue;
        }
        let mut segments = Vec::new();
        for segment in code[at + prefix.len()..].split("::") {
            let name: String = segment
                .chars()
                .take_while(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || *c == '_')
                .collect();
            if name.is_empty() {
                break;
            }
            let whole = name.len() == segment.len();
            segments.push(name);
            if !whole {
                break;
            }
        }
        if !segments.is_empty() {
            found.push(segments);
        }
    }
    found
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
        let modules: BTreeMap<Vec<String>, String> = files
            .iter()
            .filter_map(|file| Some((module_of(&root, file), std::fs::read_to_string(file).ok()?)))
            .collect();
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
    ]
    .into_iter()
    .collect();
    assert_eq!(circles(&imports(&modules, 1)), [["a", "b", "c"]]);
    let acyclic: BTreeMap<Vec<String>, String> = modules
        .into_iter()
        .filter(|(module, _)| module != &["c"])
        .collect();
    assert!(circles(&imports(&acyclic, 1)).is_empty());
}
