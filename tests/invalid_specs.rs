//! The invalid-spec corpus (`tests/data/invalid/`) and generated hostile
//! inputs: every bad spec is refused with exactly one error at the expected
//! field path, and every example spec is accepted.
//!
//! Each corpus file has exactly one problem and starts with
//! `# expect: <field path>` (empty path: the whole file) or
//! `# expect-error: yaml|too-large|not-utf8` for input refused before the
//! fields are read.

use std::fmt::Write as _;
use std::io::Write as _;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use harmonix_core::provider::Registry;
use harmonix_core::spec::{self, MAX_SPEC_BYTES, SpecError};
use harmonix_tests::{example_specs, repo_root};

/// The corpus must keep at least this many cases.
const MIN_CORPUS_FILES: usize = 45;

/// Refusing an oversized file must not take longer than this.
const FAST: Duration = Duration::from_secs(2);

/// What a corpus file declares about itself.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Expect {
    /// One validation error at this path (`""`: the whole file).
    Path(String),
    /// Refused before validation.
    Yaml,
    TooLarge,
    NotUtf8,
}

fn corpus_dir() -> PathBuf {
    repo_root().join("tests/data/invalid")
}

fn corpus_files() -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> = std::fs::read_dir(corpus_dir())
        .expect("tests/data/invalid exists")
        .map(|e| e.expect("dir entry").path())
        .filter(|p| p.extension().is_some_and(|e| e == "yaml" || e == "yml"))
        .collect();
    v.sort();
    v
}

/// The expectation on the first line of a corpus file.
fn expectation(path: &Path) -> Result<Expect, String> {
    let bytes = std::fs::read(path).map_err(|e| format!("cannot read: {e}"))?;
    let first = bytes.split(|b| *b == b'\n').next().unwrap_or_default();
    let first = std::str::from_utf8(first).map_err(|_| "first line is not UTF-8".to_owned())?;
    if let Some(p) = first.strip_prefix("# expect:") {
        return Ok(Expect::Path(p.trim().to_owned()));
    }
    match first.strip_prefix("# expect-error:").map(str::trim) {
        Some("yaml") => Ok(Expect::Yaml),
        Some("too-large") => Ok(Expect::TooLarge),
        Some("not-utf8") => Ok(Expect::NotUtf8),
        _ => Err(format!(
            "first line must be `# expect: <path>` or `# expect-error: yaml|too-large|not-utf8`, found {first:?}"
        )),
    }
}

/// Load `path`, catching panics so one broken case does not hide the others.
fn load(path: &Path) -> Result<Result<spec::ValidSpec, SpecError>, String> {
    let registry = Registry::builtin();
    catch_unwind(AssertUnwindSafe(|| spec::load(path, &registry))).map_err(|panic| {
        let msg = panic
            .downcast_ref::<String>()
            .cloned()
            .or_else(|| panic.downcast_ref::<&str>().map(|s| (*s).to_owned()))
            .unwrap_or_default();
        format!("panicked: {msg}")
    })
}

/// Check one corpus file against its declared expectation.
fn check_corpus_file(path: &Path) -> Result<(), String> {
    let expect = expectation(path)?;
    let Err(err) = load(path)? else {
        return Err("was accepted".to_owned());
    };
    let text = err.to_string();
    match (&expect, &err) {
        (Expect::Path(want), SpecError::Invalid { errors, .. }) => {
            let all: Vec<String> = errors.iter().map(ToString::to_string).collect();
            if errors.len() != 1 {
                return Err(format!(
                    "expected exactly one error at `{want}`, got {}:\n    {}",
                    errors.len(),
                    all.join("\n    ")
                ));
            }
            let got = &errors.0[0];
            if got.path != *want {
                return Err(format!("expected the error at `{want}`, got: {got}"));
            }
            let shown = if want.is_empty() {
                "(file)"
            } else {
                want.as_str()
            };
            if !text.contains(shown) {
                return Err(format!("the message does not name `{shown}`: {text}"));
            }
            if got.message.trim().is_empty() {
                return Err("the error has no message".to_owned());
            }
            Ok(())
        }
        (Expect::Yaml, SpecError::Yaml { message, .. }) if !message.is_empty() => Ok(()),
        (Expect::TooLarge, SpecError::TooLarge { .. })
        | (Expect::NotUtf8, SpecError::NotUtf8 { .. }) => Ok(()),
        _ => Err(format!("expected {expect:?}, got: {text}")),
    }
}

#[test]
fn corpus_is_large_enough_and_well_formed() {
    let files = corpus_files();
    assert!(
        files.len() >= MIN_CORPUS_FILES,
        "only {} corpus files under {}; at least {MIN_CORPUS_FILES} are required",
        files.len(),
        corpus_dir().display()
    );
    let bad: Vec<String> = files
        .iter()
        .filter_map(|f| {
            expectation(f)
                .err()
                .map(|e| format!("{}: {e}", f.display()))
        })
        .collect();
    assert!(bad.is_empty(), "{}", bad.join("\n"));
}

#[test]
fn every_corpus_file_fails_with_exactly_its_error() {
    let files = corpus_files();
    assert!(!files.is_empty());
    let mut failures = String::new();
    let mut failed = 0;
    for f in &files {
        if let Err(why) = check_corpus_file(f) {
            failed += 1;
            let name = f
                .file_name()
                .map(|n| n.to_string_lossy())
                .unwrap_or_default();
            let _ = writeln!(failures, "{name}: {why}");
        }
    }
    assert!(
        failed == 0,
        "{failed} of {} corpus files did not fail as declared:\n{failures}",
        files.len()
    );
}

#[test]
fn every_example_spec_is_valid() {
    let files = example_specs();
    assert!(!files.is_empty(), "no example specs found");
    let mut failures = String::new();
    for f in &files {
        match load(f) {
            Ok(Ok(valid)) => assert!(valid.providers().len() > 0, "{}", f.display()),
            Ok(Err(e)) => {
                let _ = writeln!(failures, "{}: {e}", f.display());
            }
            Err(panic) => {
                let _ = writeln!(failures, "{}: {panic}", f.display());
            }
        }
    }
    assert!(
        failures.is_empty(),
        "example specs must validate:\n{failures}"
    );
}

// ---------------------------------------------------------------------------
// Generated inputs (not committed as files).

const VALID: &str = r#"providers:
  - kind: ecs
    name: payments-dev
    owner: group:payments
    account: "123456789012"
    region: us-east-1
    environmentRole: arn:aws:iam::123456789012:role/opa-envprovisioning-role
    platformRole: arn:aws:iam::111111111111:role/opa-platform-role
    pipelineRole: arn:aws:iam::111111111111:role/opa-pipeline-role
"#;

fn write_temp(bytes: &[u8]) -> tempfile::NamedTempFile {
    let mut f = tempfile::NamedTempFile::new().expect("temp file");
    f.write_all(bytes).expect("write temp file");
    f.flush().expect("flush temp file");
    f
}

fn load_path(path: &Path) -> Result<spec::ValidSpec, SpecError> {
    spec::load(path, &Registry::builtin())
}

#[test]
fn generated_baseline_is_valid() {
    let f = write_temp(VALID.as_bytes());
    let valid = load_path(f.path()).expect("the baseline spec of the generated cases is valid");
    assert_eq!(valid.providers().len(), 1);
}

#[test]
fn two_mib_file_is_refused_fast() {
    // A valid spec padded with a comment to 2 MiB: refused for its size alone.
    let size = 2 * 1024 * 1024;
    let text = format!("{VALID}#{}", "x".repeat(size - VALID.len() - 1));
    let f = write_temp(text.as_bytes());
    let start = Instant::now();
    let err = load_path(f.path()).expect_err("a 2 MiB spec is refused");
    let took = start.elapsed();
    match err {
        SpecError::TooLarge {
            size: got, limit, ..
        } => {
            assert_eq!(got, size as u64);
            assert_eq!(limit, MAX_SPEC_BYTES);
        }
        other => panic!("expected TooLarge, got {other}"),
    }
    assert!(took < FAST, "refusing a 2 MiB file took {took:?}");
    // The in-memory entry points refuse it too.
    assert!(matches!(
        spec::parse_bytes(text.as_bytes(), "mem"),
        Err(SpecError::TooLarge { .. })
    ));
    assert!(matches!(
        spec::parse_str(&text, "mem"),
        Err(SpecError::TooLarge { .. })
    ));
}

#[test]
fn fifty_mb_file_is_refused_by_size_without_reading_it() {
    // A sparse 50 MB file: its size comes from the metadata; reading it would
    // stop at MAX_SPEC_BYTES + 1 and report that instead.
    let size: u64 = 50 * 1000 * 1000;
    let f = tempfile::NamedTempFile::new().expect("temp file");
    f.as_file().set_len(size).expect("set_len");
    let start = Instant::now();
    let err = load_path(f.path()).expect_err("a 50 MB spec is refused");
    let took = start.elapsed();
    match &err {
        SpecError::TooLarge {
            size: got, limit, ..
        } => {
            assert_eq!(*got, size, "the size must be the file's, from its metadata");
            assert_eq!(*limit, MAX_SPEC_BYTES);
        }
        other => panic!("expected TooLarge, got {other}"),
    }
    assert!(took < FAST, "refusing a 50 MB file took {took:?}");
    let text = err.to_string();
    assert!(
        text.contains(&size.to_string()) && text.contains(&MAX_SPEC_BYTES.to_string()),
        "{text}"
    );
}

#[test]
fn invalid_utf8_is_refused_with_its_offset() {
    let mut bytes = VALID.as_bytes().to_vec();
    let offset = bytes.len();
    bytes.extend_from_slice(b"    description: caf\xe9 \xff\xfe\n");
    let f = write_temp(&bytes);
    match load_path(f.path()) {
        Err(SpecError::NotUtf8 { offset: got, .. }) => {
            assert_eq!(got, offset + "    description: caf".len());
        }
        other => panic!("expected NotUtf8, got {other:?}"),
    }
}

/// The single whole-file error of `text`.
fn whole_file_error(text: &str) -> String {
    let f = write_temp(text.as_bytes());
    match load_path(f.path()) {
        Err(SpecError::Invalid { errors, .. }) => {
            assert_eq!(errors.len(), 1, "{errors}");
            let e = &errors.0[0];
            assert_eq!(e.path, "", "{e}");
            assert!(errors.to_string().contains("(file)"), "{errors}");
            e.message.clone()
        }
        other => panic!("expected one whole-file validation error for {text:?}, got {other:?}"),
    }
}

#[test]
fn empty_file_is_refused() {
    for text in ["", "\n", "# only a comment\n", "---\n"] {
        let message = whole_file_error(text);
        assert!(message.contains("empty"), "{text:?}: {message}");
    }
}

#[test]
fn scalar_instead_of_mapping_is_refused() {
    for text in ["just a string\n", "42\n", "- a\n- b\n"] {
        let message = whole_file_error(text);
        assert!(!message.is_empty(), "{text:?}");
    }
}

#[test]
fn missing_file_is_an_io_error() {
    let dir = tempfile::tempdir().expect("temp dir");
    let path = dir.path().join("absent.yaml");
    assert!(matches!(load_path(&path), Err(SpecError::Io { .. })));
}

#[test]
fn errors_of_several_problems_are_all_reported() {
    // Three independent problems in one provider: all are listed, in order.
    let text = VALID
        .replace("payments-dev", "Payments")
        .replace("us-east-1", "us-east-9")
        .replace("group:payments", "\"group:\"");
    let f = write_temp(text.as_bytes());
    let errors = match load_path(f.path()) {
        Err(SpecError::Invalid { errors, .. }) => errors,
        other => panic!("expected validation errors, got {other:?}"),
    };
    let paths: Vec<&str> = errors.iter().map(|e| e.path.as_str()).collect();
    assert_eq!(
        paths,
        [
            "providers[0].name",
            "providers[0].owner",
            "providers[0].region"
        ],
        "{errors}"
    );
}

/// A provider of [`VALID`] renamed to `name`.
fn provider_named(name: &str) -> String {
    VALID
        .trim_start_matches("providers:\n")
        .replace("payments-dev", name)
}

#[test]
fn large_specs_are_checked_quickly() {
    // Close to the size limit: 2,000 valid providers...
    let mut text = String::from("providers:\n");
    for i in 0..2000 {
        text += &provider_named(&format!("env-{i}"));
    }
    assert!(text.len() as u64 <= MAX_SPEC_BYTES, "{}", text.len());
    let start = Instant::now();
    let file = spec::parse_str(&text, "big").expect("parses");
    let valid = spec::validate(file, &Registry::builtin(), "big").expect("valid");
    assert_eq!(valid.providers().len(), 2000);
    let took = start.elapsed();
    assert!(
        took < Duration::from_secs(20),
        "2,000 providers took {took:?}"
    );

    // ...and one environment naming 60,000 providers that do not exist:
    // one short error each.
    let mut text = format!(
        "{VALID}environments:\n  - name: e\n    shortName: e\n    owner: g\n    providers: ["
    );
    for i in 0..60_000 {
        let _ = write!(text, "p{i},");
    }
    text += "]\n";
    assert!(text.len() as u64 <= MAX_SPEC_BYTES, "{}", text.len());
    let start = Instant::now();
    let file = spec::parse_str(&text, "refs").expect("parses");
    let err = spec::validate(file, &Registry::builtin(), "refs").expect_err("invalid");
    let errors = err.validation_errors().expect("validation errors");
    assert_eq!(errors.len(), 60_000);
    assert!(
        errors.iter().all(|e| e.message.len() < 200),
        "{}",
        errors.0[0]
    );
    let took = start.elapsed();
    assert!(
        took < Duration::from_secs(20),
        "60,000 references took {took:?}"
    );
}
