//! The `harmonix` binary: exit codes, error output with field paths, JSON
//! output, rendering and the schema.

use std::path::Path;
use std::process::{Command, Output};

use harmonix_tests::{example_specs, repo_root};

fn harmonix(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_harmonix"))
        .args(args)
        .current_dir(repo_root())
        .env_remove("CLICOLOR_FORCE")
        .output()
        .expect("runs harmonix")
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

fn example_args() -> Vec<String> {
    example_specs()
        .iter()
        .map(|p| p.to_string_lossy().into_owned())
        .collect()
}

#[test]
fn validate_accepts_every_example() {
    let args = example_args();
    let mut argv = vec!["validate"];
    argv.extend(args.iter().map(String::as_str));
    let out = harmonix(&argv);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let stdout = text(&out.stdout);
    assert_eq!(
        stdout.lines().filter(|l| l.starts_with("ok ")).count(),
        args.len(),
        "{stdout}"
    );
}

#[test]
fn validate_names_the_field_path_and_exits_1() {
    let dir = tempfile::tempdir().expect("tmp");
    let bad = dir.path().join("bad.yaml");
    let good = std::fs::read_to_string(repo_root().join("examples/specs/ecs.yaml")).expect("read");
    std::fs::write(&bad, good.replace("cidr: 10.0.0.0/24", "cidr: 8.8.8.0/24")).expect("write");
    let out = harmonix(&["validate", bad.to_str().expect("utf8")]);
    assert_eq!(out.status.code(), Some(1));
    let stderr = text(&out.stderr);
    assert!(stderr.contains("providers[0].vpc.cidr"), "{stderr}");
    assert!(stderr.contains("8.8.8.0/24"), "{stderr}");
    assert!(
        !stderr.contains("\u{1b}["),
        "no color when not a terminal: {stderr}"
    );
    assert!(!stderr.contains("panicked"), "{stderr}");
}

#[test]
fn validate_reports_all_problems_as_json_lines() {
    let dir = tempfile::tempdir().expect("tmp");
    let bad = dir.path().join("bad.yaml");
    let good = std::fs::read_to_string(repo_root().join("examples/specs/ecs.yaml")).expect("read");
    let broken = good
        .replace("cidr: 10.0.0.0/24", "cidr: 10.0.0.0/8")
        .replace("region: us-east-1", "region: us-east-9");
    std::fs::write(&bad, broken).expect("write");
    let out = harmonix(&["--output", "json", "validate", bad.to_str().expect("utf8")]);
    assert_eq!(out.status.code(), Some(1));
    let lines: Vec<serde_json::Value> = text(&out.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).expect("json line"))
        .collect();
    let paths: Vec<&str> = lines.iter().filter_map(|l| l["path"].as_str()).collect();
    assert!(paths.contains(&"providers[0].vpc.cidr"), "{paths:?}");
    assert!(paths.contains(&"providers[0].region"), "{paths:?}");
    assert!(
        lines
            .iter()
            .all(|l| l["message"].as_str().is_some_and(|m| !m.is_empty()))
    );
}

#[test]
fn color_always_colors_the_path() {
    let dir = tempfile::tempdir().expect("tmp");
    let bad = dir.path().join("bad.yaml");
    std::fs::write(&bad, "providers: []\n").expect("write");
    let out = harmonix(&["--color", "always", "validate", bad.to_str().expect("utf8")]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        text(&out.stderr).contains("\u{1b}["),
        "{}",
        text(&out.stderr)
    );
}

#[test]
fn missing_file_and_yaml_errors_exit_1() {
    let out = harmonix(&["validate", "does/not/exist.yaml"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(text(&out.stderr).contains("does/not/exist.yaml"));
    let dir = tempfile::tempdir().expect("tmp");
    let bad = dir.path().join("bad.yaml");
    std::fs::write(&bad, "providers:\n  - kind: ecs\n\tname: x\n").expect("write");
    let out = harmonix(&["validate", bad.to_str().expect("utf8")]);
    assert_eq!(out.status.code(), Some(1));
    assert!(text(&out.stderr).contains("line"), "{}", text(&out.stderr));
}

#[test]
fn usage_errors_exit_2() {
    assert_eq!(harmonix(&["validate"]).status.code(), Some(2));
    assert_eq!(harmonix(&["no-such-command"]).status.code(), Some(2));
    assert_eq!(
        harmonix(&["render", "examples/specs/ecs.yaml"])
            .status
            .code(),
        Some(2)
    );
    assert_eq!(harmonix(&["--help"]).status.code(), Some(0));
}

fn render_into(dir: &Path) -> std::collections::BTreeMap<String, Vec<u8>> {
    let args = example_args();
    let mut argv = vec!["render"];
    argv.extend(args.iter().map(String::as_str));
    argv.extend(["--out", dir.to_str().expect("utf8")]);
    let out = harmonix(&argv);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    std::fs::read_dir(dir)
        .expect("out dir")
        .map(|e| {
            let p = e.expect("entry").path();
            (
                p.file_name().expect("name").to_string_lossy().into_owned(),
                std::fs::read(&p).expect("read"),
            )
        })
        .collect()
}

#[test]
fn render_writes_templates_parameters_and_manifest_identically_across_runs() {
    let a = tempfile::tempdir().expect("tmp");
    let b = tempfile::tempdir().expect("tmp");
    let first = render_into(a.path());
    assert!(first.contains_key("manifest.json"));
    assert!(first.contains_key("opa-payments-dev-environment.template.json"));
    assert!(first.contains_key("opa-payments-dev-environment.parameters.json"));
    assert_eq!(
        first,
        render_into(b.path()),
        "two processes must write identical bytes"
    );
    let manifest: serde_json::Value =
        serde_json::from_slice(&first["manifest.json"]).expect("manifest is JSON");
    let entries = manifest.as_array().expect("array");
    assert_eq!(entries.len() * 2 + 1, first.len());
    for e in entries {
        assert_eq!(e["hash"].as_str().map(str::len), Some(64));
        let t = e["templateFile"].as_str().expect("templateFile");
        serde_json::from_slice::<serde_json::Value>(&first[t]).expect("template is JSON");
    }
}

#[test]
fn render_refuses_invalid_input_and_writes_nothing() {
    let dir = tempfile::tempdir().expect("tmp");
    let bad = dir.path().join("bad.yaml");
    std::fs::write(&bad, "providers: [{kind: ecs}]\n").expect("write");
    let out_dir = dir.path().join("out");
    let out = harmonix(&[
        "render",
        bad.to_str().expect("utf8"),
        "--out",
        out_dir.to_str().expect("utf8"),
    ]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        text(&out.stderr).contains("providers[0].name"),
        "{}",
        text(&out.stderr)
    );
    assert!(!out_dir.exists());
}

#[test]
fn render_refuses_the_same_stack_from_two_files() {
    let spec = repo_root().join("examples/specs/ecs.yaml");
    let dir = tempfile::tempdir().expect("tmp");
    let copy = dir.path().join("copy.yaml");
    std::fs::copy(&spec, &copy).expect("copy");
    let out = harmonix(&[
        "render",
        spec.to_str().expect("utf8"),
        copy.to_str().expect("utf8"),
        "--out",
        dir.path().join("out").to_str().expect("utf8"),
    ]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        text(&out.stderr).contains("opa-payments-dev-environment"),
        "{}",
        text(&out.stderr)
    );
}

#[test]
fn schema_is_json_schema_of_the_spec() {
    let out = harmonix(&["schema"]);
    assert_eq!(out.status.code(), Some(0));
    let schema: serde_json::Value = serde_json::from_slice(&out.stdout).expect("JSON");
    assert!(
        schema["$schema"]
            .as_str()
            .is_some_and(|s| s.contains("json-schema.org"))
    );
    let provider = &schema["$defs"]["ProviderSpec"];
    let required: Vec<&str> = provider["required"]
        .as_array()
        .expect("required")
        .iter()
        .filter_map(|v| v.as_str())
        .collect();
    for field in ["kind", "name", "owner", "environmentRole"] {
        assert!(
            required.contains(&field),
            "{field} missing from {required:?}"
        );
    }
    // `account` / `region` may be spelled with the legacy names instead.
    let alternatives = provider["allOf"].to_string();
    for name in ["account", "awsAccountID", "region", "awsRegion"] {
        assert!(
            alternatives.contains(&format!("\"{name}\"")),
            "{name}: {alternatives}"
        );
    }
    assert_eq!(provider["additionalProperties"], serde_json::json!(false));
    let dir = tempfile::tempdir().expect("tmp");
    let file = dir.path().join("schema.json");
    let out = harmonix(&["schema", "--out", file.to_str().expect("utf8")]);
    assert_eq!(out.status.code(), Some(0));
    assert_eq!(
        std::fs::read(&file).expect("written"),
        harmonix(&["schema"]).stdout
    );
}

/// Every example spec (YAML → JSON) is valid against `harmonix schema`,
/// checked by Python's `jsonschema` (installed with moto in the venv); a
/// spec with an unknown field is not.
#[test]
fn examples_satisfy_the_schema() {
    let dir = tempfile::tempdir().expect("tmp");
    let schema = dir.path().join("schema.json");
    std::fs::write(&schema, harmonix(&["schema"]).stdout).expect("write schema");
    let mut docs = Vec::new();
    for (i, spec) in example_specs().iter().enumerate() {
        let text = std::fs::read_to_string(spec).expect("read");
        let value: serde_json::Value = serde_saphyr::from_str(&text).expect("yaml");
        let path = dir.path().join(format!("{i}.json"));
        std::fs::write(&path, value.to_string()).expect("write");
        docs.push(path);
    }
    let check = r"
import json, sys, jsonschema
schema = json.load(open(sys.argv[1]))
validator = jsonschema.Draft202012Validator(schema)
bad = 0
for path in sys.argv[2:]:
    errors = list(validator.iter_errors(json.load(open(path))))
    for e in errors:
        print(path, list(e.absolute_path), e.message)
    bad += bool(errors)
sys.exit(1 if bad else 0)
";
    let python = harmonix_tests::venv_tool("python");
    let run = |files: &[std::path::PathBuf]| {
        Command::new(&python)
            .arg("-c")
            .arg(check)
            .arg(&schema)
            .args(files)
            .output()
            .expect("runs python")
    };
    let out = run(&docs);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}{}",
        text(&out.stdout),
        text(&out.stderr)
    );

    let bad = dir.path().join("bad.json");
    let mut value: serde_json::Value =
        serde_json::from_slice(&std::fs::read(&docs[0]).expect("read")).expect("json");
    value["providers"][0]["noSuchField"] = serde_json::json!(1);
    std::fs::write(&bad, value.to_string()).expect("write");
    let out = run(&[bad]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out.stdout));
    assert!(
        text(&out.stdout).contains("noSuchField"),
        "{}",
        text(&out.stdout)
    );
}
