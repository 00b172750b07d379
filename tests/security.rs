//! Template security: `checkov` on every rendered template (zero failed
//! checks; each suppression carries a written reason), plus structural
//! checks checkov does not make: trust policies name exact principals,
//! log groups have a retention and the environment's KMS key, and no
//! policy grants `*` actions.

use std::path::Path;
use std::process::Command;

use harmonix_core::provider::{Registry, StackDefinition};
use harmonix_core::{render, spec};
use harmonix_tests::{checkov, example_specs, repo_root};
use serde_json::Value;

/// Every example spec, plus variants that switch on the optional parts
/// (tracing and reserved concurrency on serverless; cluster admin for the
/// operations role and reserved concurrency on private EKS), rendered.
fn rendered() -> Vec<StackDefinition> {
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
                "    serverless:\n      tracing: true\n      healthReservedConcurrency: 2\n",
            ),
    ));
    let eks = std::fs::read_to_string(repo_root().join("examples/specs/eks-private.yaml"))
        .expect("example");
    texts.push((
        "eks-private with cluster admin for the platform".into(),
        eks.replace("name: core-prod\n", "name: core-admin\n").replace(
            "    eks:\n",
            "    eks:\n      operationsClusterAdmin: true\n      kubectlReservedConcurrency: 2\n",
        ),
    ));
    let mut out = Vec::new();
    for (name, text) in texts {
        let valid = spec::parse_str(&text, &name)
            .and_then(|f| spec::validate(f, &registry, &name))
            .unwrap_or_else(|e| panic!("{name} must validate: {e}"));
        out.extend(render::stacks(&valid, &registry).expect("renders"));
    }
    // The account/region bootstrap stack is checked like the rest.
    out.push(harmonix_core::provider::bootstrap_stack(
        "123456789012",
        "us-east-1",
    ));
    out
}

/// [`rendered`], written into `dir`; each stack's name and template.
fn render_all(dir: &Path) -> Vec<(String, Value)> {
    let stacks = rendered();
    render::write_stacks(&stacks, dir).expect("writes");
    stacks
        .into_iter()
        .map(|s| {
            let v = serde_json::to_value(&s.template).expect("json");
            (s.name, v)
        })
        .collect()
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

#[path = "iam_lint.rs"]
mod iam_lint;

/// A parliament finding judged acceptable, with the reason. Each entry
/// names the policies (resource and policy), the statement and the issue it
/// covers, and the stack when it is one template's own; an entry that no
/// finding uses fails the test, so the list cannot outlive what it excuses.
struct Allowed {
    /// Stack name, or `None` for every stack the policy appears in.
    stack: Option<&'static str>,
    /// `(logical id, policy)` pairs, e.g. `("OperationsRole", "inline operations")`.
    at: &'static [(&'static str, &'static str)],
    sid: &'static str,
    issue: &'static str,
    reason: &'static str,
}

const ENVIRONMENT_ROLES: &[(&str, &str)] = &[
    ("OperationsRole", "inline operations"),
    ("ProvisioningRole", "inline provisioning"),
];

const ALLOWED: &[Allowed] = &[
    Allowed {
        stack: None,
        at: &[("EnvironmentKey", "key policy")],
        sid: "AccountAdministration",
        issue: "RESOURCE_MISMATCH",
        reason: "AWS's default key policy: `kms:*` for the account root, so IAM policies govern the key \
                 (https://docs.aws.amazon.com/kms/latest/developerguide/key-policies.html); \
                 actions without a key resource (CreateKey, ListKeys, aliases) simply never apply in a key policy",
    },
    Allowed {
        stack: None,
        at: ENVIRONMENT_ROLES,
        sid: "ListInCluster",
        issue: "RESOURCE_STAR",
        reason: "ecs:ListTasks names container instances as its resource, which Fargate clusters do not have; \
                 `*` with the ecs:cluster condition is what works (https://github.com/awsdocs/amazon-ecs-developer-guide/issues/211)",
    },
    Allowed {
        stack: Some("opa-idp-environment"),
        at: ENVIRONMENT_ROLES,
        sid: "ListInStageClusters",
        issue: "RESOURCE_STAR",
        reason: "ecs:ListTasks on each stage's Fargate cluster: `*` with the ecs:cluster condition, as for ListInCluster",
    },
    Allowed {
        stack: None,
        at: &[("ProvisioningRole", "inline provisioning")],
        sid: "TaskDefinitions",
        issue: "RESOURCE_STAR",
        reason: "ECS applications name their own task definition families (nothing in the spec fixes them), so \
                 RegisterTaskDefinition cannot be scoped to a family ARN; DeregisterTaskDefinition has no resource type",
    },
];

impl Allowed {
    fn covers(&self, f: &iam_lint::Finding) -> bool {
        let mut parts = f.document.splitn(3, " / ");
        let (stack, resource, kind) = (parts.next(), parts.next(), parts.next());
        self.stack.is_none_or(|s| Some(s) == stack)
            && self
                .at
                .iter()
                .any(|(r, k)| Some(*r) == resource && Some(*k) == kind)
            && Some(self.sid) == f.sid.as_deref()
            && self.issue == f.issue
    }
}

/// Every policy document of `stacks`, intrinsics resolved.
fn policy_documents(stacks: &[StackDefinition]) -> Vec<iam_lint::Document> {
    let mut docs = Vec::new();
    for s in stacks {
        let template = serde_json::to_value(&s.template).expect("json");
        docs.extend(iam_lint::documents(&iam_lint::Stack {
            name: &s.name,
            account: &s.account,
            region: &s.region,
            template: &template,
            parameters: &s.parameters,
        }));
    }
    docs
}

#[test]
fn parliament_finds_nothing_unjustified_in_any_policy_of_any_template() {
    let docs = policy_documents(&rendered());
    for kind in ["trust", "inline operations", "key policy", "bucket policy"] {
        assert!(
            docs.iter().any(|d| d.kind == kind),
            "no {kind} document was checked"
        );
    }
    assert!(docs.len() >= 100, "only {} policy documents", docs.len());
    let findings = iam_lint::lint(&docs);
    let mut used = vec![false; ALLOWED.len()];
    let mut report = Vec::new();
    for f in &findings {
        match ALLOWED.iter().position(|a| a.covers(f)) {
            Some(i) => used[i] = true,
            None => report.push(f.to_string()),
        }
    }
    assert!(
        report.is_empty(),
        "parliament found {} problem(s) in the rendered policies (fix the policy, or add an \
         entry with its reason to ALLOWED in tests/security.rs):\n{}",
        report.len(),
        report.join("\n")
    );
    for (a, used) in ALLOWED.iter().zip(used) {
        assert!(
            used,
            "ALLOWED entry {:?}/{}/{} matches no finding any more: remove it",
            a.at, a.sid, a.issue
        );
        assert!(a.reason.len() > 30, "{}: give the reason", a.sid);
    }
}

/// A hand-written stack for the tests below.
fn stack_of<'a>(
    template: &'a Value,
    parameters: &'a std::collections::BTreeMap<String, String>,
) -> iam_lint::Stack<'a> {
    iam_lint::Stack {
        name: "bad",
        account: "123456789012",
        region: "us-east-1",
        template,
        parameters,
    }
}

#[test]
fn parliament_reports_a_wrong_policy_naming_template_resource_and_statement() {
    // Proves the check above can fail: an action on a resource type it does
    // not authorize against, and one that only works on `*`.
    let template = serde_json::json!({
        "Resources": {
            "Table": { "Type": "AWS::DynamoDB::Table", "Properties": { "TableName": "bad-table" } },
            "BadRole": { "Type": "AWS::IAM::Role", "Properties": {
                "RoleName": "bad-role",
                "AssumeRolePolicyDocument": { "Version": "2012-10-17", "Statement": [{
                    "Effect": "Allow", "Principal": { "Service": "lambda.amazonaws.com" },
                    "Action": "sts:AssumeRole"
                }] },
                "Policies": [{ "PolicyName": "bad", "PolicyDocument": { "Version": "2012-10-17", "Statement": [
                    { "Sid": "WrongResource", "Effect": "Allow", "Action": ["s3:GetObject"],
                      "Resource": { "Fn::GetAtt": ["Table", "Arn"] } },
                    { "Sid": "NeedsStar", "Effect": "Allow", "Action": ["ec2:DescribeInstances"],
                      "Resource": { "Fn::Sub": "arn:${AWS::Partition}:ec2:${AWS::Region}:${AWS::AccountId}:instance/i-0123" } }
                ] } }]
            } }
        }
    });
    let parameters = std::collections::BTreeMap::new();
    let docs = iam_lint::documents(&stack_of(&template, &parameters));
    let kinds: Vec<&str> = docs.iter().map(|d| d.kind.as_str()).collect();
    assert_eq!(kinds, ["trust", "inline bad"]);
    let findings = iam_lint::lint(&docs);
    let report: Vec<String> = findings.iter().map(ToString::to_string).collect();
    for sid in ["WrongResource", "NeedsStar"] {
        let f = findings
            .iter()
            .find(|f| f.sid.as_deref() == Some(sid))
            .unwrap_or_else(|| panic!("no finding for {sid}: {report:#?}"));
        assert_eq!(f.issue, "RESOURCE_MISMATCH", "{f}");
        let line = f.to_string();
        assert!(
            line.starts_with("bad / BadRole / inline bad / statement "),
            "{line}"
        );
        assert!(line.contains(&format!("({sid})")), "{line}");
    }
    // The report shows the statement with its intrinsics resolved.
    assert!(
        report
            .iter()
            .any(|l| l.contains("arn:aws:dynamodb:us-east-1:123456789012:table/bad-table")),
        "{report:#?}"
    );
    // The trust policy is fine: nothing is reported for it.
    assert!(
        findings.iter().all(|f| !f.document.ends_with("/ trust")),
        "{report:#?}"
    );
}

#[test]
fn the_iam_lint_resolves_intrinsics_to_the_arns_of_the_referenced_resource_types() {
    let template = serde_json::json!({
        "Parameters": { "Prefix": { "Type": "String" }, "Extra": { "Type": "String", "Default": "x" } },
        "Conditions": { "IsProd": { "Fn::Equals": [{ "Ref": "Prefix" }, "prod"] } },
        "Resources": {
            "Logs": { "Type": "AWS::Logs::LogGroup", "Properties": { "LogGroupName": { "Fn::Sub": "/${Prefix}/logs" } } },
            "Secret": { "Type": "AWS::SecretsManager::Secret", "Properties": {} },
            "Key": { "Type": "AWS::KMS::Key", "Properties": { "KeyPolicy": { "Version": "2012-10-17", "Statement": [{
                "Effect": "Allow", "Principal": { "AWS": { "Fn::Sub": "arn:${AWS::Partition}:iam::${AWS::AccountId}:root" } },
                "Action": "kms:Decrypt", "Resource": "*"
            }] } } },
            "Role": { "Type": "AWS::IAM::Role", "Properties": {
                "RoleName": { "Fn::Join": ["-", [{ "Ref": "Prefix" }, "role"]] },
                "AssumeRolePolicyDocument": { "Version": "2012-10-17", "Statement": [{
                    "Effect": "Allow", "Principal": { "Service": "ecs-tasks.amazonaws.com" }, "Action": "sts:AssumeRole",
                    "Condition": { "StringEquals": { "aws:SourceAccount": { "Ref": "AWS::AccountId" } } }
                }] },
                "Policies": [{ "PolicyName": "p", "PolicyDocument": { "Version": "2012-10-17", "Statement": [{
                    "Effect": "Allow",
                    "Action": ["logs:PutLogEvents", "secretsmanager:GetSecretValue"],
                    "Resource": [
                        { "Fn::GetAtt": ["Logs", "Arn"] },
                        { "Ref": "Secret" },
                        { "Fn::Sub": ["arn:${AWS::Partition}:s3:::${B}/${Extra}", { "B": { "Fn::If": ["IsProd", "prod-bucket", "dev-bucket"] } }] },
                        { "Fn::If": ["IsProd", "arn:aws:s3:::only-prod", { "Ref": "AWS::NoValue" }] }
                    ]
                }] } }]
            } }
        }
    });
    let parameters = std::collections::BTreeMap::from([("Prefix".to_owned(), "dev".to_owned())]);
    let docs = iam_lint::documents(&stack_of(&template, &parameters));
    let by_kind = |k: &str| {
        docs.iter()
            .find(|d| d.kind == k)
            .unwrap_or_else(|| panic!("no {k}"))
            .policy
            .clone()
    };
    let inline = by_kind("inline p");
    assert_eq!(
        inline["Statement"][0]["Resource"],
        serde_json::json!([
            "arn:aws:logs:us-east-1:123456789012:log-group:/dev/logs:*",
            "arn:aws:secretsmanager:us-east-1:123456789012:secret:bad-secret-1a2b3c4d5e6f-AbCdEf",
            "arn:aws:s3:::dev-bucket/x"
        ])
    );
    // A trust policy applies to the role itself; a key policy's `*` is the key.
    let trust = by_kind("trust");
    assert_eq!(
        trust["Statement"][0]["Resource"],
        "arn:aws:iam::123456789012:role/dev-role"
    );
    assert_eq!(
        trust["Statement"][0]["Condition"]["StringEquals"]["aws:SourceAccount"],
        "123456789012"
    );
    let key = by_kind("key policy");
    assert_eq!(
        key["Statement"][0]["Resource"],
        "arn:aws:kms:us-east-1:123456789012:key/0a1b2c3d-1111-4222-8333-444455556666"
    );
    assert_eq!(
        key["Statement"][0]["Principal"]["AWS"],
        "arn:aws:iam::123456789012:root"
    );
}
