//! Shared helpers of the workspace tests: paths to the example specs and to
//! the tools `.ci/run` installs (the Python venv, the Node packages).

use std::path::{Path, PathBuf};

/// The repository root.
pub fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("tests/ has a parent")
        .to_path_buf()
}

/// Every example spec under `examples/specs/`, sorted.
pub fn example_specs() -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> = std::fs::read_dir(repo_root().join("examples/specs"))
        .expect("examples/specs exists")
        .map(|e| e.expect("dir entry").path())
        .filter(|p| p.extension().is_some_and(|e| e == "yaml" || e == "yml"))
        .collect();
    v.sort();
    v
}

/// A tool from the project's Python venv (`.venv/bin/NAME`, made by
/// `scripts/setup`), or from `HARMONIX_VENV` when set. Panics with a hint
/// when missing: these tests must not silently skip.
pub fn venv_tool(name: &str) -> PathBuf {
    let venv =
        std::env::var_os("HARMONIX_VENV").map_or_else(|| repo_root().join(".venv"), PathBuf::from);
    let p = venv.join("bin").join(name);
    assert!(
        p.exists(),
        "{} not found: run `scripts/setup` first (it makes the venv)",
        p.display()
    );
    p
}

/// The directory of the Node test helpers (`tests/node`), checked to have
/// its packages installed (`npm ci` by `scripts/setup`).
pub fn node_dir() -> PathBuf {
    let d = repo_root().join("tests/node");
    assert!(
        d.join("node_modules").exists(),
        "{}/node_modules missing: run `scripts/setup` first (it runs npm ci)",
        d.display()
    );
    d
}

#[path = "emulator.rs"]
pub mod emulator;
