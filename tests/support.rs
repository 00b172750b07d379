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

/// `checkov` from its own venv (`.venv-checkov`, made by `scripts/setup`;
/// its dependencies clash with moto's), or from `HARMONIX_CHECKOV_VENV`.
/// Panics with a hint when missing.
pub fn checkov() -> PathBuf {
    let venv = std::env::var_os("HARMONIX_CHECKOV_VENV")
        .map_or_else(|| repo_root().join(".venv-checkov"), PathBuf::from);
    let p = venv.join("bin").join("checkov");
    assert!(
        p.exists(),
        "{} not found: run `scripts/setup` first (it makes the checkov venv)",
        p.display()
    );
    p
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
#[path = "proxy.rs"]
pub mod proxy;

/// Backstage's own validation of catalog files
/// (`tests/node/validate-catalog.mjs`, `@backstage/catalog-model`).
pub mod backstage {
    use std::path::PathBuf;
    use std::process::Command;

    use serde_json::Value;

    use crate::node_dir;

    /// One line of the validator's output.
    #[derive(Debug, Clone)]
    pub struct Verdict {
        pub file: String,
        pub kind: Option<String>,
        pub name: Option<String>,
        pub ok: bool,
        pub error: Option<String>,
    }

    /// Run the Node validator on `files`: its exit code and one verdict per
    /// document.
    pub fn validate(files: &[PathBuf]) -> (Option<i32>, Vec<Verdict>) {
        let dir = node_dir();
        let out = Command::new("node")
            .arg(dir.join("validate-catalog.mjs"))
            .args(files)
            .current_dir(&dir)
            .output()
            .expect("`node` runs (Node 20+ must be on PATH)");
        let stdout = String::from_utf8(out.stdout).expect("validator prints UTF-8");
        let stderr = String::from_utf8_lossy(&out.stderr);
        let verdicts = stdout
            .lines()
            .map(|l| {
                let v: Value = serde_json::from_str(l).unwrap_or_else(|e| {
                    panic!("validator printed a non-JSON line {l:?} ({e}); stderr: {stderr}")
                });
                let s = |k: &str| v.get(k).and_then(Value::as_str).map(str::to_owned);
                Verdict {
                    file: s("file").expect("`file` in every line"),
                    kind: s("kind"),
                    name: s("name"),
                    ok: v
                        .get("ok")
                        .and_then(Value::as_bool)
                        .expect("`ok` in every line"),
                    error: s("error"),
                }
            })
            .collect();
        (out.status.code(), verdicts)
    }
}

/// Engine options for end-to-end tests on the emulator: `command` in the
/// audit trail, polling every 20–200 ms, applies bounded at 2 minutes and
/// a 20 s lock lease.
pub fn fast_engine_options(command: &str) -> harmonix_core::engine::EngineOptions {
    let mut opts = harmonix_core::engine::EngineOptions {
        command: command.to_owned(),
        ..Default::default()
    };
    let poll = harmonix_core::engine::plan::Backoff {
        initial: std::time::Duration::from_millis(20),
        max: std::time::Duration::from_millis(200),
    };
    opts.plan.poll = poll;
    opts.apply.poll = poll;
    opts.apply.timeout = std::time::Duration::from_mins(2);
    opts.lock.lease = std::time::Duration::from_secs(20);
    opts
}
