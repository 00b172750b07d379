//! Template security: `checkov` on every rendered template (zero failed
//! checks; each suppression carries a written reason), plus structural
//! checks checkov does not make: trust policies name exact principals,
//! log groups have a retention and the environment's KMS key, and no
//! policy grants `*` actions.

use std::path::Path;
use std::process::Command;

use harmonix_core::provider::Registry;
use harmonix_core::{render, spec};
use harmonix_tests::{checkov, example_specs, repo_root};
use serde_json::Value;

/// Every example spec, plus variants that switch on the optional parts
/// (tracing, private EKS with the kubectl function), rendered into `dir`.
fn render_all(dir: &Path) -> Vec<(String, Value)> {
    let registry = Registry::builtin();
    let mut texts: Vec<(String, String)> = example_specs()
        .into_iter()
        .map(|p| {
            let t = std::fs::read_to_string(&p).expect("example");
            (p.display().to_string(), t)
        })
        .collect();
    let serverless =
        std::fs::read_to_string(repo_root().join("examples/specs/serverless.yaml")).expect("ex");
    texts.push((
        "serverless with tracing".into(),
        serverless
            .replace("name: orders-dev\n", "name: traced\n")
            .replace(
                "    serverless:\n",
                "    serverless:\n      tracing: true\n",
            ),
    ));
    let mut out = Vec::new();
    for (name, text) in texts {
        let valid = spec::parse_str(&text, &name)
            .and_then(|f| spec::validate(f, &registry, &name))
            .unwrap_or_else(|e| panic!("{name} must validate: {e}"));
        let stacks = render::stacks(&valid, &registry).expect("renders");
        render::write_stacks(&stacks, dir).expect("writes");
        for s in stacks {
            let v = serde_json::to_value(&s.template).expect("json");
            out.push((s.name.clone(), v));
        }
    }
    out
}

fn run_checkov(dir: &Path) -> Value {
    let out = Command::new(checkov())
        .args(["--framework", "cloudformation", "--quiet", "--compact"])
        .args(["--output", "json", "--skip-download", "-d"])
        .arg(dir)
        .env("BC_SKIP_MAPPING", "TRUE")
        .env("CHECKOV_RUN_SCA_PACKAGE_SCAN_V2", "false")
        .output()
        .expect("runs checkov");
    let text = String::from_utf8_lossy(&out.stdout);
    serde_json::from_str(&text).unwrap_or_else(|e| {
        panic!(
            "checkov output is not JSON ({e}):\n{text}\n{}",
            String::from_utf8_lossy(&out.stderr)
        )
    })
}

#[test]
fn checkov_finds_nothing_unsuppressed_and_every_suppression_has_a_reason() {
    let dir = tempfile::tempdir().expect("tmp");
    let templates = render_all(dir.path());
    assert!(templates.len() >= 10, "{}", templates.len());
    let report = run_checkov(dir.path());
    let summary = &report["summary"];
    let failed: Vec<String> = report["results"]["failed_checks"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|f| format!("{} {} {}", f["check_id"], f["file_path"], f["resource"]))
        .collect();
    assert!(
        failed.is_empty(),
        "checkov failed checks:\n{}",
        failed.join("\n")
    );
    assert_eq!(summary["failed"], 0, "{summary}");
    assert_eq!(summary["parsing_errors"], 0, "{summary}");
    // The run really checked the templates.
    assert!(summary["passed"].as_u64().unwrap_or(0) > 300, "{summary}");
    assert!(
        summary["resource_count"].as_u64().unwrap_or(0) > 200,
        "{summary}"
    );
    // Suppressions live in the templates, each with a written reason.
    let mut skips = 0;
    for (stack, t) in &templates {
        for (id, r) in t["Resources"].as_object().expect("resources") {
            for skip in r["Metadata"]["checkov"]["skip"]
                .as_array()
                .into_iter()
                .flatten()
            {
                skips += 1;
                let reason = skip["comment"].as_str().unwrap_or_default();
                assert!(
                    reason.len() > 30,
                    "{stack}/{id}: suppression of {} without a reason",
                    skip["id"]
                );
            }
        }
    }
    assert_eq!(
        summary["skipped"].as_u64(),
        Some(skips),
        "checkov skipped other checks than the template suppresses"
    );
}

#[test]
fn checkov_catches_an_insecure_template() {
    // Proves the check above can fail: an unencrypted, public bucket.
    let dir = tempfile::tempdir().expect("tmp");
    std::fs::write(
        dir.path().join("bad.template.json"),
        r#"{"AWSTemplateFormatVersion":"2010-09-09","Resources":{"B":{"Type":"AWS::S3::Bucket","Properties":{"AccessControl":"PublicReadWrite"}}}}"#,
    )
    .expect("write");
    let report = run_checkov(dir.path());
    assert!(
        report["summary"]["failed"].as_u64().unwrap_or(0) >= 3,
        "{}",
        report["summary"]
    );
}

/// Every IAM policy document in a template (trust and permission).
fn policies(t: &Value) -> Vec<(String, &'static str, Value)> {
    let mut out = Vec::new();
    for (id, r) in t["Resources"].as_object().expect("resources") {
        let p = &r["Properties"];
        if let Some(doc) = p.get("AssumeRolePolicyDocument") {
            out.push((id.clone(), "trust", doc.clone()));
        }
        for pol in p["Policies"].as_array().into_iter().flatten() {
            out.push((id.clone(), "inline", pol["PolicyDocument"].clone()));
        }
        if let Some(doc) = p.get("PolicyDocument") {
            out.push((id.clone(), "policy", doc.clone()));
        }
    }
    out
}

fn statements(doc: &Value) -> Vec<&Value> {
    match &doc["Statement"] {
        Value::Array(a) => a.iter().collect(),
        v @ Value::Object(_) => vec![v],
        _ => Vec::new(),
    }
}

fn strings(v: &Value) -> Vec<String> {
    match v {
        Value::String(s) => vec![s.clone()],
        Value::Array(a) => a.iter().flat_map(strings).collect(),
        Value::Object(_) => vec![v.to_string()],
        _ => Vec::new(),
    }
}

#[test]
fn trust_policies_name_exact_principals_and_no_statement_allows_every_action() {
    let dir = tempfile::tempdir().expect("tmp");
    let mut trusts = 0;
    for (stack, t) in render_all(dir.path()) {
        for (id, kind, doc) in policies(&t) {
            for st in statements(&doc) {
                let allow = st["Effect"] == "Allow";
                for a in strings(&st["Action"]) {
                    assert!(
                        !(allow && (a == "*" || a.ends_with(":*"))),
                        "{stack}/{id} ({kind}) allows {a}"
                    );
                }
                if kind == "trust" {
                    trusts += 1;
                    let principal = &st["Principal"];
                    assert_ne!(principal, &Value::String("*".into()), "{stack}/{id}");
                    for (k, v) in principal.as_object().expect("principal map") {
                        for p in strings(v) {
                            assert!(p != "*", "{stack}/{id}: {k} principal `*`");
                        }
                    }
                }
            }
        }
    }
    assert!(trusts >= 20, "only {trusts} trust statements checked");
}

#[test]
fn log_groups_have_retention_and_the_environment_key() {
    let dir = tempfile::tempdir().expect("tmp");
    let mut groups = 0;
    for (stack, t) in render_all(dir.path()) {
        for (id, r) in t["Resources"].as_object().expect("resources") {
            if r["Type"] == "AWS::Logs::LogGroup" {
                groups += 1;
                let p = &r["Properties"];
                assert!(p["RetentionInDays"].as_u64().is_some(), "{stack}/{id}");
                assert!(p.get("KmsKeyId").is_some(), "{stack}/{id}: no KMS key");
            }
            if r["Type"] == "AWS::DynamoDB::Table" {
                let sse = &r["Properties"]["SSESpecification"];
                assert_eq!(sse["SSEEnabled"], true, "{stack}/{id}");
                assert!(sse.get("KMSMasterKeyId").is_some(), "{stack}/{id}");
            }
        }
    }
    assert!(groups >= 10, "only {groups} log groups");
}
