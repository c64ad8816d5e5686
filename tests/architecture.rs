//! The module graph stays one-way: read every `crate::` path in src/ and check each top-level
//! module depends only on the layers below it (docs/architecture.md draws them), so there is no
//! cycle. Also: the actor tree in docs/architecture.md lists exactly the registered parts.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

/// What each top-level module may use, lowest layer first. Anything else is a violation.
const ALLOWED: &[(&str, &[&str])] = &[
    // Libraries: no knowledge of actors, probes or the supervisor.
    ("config", &[]),
    ("ebpf", &[]),
    ("exposition", &[]),
    ("telemetry", &["config"]),
    ("containers", &["config", "exposition"]),
    ("events", &["config", "containers", "exposition"]),
    ("profiling", &["config", "containers", "exposition"]),
    ("autotracing", &[]),
    // The shared vocabulary.
    (
        "core",
        &[
            "config",
            "containers",
            "ebpf",
            "events",
            "exposition",
            "profiling",
            "telemetry",
        ],
    ),
    // Parts: through core only, never each other, never the supervisor.
    (
        "probes",
        &[
            "core",
            "config",
            "containers",
            "ebpf",
            "events",
            "exposition",
            "profiling",
            "autotracing",
            "telemetry",
        ],
    ),
    (
        "actors",
        &[
            "core",
            "config",
            "containers",
            "ebpf",
            "events",
            "exposition",
            "profiling",
            "autotracing",
            "telemetry",
        ],
    ),
    // The supervisor knows parts only through their registry entries.
    ("supervisor", &["core", "config", "telemetry", "exposition"]),
    // The one place that names every part.
    ("registry", &["actors", "probes", "core", "config"]),
    // Clients of a running agent.
    ("cli", &["core", "config", "events", "profiling"]),
];

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            rust_files(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

/// Top-level module names a source text refers to through `crate::` (use trees included).
fn crate_references(text: &str) -> BTreeSet<String> {
    let code: String = text
        .lines()
        .map(|line| match line.find("//") {
            Some(at) => &line[..at],
            None => line,
        })
        .collect::<Vec<_>>()
        .join("\n");
    let mut found = BTreeSet::new();
    let mut rest = code.as_str();
    while let Some(at) = rest.find("crate::") {
        let before = rest[..at].chars().last();
        rest = &rest[at + "crate::".len()..];
        // `$crate::` in a macro and `huatuo_bamai_crate::` are not this crate's paths from here.
        if before.is_some_and(|c| c == '$' || c.is_alphanumeric() || c == '_') {
            continue;
        }
        if let Some(group) = rest.strip_prefix('{') {
            // `crate::{a::x, b}`: the first segment of each item at depth one.
            let mut depth = 1;
            let mut item_start = true;
            let mut ident = String::new();
            for c in group.chars() {
                match c {
                    '{' => depth += 1,
                    '}' => {
                        depth -= 1;
                        if depth == 0 {
                            break;
                        }
                    }
                    ',' if depth == 1 => item_start = true,
                    c if depth == 1 && item_start && (c.is_alphanumeric() || c == '_') => {
                        ident.push(c)
                    }
                    _ if depth == 1 && item_start && !ident.is_empty() => {
                        found.insert(std::mem::take(&mut ident));
                        item_start = false;
                    }
                    _ => {}
                }
            }
            if !ident.is_empty() {
                found.insert(ident);
            }
        } else {
            let ident: String = rest
                .chars()
                .take_while(|c| c.is_alphanumeric() || *c == '_')
                .collect();
            // `crate::bpf_object!` and other exported macros live at the root.
            let is_macro = rest[ident.len()..].starts_with('!');
            if !ident.is_empty() && !is_macro {
                found.insert(ident);
            }
        }
    }
    found
}

fn module_graph() -> BTreeMap<String, BTreeMap<String, Vec<String>>> {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut files = Vec::new();
    rust_files(&src, &mut files);
    let mut graph: BTreeMap<String, BTreeMap<String, Vec<String>>> = BTreeMap::new();
    for file in files {
        let rel = file
            .strip_prefix(&src)
            .unwrap()
            .to_string_lossy()
            .to_string();
        let top = rel
            .split('/')
            .next()
            .unwrap()
            .trim_end_matches(".rs")
            .to_string();
        if top == "lib" || top == "main" {
            continue; // the program's entry points may use anything
        }
        let text = std::fs::read_to_string(&file).unwrap();
        for used in crate_references(&text) {
            if used != top {
                graph
                    .entry(top.clone())
                    .or_default()
                    .entry(used)
                    .or_default()
                    .push(rel.clone());
            }
        }
    }
    graph
}

#[test]
fn parser_reads_paths_and_use_trees() {
    let refs = crate_references(
        "use crate::core::{Probe, ProbeContext};\nuse crate::{config::{Section, Live}, ebpf};\n\
         // crate::supervisor in a comment\nlet x = crate::exposition::MetricSet::default();\n\
         crate::bpf_object!(\"x\"); $crate::config::Section",
    );
    let refs: Vec<&str> = refs.iter().map(String::as_str).collect();
    assert_eq!(refs, ["config", "core", "ebpf", "exposition"]);
}

#[test]
fn top_level_modules_depend_only_downwards() {
    let allowed: BTreeMap<&str, &[&str]> = ALLOWED.iter().copied().collect();
    let mut violations = Vec::new();
    for (module, uses) in module_graph() {
        let Some(may) = allowed.get(module.as_str()) else {
            violations.push(format!("`{module}` is not in ALLOWED (add it to a layer)"));
            continue;
        };
        for (used, files) in uses {
            if !may.contains(&used.as_str()) {
                violations.push(format!("{module} -> {used} (in {})", files.join(", ")));
            }
        }
    }
    assert!(
        violations.is_empty(),
        "dependencies against the layering:\n{}",
        violations.join("\n")
    );
}

#[test]
fn layering_has_no_cycle() {
    // Every allowed edge points to a module listed earlier, so the graph is acyclic.
    let order: Vec<&str> = ALLOWED.iter().map(|(m, _)| *m).collect();
    for (at, (module, uses)) in ALLOWED.iter().enumerate() {
        for used in uses.iter() {
            let pos = order.iter().position(|m| m == used);
            assert!(
                pos.is_some_and(|p| p < at),
                "{module} may use {used}, which is not below it"
            );
        }
    }
}

#[test]
fn architecture_doc_lists_every_registered_part() {
    let doc =
        std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("docs/architecture.md"))
            .unwrap();
    // The tree is the fenced block after "## Actor tree": one part per line, `├─ name (kind)`.
    let tree: String = doc
        .split("## Actor tree")
        .nth(1)
        .and_then(|rest| rest.split("```").nth(1))
        .expect("docs/architecture.md has an `## Actor tree` section with a fenced tree")
        .to_string();
    let mut in_doc: Vec<String> = tree
        .lines()
        .filter_map(|line| {
            let line = line.trim_start_matches(|c: char| " │├└─".contains(c));
            let (name, rest) = line.split_once(' ')?;
            (rest.starts_with("(service") || rest.starts_with("(probe")).then(|| name.to_string())
        })
        .collect();
    let mut registered: Vec<String> = huatuo_bamai::registry::parts()
        .iter()
        .map(|p| p.name.to_string())
        .collect();
    in_doc.sort();
    registered.sort();
    assert_eq!(
        in_doc, registered,
        "the actor tree in docs/architecture.md must list exactly the parts in src/registry.rs"
    );
}

#[test]
fn every_probe_section_is_under_probes_and_named_as_the_probe() {
    for part in huatuo_bamai::registry::parts() {
        if part.kind == huatuo_bamai::core::PartKind::Probe {
            let path = part.section.as_ref().map(|s| s.path);
            assert_eq!(path, Some(format!("probes.{}", part.name).as_str()));
        }
    }
}
