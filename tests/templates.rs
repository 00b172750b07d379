//! Every example spec renders; rendering is byte-for-byte deterministic
//! (also across processes); templates are internally consistent and pass
//! `cfn-lint` with zero errors, zero warnings and zero informational
//! findings (`--include-checks I`), the account/region bootstrap stack
//! included.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;

use harmonix_core::provider::{Names, Registry};
use harmonix_core::{render, spec};
use harmonix_tests::{example_specs, venv_tool};

/// Render every example into `dir`; returns file name → bytes.
fn render_all(dir: &Path) -> BTreeMap<String, Vec<u8>> {
    let registry = Registry::builtin();
    let mut stacks = Vec::new();
    for file in example_specs() {
        let valid = spec::load(&file, &registry)
            .unwrap_or_else(|e| panic!("{} must validate: {e}", file.display()));
        stacks.extend(render::stacks(&valid, &registry).expect("renders"));
    }
    stacks.push(harmonix_core::provider::bootstrap_stack(
        "123456789012",
        "us-east-1",
    ));
    render::write_stacks(&stacks, dir).expect("writes");
    read_dir(dir)
}

fn read_dir(dir: &Path) -> BTreeMap<String, Vec<u8>> {
    std::fs::read_dir(dir)
        .expect("readable")
        .map(|e| {
            let p = e.expect("entry").path();
            (
                p.file_name().expect("name").to_string_lossy().into_owned(),
                std::fs::read(&p).expect("file"),
            )
        })
        .collect()
}

fn templates_in(dir: &Path) -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> = std::fs::read_dir(dir)
        .expect("readable")
        .map(|e| e.expect("entry").path())
        .filter(|p| p.to_string_lossy().ends_with(".template.json"))
        .collect();
    v.sort();
    v
}

/// Each provider renders its environment stack, `{prefix}-{name}-environment`
/// (its audit table and roles live there), and may add stacks that depend
/// on it (`backstage-platform`: one per stage). Every stack belongs to a
/// provider of the spec and depends only on stacks of the spec.
#[test]
fn every_example_renders_an_environment_stack_per_provider_without_dangling_references() {
    let registry = Registry::builtin();
    let mut total = 0;
    let mut extra = 0;
    for file in example_specs() {
        let valid = spec::load(&file, &registry).expect("valid");
        let stacks = render::stacks(&valid, &registry).expect("renders");
        let names: Vec<&str> = stacks.iter().map(|s| s.name.as_str()).collect();
        let mut counted = 0;
        for p in valid.providers() {
            let environment = Names::of(&p).stack;
            let own: Vec<_> = stacks.iter().filter(|s| s.provider == p.name).collect();
            assert_eq!(
                own.iter().filter(|s| s.name == environment).count(),
                1,
                "{}: provider {} renders no stack {environment}",
                file.display(),
                p.name
            );
            for s in &own {
                if s.name != environment {
                    assert!(
                        s.depends_on.contains(&environment),
                        "{}: {} must depend on {environment}",
                        file.display(),
                        s.name
                    );
                }
                for d in &s.depends_on {
                    assert!(
                        names.contains(&d.as_str()),
                        "{}: {} depends on unknown {d}",
                        file.display(),
                        s.name
                    );
                }
            }
            counted += own.len();
            extra += own.len() - 1;
        }
        assert_eq!(
            counted,
            stacks.len(),
            "{}: stacks of no provider",
            file.display()
        );
        for s in &stacks {
            assert!(
                s.template.dangling_references().is_empty(),
                "{}: {} has dangling references {:?}",
                file.display(),
                s.name,
                s.template.dangling_references()
            );
            // Every template parameter without a default gets a value.
            for (name, p) in &s.template.parameters {
                assert!(
                    p.default.is_some() || s.parameters.contains_key(name),
                    "{}: parameter {name} has no value",
                    s.name
                );
            }
            for name in s.parameters.keys() {
                assert!(
                    s.template.parameters.contains_key(name),
                    "{}: value for undeclared parameter {name}",
                    s.name
                );
            }
            total += 1;
        }
    }
    assert!(total >= 9, "expected at least 9 stacks, got {total}");
    assert!(extra >= 2, "the platform example's stage stacks: {extra}");
}

#[test]
fn rendering_twice_gives_identical_bytes() {
    let a = tempfile::tempdir().expect("tmp");
    let b = tempfile::tempdir().expect("tmp");
    let first = render_all(a.path());
    let second = render_all(b.path());
    assert!(first.len() >= 19, "files: {:?}", first.keys());
    assert_eq!(first, second);
}

#[test]
fn cfn_lint_reports_nothing_on_any_rendered_template() {
    let dir = tempfile::tempdir().expect("tmp");
    render_all(dir.path());
    let templates = templates_in(dir.path());
    assert!(templates.len() >= 9, "templates: {templates:?}");
    let out = Command::new(venv_tool("cfn-lint"))
        .args(["--format", "parseable"])
        .args(&templates)
        // Last: `--include-checks` takes every following argument.
        .args(["--include-checks", "I"])
        .output()
        .expect("runs cfn-lint");
    let report = String::from_utf8_lossy(&out.stdout);
    // cfn-lint exit code is a bit mask: 2 errors, 4 warnings, 8 informational;
    // any other bit means cfn-lint itself failed.
    assert_eq!(
        out.status.code(),
        Some(0),
        "cfn-lint findings:\n{report}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(report.trim().is_empty(), "{report}");
}

#[test]
fn cfn_lint_catches_a_broken_template() {
    // Proves the check above can fail: a template with an unknown property.
    let dir = tempfile::tempdir().expect("tmp");
    let bad = dir.path().join("bad.template.json");
    std::fs::write(
        &bad,
        r#"{"AWSTemplateFormatVersion":"2010-09-09","Resources":{"Q":{"Type":"AWS::SQS::Queue","Properties":{"NoSuchProperty":1}}}}"#,
    )
    .expect("write");
    let out = Command::new(venv_tool("cfn-lint"))
        .arg(&bad)
        .output()
        .expect("runs cfn-lint");
    assert_eq!(
        out.status.code().map(|c| c & 2),
        Some(2),
        "cfn-lint must report an error"
    );
}

/// cfn-lint's informational I3011 ("DeletionPolicy not set on stateful
/// resource") finds nothing in any rendered template; the control template
/// shows the check runs and fires.
#[test]
fn cfn_lint_finds_no_stateful_resource_without_deletion_policies() {
    let dir = tempfile::tempdir().expect("tmp");
    render_all(dir.path());
    let templates = templates_in(dir.path());
    let control = dir.path().join("control.json");
    std::fs::write(
        &control,
        r#"{"AWSTemplateFormatVersion":"2010-09-09","Resources":{"T":{"Type":"AWS::DynamoDB::Table","Properties":{"BillingMode":"PAY_PER_REQUEST","AttributeDefinitions":[{"AttributeName":"id","AttributeType":"S"}],"KeySchema":[{"AttributeName":"id","KeyType":"HASH"}]}}}}"#,
    )
    .expect("write");
    let run = |files: &[PathBuf]| {
        let out = Command::new(venv_tool("cfn-lint"))
            // `--include-checks` takes several values: `--` ends them.
            .args(["--format", "parseable", "--include-checks", "I3011", "--"])
            .args(files)
            .output()
            .expect("runs cfn-lint");
        String::from_utf8_lossy(&out.stdout)
            .lines()
            .filter(|l| l.contains(":I3011:"))
            .map(str::to_owned)
            .collect::<Vec<_>>()
    };
    let findings = run(&templates);
    assert!(findings.is_empty(), "{findings:#?}");
    // One finding per missing attribute.
    let control_findings = run(&[control]);
    assert_eq!(control_findings.len(), 2, "{control_findings:#?}");
}

#[test]
fn cfn_lint_reports_informational_findings_as_run_above() {
    // Proves `--include-checks I` is in effect as the check above passes
    // it: a DynamoDB table without DeletionPolicy is I3011.
    let dir = tempfile::tempdir().expect("tmp");
    let t = dir.path().join("stateful.template.json");
    std::fs::write(
        &t,
        r#"{"AWSTemplateFormatVersion":"2010-09-09","Resources":{"T":{"Type":"AWS::DynamoDB::Table","Properties":{"BillingMode":"PAY_PER_REQUEST","AttributeDefinitions":[{"AttributeName":"id","AttributeType":"S"}],"KeySchema":[{"AttributeName":"id","KeyType":"HASH"}]}}}}"#,
    )
    .expect("write");
    let out = Command::new(venv_tool("cfn-lint"))
        .args(["--format", "parseable"])
        .arg(&t)
        .args(["--include-checks", "I"])
        .output()
        .expect("runs cfn-lint");
    let report = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code().map(|c| c & 8), Some(8), "{report}");
    assert!(report.contains("I3011"), "{report}");
}
