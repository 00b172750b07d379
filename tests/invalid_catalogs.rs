//! The invalid-catalog corpus (`tests/data/invalid-catalog/`) and generated
//! hostile catalog files: merging Harmonix's entities into each is refused
//! with a clear error (document number, entity, what is wrong), never
//! panics, never hangs, and leaves the file as it was.
//!
//! Each corpus file starts with `# expect-error: <text the error contains>`.
//! Together with the spec corpus (`tests/data/invalid/`) this makes well
//! over 100 hostile inputs.

use std::panic::{AssertUnwindSafe, catch_unwind};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use harmonix_core::catalog::{
    self, CatalogError, Entity, MAX_CATALOG_BYTES, MAX_CATALOG_DOCUMENTS,
};
use harmonix_core::error_chain;
use harmonix_core::provider::{Registry, StackOutputs};
use harmonix_core::spec;
use harmonix_tests::repo_root;

/// Refusing any input must take less than this.
const FAST: Duration = Duration::from_secs(3);

fn entities() -> Vec<Entity> {
    let registry = Registry::builtin();
    let valid =
        spec::load(&repo_root().join("examples/specs/ecs.yaml"), &registry).expect("example");
    catalog::entities(&valid, &registry, &StackOutputs::new()).expect("entities")
}

fn corpus() -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> = std::fs::read_dir(repo_root().join("tests/data/invalid-catalog"))
        .expect("corpus dir")
        .map(|e| e.expect("entry").path())
        .collect();
    v.sort();
    v
}

fn expectation(path: &Path) -> String {
    let bytes = std::fs::read(path).expect("read");
    let first = bytes.split(|b| *b == b'\n').next().unwrap_or_default();
    let line = std::str::from_utf8(first)
        .ok()
        .and_then(|l| l.strip_prefix("# expect-error:"));
    match line {
        Some(s) => s.trim().to_owned(),
        None => panic!("{}: first line must be `# expect-error: …`", path.display()),
    }
}

/// Write `bytes` as a catalog file, merge into it, and check the refusal.
fn refused(name: &str, bytes: &[u8], expect: &str) -> Result<(), String> {
    let dir = tempfile::tempdir().map_err(|e| e.to_string())?;
    let path = dir.path().join("catalog-info.yaml");
    std::fs::write(&path, bytes).map_err(|e| e.to_string())?;
    let ents = entities();
    let start = Instant::now();
    let result = catch_unwind(AssertUnwindSafe(|| catalog::write_catalog(&path, &ents)))
        .map_err(|_| format!("{name}: PANICKED"))?;
    let took = start.elapsed();
    if took > FAST {
        return Err(format!("{name}: took {took:?}"));
    }
    let err: CatalogError = match result {
        Ok(outcome) => return Err(format!("{name}: accepted ({outcome})")),
        Err(e) => e,
    };
    let msg = error_chain(&err);
    if !msg.contains(expect) {
        return Err(format!("{name}: error {msg:?} does not contain {expect:?}"));
    }
    if msg.len() > 2_000 {
        return Err(format!("{name}: error is {} bytes long", msg.len()));
    }
    let after = std::fs::read(&path).map_err(|e| e.to_string())?;
    if after != bytes {
        return Err(format!("{name}: the file was changed"));
    }
    Ok(())
}

#[test]
fn corpus_files_are_refused_clearly() {
    let files = corpus();
    assert!(files.len() >= 15, "{} files", files.len());
    let failures: Vec<String> = files
        .iter()
        .filter_map(|f| {
            let name = f
                .file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_default();
            let bytes = std::fs::read(f).expect("read");
            refused(&name, &bytes, &expectation(f)).err()
        })
        .collect();
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[test]
fn hostile_corpus_has_at_least_100_inputs() {
    let specs = std::fs::read_dir(repo_root().join("tests/data/invalid"))
        .expect("spec corpus")
        .count();
    let catalogs = corpus().len();
    assert!(
        specs + catalogs >= 100,
        "{specs} specs + {catalogs} catalogs"
    );
}

#[test]
fn oversized_catalog_is_refused_by_size() {
    let dir = tempfile::tempdir().expect("tmp");
    let path = dir.path().join("catalog-info.yaml");
    let f = std::fs::File::create(&path).expect("create");
    // Sparse: 50 MB without writing them.
    f.set_len(50 * 1024 * 1024).expect("set_len");
    let start = Instant::now();
    let err = catalog::write_catalog(&path, &entities()).expect_err("too large");
    assert!(start.elapsed() < FAST);
    assert!(
        matches!(err, CatalogError::TooLarge { limit, .. } if limit == MAX_CATALOG_BYTES),
        "{err}"
    );
}

#[test]
fn too_many_documents_are_refused() {
    let mut text = String::new();
    for i in 0..=MAX_CATALOG_DOCUMENTS {
        text.push_str("---\nkind: Component\nmetadata: {name: c");
        text.push_str(&i.to_string());
        text.push_str("}\n");
    }
    refused("generated", text.as_bytes(), "YAML documents").expect("refused");
}

#[test]
fn a_valid_catalog_next_to_the_corpus_is_accepted() {
    // The refusals above are about the inputs, not the entities.
    let dir = tempfile::tempdir().expect("tmp");
    let path = dir.path().join("catalog-info.yaml");
    std::fs::write(
        &path,
        "apiVersion: backstage.io/v1alpha1\nkind: Component\nmetadata:\n  name: web\n",
    )
    .expect("write");
    let outcome = catalog::write_catalog(&path, &entities()).expect("merged");
    assert_eq!(outcome, catalog::WriteOutcome::Updated);
}
