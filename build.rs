//! Compiles every BPF C source (`src/probes/*/*.bpf.c`, `src/ebpf/*.bpf.c`) with clang into `OUT_DIR/<name>.bpf.o`,
//! stripped of DWARF but keeping `.BTF`/`.BTF.ext` for CO-RE. A probe never writes its own build logic.

use std::path::{Path, PathBuf};
use std::process::{exit, Command};

const INSTALL_HINT: &str =
    "Install the BPF toolchain with `apt-get install -y clang-19 llvm-19 libbpf-dev` \
(or run `make deps`), or point BPF_CLANG at a clang that has the BPF target.";

fn fail(lines: &[String]) -> ! {
    for line in lines {
        println!("cargo::error={line}");
    }
    exit(1);
}

fn find_clang() -> String {
    if let Ok(explicit) = std::env::var("BPF_CLANG") {
        if Command::new(&explicit).arg("--version").output().is_err() {
            fail(&[format!(
                "BPF compiler `{explicit}` (from BPF_CLANG) not found. {INSTALL_HINT}"
            )]);
        }
        return explicit;
    }
    for candidate in ["clang-19", "clang"] {
        if Command::new(candidate).arg("--version").output().is_ok() {
            return candidate.to_string();
        }
    }
    fail(&[
        "no clang found to compile the BPF C sources under src/probes/.".to_string(),
        INSTALL_HINT.to_string(),
    ])
}

fn find_strip() -> Option<String> {
    ["llvm-strip-19", "llvm-strip"]
        .into_iter()
        .find(|c| Command::new(c).arg("--version").output().is_ok())
        .map(str::to_string)
}

fn is_bpf_source(path: &Path) -> bool {
    path.to_string_lossy().ends_with(".bpf.c")
}

/// `src/ebpf/*.bpf.c` (shared/self-test objects) and `src/probes/*/*.bpf.c`.
fn bpf_sources(include_dir: &Path, probes_dir: &Path) -> Vec<PathBuf> {
    let mut sources: Vec<PathBuf> = std::fs::read_dir(include_dir)
        .into_iter()
        .flatten()
        .flatten()
        .map(|e| e.path())
        .filter(|p| is_bpf_source(p))
        .collect();
    let Ok(entries) = std::fs::read_dir(probes_dir) else {
        return sources;
    };
    for entry in entries.flatten() {
        let dir = entry.path();
        if !dir.is_dir() {
            continue;
        }
        let Ok(files) = std::fs::read_dir(&dir) else {
            continue;
        };
        for file in files.flatten() {
            let path = file.path();
            if is_bpf_source(&path) {
                sources.push(path);
            }
        }
    }
    sources.sort();
    sources
}

fn main() {
    let root =
        PathBuf::from(std::env::var("CARGO_MANIFEST_DIR").expect("cargo sets CARGO_MANIFEST_DIR"));
    let out_dir = PathBuf::from(std::env::var("OUT_DIR").expect("cargo sets OUT_DIR"));
    let include_dir = root.join("src/ebpf");
    let probes_dir = root.join("src/probes");
    println!("cargo::rerun-if-changed=src/ebpf");
    println!("cargo::rerun-if-changed=src/probes");
    println!("cargo::rerun-if-env-changed=BPF_CLANG");
    println!("cargo::rerun-if-env-changed=BPF_INCLUDE");

    let libbpf_include =
        std::env::var("BPF_INCLUDE").unwrap_or_else(|_| "/usr/include".to_string());
    if !Path::new(&libbpf_include)
        .join("bpf/bpf_helpers.h")
        .exists()
    {
        fail(&[
            format!("libbpf headers not found ({libbpf_include}/bpf/bpf_helpers.h is missing)."),
            INSTALL_HINT.to_string(),
        ]);
    }
    let clang = find_clang();
    let strip = find_strip();

    for source in bpf_sources(&include_dir, &probes_dir) {
        let file_name = source
            .file_name()
            .and_then(|n| n.to_str())
            .unwrap_or_default();
        let object = out_dir.join(file_name.replace(".bpf.c", ".bpf.o"));
        let output = Command::new(&clang)
            .args([
                "-target",
                "bpf",
                "-g",
                "-O2",
                "-Wall",
                "-Werror",
                "-D__TARGET_ARCH_x86",
            ])
            .arg("-I")
            .arg(&include_dir)
            .arg("-idirafter")
            .arg(&libbpf_include)
            .arg("-c")
            .arg(&source)
            .arg("-o")
            .arg(&object)
            .output();
        match output {
            Ok(out) if out.status.success() => {}
            Ok(out) => {
                let mut lines = vec![format!("clang failed on {}", source.display())];
                lines.extend(
                    String::from_utf8_lossy(&out.stderr)
                        .lines()
                        .map(str::to_string),
                );
                fail(&lines);
            }
            Err(e) => fail(&[format!("cannot run `{clang}`: {e}. {INSTALL_HINT}")]),
        }
        if let Some(strip) = &strip {
            // Stripping drops DWARF (10x smaller) and keeps .BTF/.BTF.ext, which CO-RE needs.
            let _ = Command::new(strip).arg("-g").arg(&object).status();
        }
    }
}
