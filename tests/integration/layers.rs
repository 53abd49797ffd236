//! The layering rules of `docs/architecture.md`, read off the sources: no import cycle among
//! the top-level modules of `src/`, and no library module imports `cli`.

use std::collections::{BTreeMap, BTreeSet};
use std::fs;
use std::path::Path;

type Graph = BTreeMap<String, BTreeSet<String>>;

/// Which top-level modules each top-level module names through `crate::` outside its tests.
fn graph() -> Graph {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut graph = Graph::new();
    let mut dirs = vec![src.clone()];
    while let Some(dir) = dirs.pop() {
        for entry in fs::read_dir(&dir).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                dirs.push(path);
                continue;
            }
            let rel = path.strip_prefix(&src).unwrap().to_str().unwrap();
            let top = rel.split('/').next().unwrap().trim_end_matches(".rs");
            if !rel.ends_with(".rs") || top == "main" || top == "lib" {
                continue;
            }
            let text = fs::read_to_string(&path).unwrap();
            let code = text.split("#[cfg(test)]").next().unwrap_or("");
            let named = graph.entry(top.to_string()).or_default();
            named.extend(crate_paths(code).into_iter().filter(|m| m != top));
        }
    }
    graph
}

/// The first segment of every `crate::` path, `use crate::{a, b::c}` groups included.
fn crate_paths(code: &str) -> Vec<String> {
    let ident = |s: &str| -> String {
        s.trim_start()
            .chars()
            .take_while(|c| c.is_alphanumeric() || *c == '_')
            .collect()
    };
    let mut out = Vec::new();
    for rest in code.split("crate::").skip(1) {
        match rest.strip_prefix('{') {
            Some(group) => {
                let group = group.split('}').next().unwrap_or("");
                out.extend(group.split(',').map(ident));
            }
            None => out.push(ident(rest)),
        }
    }
    out.retain(|m| !m.is_empty());
    out
}

/// A cycle reachable from `from`, as the path that closes it; `done` holds the modules
/// already known to reach none.
fn cycle(
    graph: &Graph,
    from: &str,
    path: &mut Vec<String>,
    done: &mut BTreeSet<String>,
) -> Option<Vec<String>> {
    if let Some(i) = path.iter().position(|m| m == from) {
        return Some(
            path[i..]
                .iter()
                .cloned()
                .chain([from.to_string()])
                .collect(),
        );
    }
    if done.contains(from) {
        return None;
    }
    path.push(from.to_string());
    for next in graph.get(from).into_iter().flatten() {
        if let Some(found) = cycle(graph, next, path, done) {
            return Some(found);
        }
    }
    path.pop();
    done.insert(from.to_string());
    None
}

#[test]
fn no_import_cycle_among_top_level_modules() {
    let graph = graph();
    assert!(graph.len() > 30, "read too few modules: {:?}", graph.keys());
    assert!(
        graph["propagate"].contains("hypervisors"),
        "the reader misses imports"
    );
    let mut done = BTreeSet::new();
    for module in graph.keys() {
        if let Some(found) = cycle(&graph, module, &mut Vec::new(), &mut done) {
            panic!("import cycle: {}", found.join(" -> "));
        }
    }
}

#[test]
fn no_library_module_imports_cli() {
    for (module, named) in graph() {
        assert!(
            module == "cli" || !named.contains("cli"),
            "{module} imports cli"
        );
    }
}

#[test]
fn the_reader_sees_grouped_imports() {
    let named = crate_paths("use crate::{atomic, epoch::now};\nlet x = crate::keys::info(k);");
    assert_eq!(named, ["atomic", "epoch", "keys"]);
}
