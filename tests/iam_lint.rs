//! IAM policy linting of rendered templates with `parliament` (a linter
//! that ships the IAM Service Authorization Reference offline; installed
//! into `.venv` by `scripts/setup`).
//!
//! parliament reads plain policy JSON, so the CloudFormation intrinsics in
//! a policy (`Ref`, `Fn::GetAtt`, `Fn::Sub`, `Fn::Join`, `Fn::If`, …) are
//! first resolved to realistic values: parameters to the stack's parameter
//! values, pseudo parameters to the stack's account and region, and
//! references to resources to the name, id or ARN that the resource's type
//! gives, built from its own name property where it has one. A reference
//! this module cannot resolve panics, naming it: a new resource type in a
//! policy must be taught here rather than skipped.

use std::collections::BTreeMap;
use std::io::Write;
use std::process::{Command, Stdio};

use serde_json::{Value, json};

/// A rendered stack, as the linter needs it.
pub struct Stack<'a> {
    /// Stack name (used in reports).
    pub name: &'a str,
    /// Target account.
    pub account: &'a str,
    /// Target region.
    pub region: &'a str,
    /// The template, as JSON.
    pub template: &'a Value,
    /// Parameter values of the stack.
    pub parameters: &'a BTreeMap<String, String>,
}

/// One policy document of a template, intrinsics resolved.
#[derive(Debug, Clone)]
pub struct Document {
    /// Stack name.
    pub stack: String,
    /// Logical id of the resource holding it.
    pub resource: String,
    /// Which policy of the resource: `trust`, `inline <name>`, `managed`,
    /// `bucket policy`, `key policy`.
    pub kind: String,
    /// The policy, plain JSON.
    pub policy: Value,
}

impl Document {
    fn id(&self) -> String {
        format!("{} / {} / {}", self.stack, self.resource, self.kind)
    }
}

/// One parliament finding.
#[derive(Debug, Clone)]
pub struct Finding {
    /// `stack / resource / kind` of the document.
    pub document: String,
    /// Statement index, `None` for findings about the whole policy.
    pub statement: Option<usize>,
    /// The statement's `Sid`.
    pub sid: Option<String>,
    /// parliament's issue code, e.g. `RESOURCE_MISMATCH`.
    pub issue: String,
    /// Its severity.
    pub severity: String,
    /// Its title and detail, as one line.
    pub text: String,
    /// The statement, as rendered (for the report).
    pub source: String,
}

impl std::fmt::Display for Finding {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let statement = match (self.statement, &self.sid) {
            (Some(i), Some(sid)) => format!("statement {i} ({sid})"),
            (Some(i), None) => format!("statement {i}"),
            (None, _) => "policy".to_owned(),
        };
        write!(
            f,
            "{} / {statement}: {} [{}] {}\n    {}",
            self.document, self.issue, self.severity, self.text, self.source
        )
    }
}

/// Every policy document of `stack`'s template, resolved. Panics on a
/// property holding a policy (an object with a `Statement`) that is not
/// one of the kinds handled here, so none is silently left out.
pub fn documents(stack: &Stack<'_>) -> Vec<Document> {
    let r = Resolver { stack };
    let mut out = Vec::new();
    let resources = stack.template["Resources"]
        .as_object()
        .expect("template has Resources");
    for (id, res) in resources {
        let kind = res["Type"].as_str().unwrap_or_default();
        let props = &res["Properties"];
        let mut push = |what: String, doc: Value| {
            out.push(Document {
                stack: stack.name.to_owned(),
                resource: id.clone(),
                kind: what,
                policy: doc,
            });
        };
        let mut handled: Vec<&str> = Vec::new();
        match kind {
            "AWS::IAM::Role" | "AWS::IAM::User" | "AWS::IAM::Group" => {
                if let Some(doc) = props.get("AssumeRolePolicyDocument") {
                    handled.push("AssumeRolePolicyDocument");
                    // A trust policy is the role's resource policy: its
                    // statements apply to the role itself, so parliament
                    // checks the actions (sts:AssumeRole, sts:TagSession…)
                    // and condition keys against the role's ARN.
                    let role = r.get_att(id, "Arn");
                    let doc = with_resource(r.resolve(doc), &role);
                    push("trust".into(), doc);
                }
                for p in props["Policies"].as_array().into_iter().flatten() {
                    handled.push("Policies");
                    let name = r.resolve(&p["PolicyName"]);
                    let name = name.as_str().unwrap_or("?");
                    push(format!("inline {name}"), r.resolve(&p["PolicyDocument"]));
                }
            }
            "AWS::IAM::ManagedPolicy" | "AWS::IAM::Policy" | "AWS::IAM::RolePolicy" => {
                handled.push("PolicyDocument");
                push("managed".into(), r.resolve(&props["PolicyDocument"]));
            }
            "AWS::S3::BucketPolicy" => {
                handled.push("PolicyDocument");
                push("bucket policy".into(), r.resolve(&props["PolicyDocument"]));
            }
            "AWS::KMS::Key" => {
                handled.push("KeyPolicy");
                // In a key policy `"Resource": "*"` means this key
                // (https://docs.aws.amazon.com/kms/latest/developerguide/key-policies.html);
                // give parliament the key's ARN so it checks the actions
                // against a key.
                let key = r.get_att(id, "Arn");
                let doc = with_resource(r.resolve(&props["KeyPolicy"]), &key);
                push("key policy".into(), doc);
            }
            _ => {}
        }
        for (name, value) in props.as_object().into_iter().flatten() {
            assert!(
                handled.contains(&name.as_str()) || !holds_policy(value),
                "{}/{id}: {kind}.{name} holds a policy the IAM lint does not check yet; \
                 teach tests/iam_lint.rs its kind",
                stack.name
            );
        }
    }
    out
}

fn holds_policy(v: &Value) -> bool {
    match v {
        Value::Object(m) => m.contains_key("Statement") || m.values().any(holds_policy),
        Value::Array(a) => a.iter().any(holds_policy),
        _ => false,
    }
}

/// `doc` with every statement's `Resource` of `"*"` (or none, as in trust
/// policies) replaced by `resource`.
fn with_resource(mut doc: Value, resource: &Value) -> Value {
    let fix = |st: &mut Value| {
        let star = match st.get("Resource") {
            None => true,
            Some(Value::String(s)) => s == "*",
            Some(Value::Array(a)) => a.len() == 1 && a[0] == "*",
            Some(_) => false,
        };
        if star && st.get("NotResource").is_none() {
            st["Resource"] = resource.clone();
        }
    };
    match &mut doc["Statement"] {
        Value::Array(a) => a.iter_mut().for_each(fix),
        st @ Value::Object(_) => fix(st),
        _ => {}
    }
    doc
}

/// Resolves intrinsic functions against one stack.
struct Resolver<'a, 'b> {
    stack: &'a Stack<'b>,
}

impl Resolver<'_, '_> {
    fn partition(&self) -> &'static str {
        harmonix_core::provider::common::partition(self.stack.region)
    }

    fn resource(&self, id: &str) -> Option<&Value> {
        self.stack.template["Resources"].get(id)
    }

    fn fail(&self, what: &str) -> ! {
        panic!(
            "{}: the IAM lint cannot resolve {what}; teach tests/iam_lint.rs",
            self.stack.name
        )
    }

    /// `v` with every intrinsic function replaced by its value.
    fn resolve(&self, v: &Value) -> Value {
        match v {
            Value::Array(a) => Value::Array(
                a.iter()
                    .map(|x| self.resolve(x))
                    .filter(|x| !is_no_value(x))
                    .collect(),
            ),
            Value::Object(m) if m.len() == 1 => {
                let (k, arg) = m.iter().next().expect("one entry");
                match k.as_str() {
                    "Ref" => self.ref_(arg.as_str().unwrap_or_else(|| self.fail("a Ref"))),
                    "Fn::GetAtt" => {
                        let (id, att) = match arg {
                            Value::Array(a) if a.len() == 2 => {
                                (a[0].as_str().unwrap_or(""), a[1].as_str().unwrap_or(""))
                            }
                            Value::String(s) => s.split_once('.').unwrap_or((s, "")),
                            _ => self.fail(&format!("Fn::GetAtt {arg}")),
                        };
                        self.get_att(id, att)
                    }
                    "Fn::Sub" => self.sub(arg),
                    "Fn::Join" => {
                        let sep = arg[0].as_str().unwrap_or_else(|| self.fail("Fn::Join"));
                        let parts = self.resolve(&arg[1]);
                        let parts: Vec<String> = parts
                            .as_array()
                            .unwrap_or_else(|| self.fail("Fn::Join of a non-list"))
                            .iter()
                            .map(|p| self.text(p))
                            .collect();
                        Value::String(parts.join(sep))
                    }
                    "Fn::Select" => {
                        let i = self.text(&self.resolve(&arg[0]));
                        let i: usize = i.parse().unwrap_or_else(|_| self.fail("Fn::Select"));
                        self.resolve(&arg[1])
                            .get(i)
                            .cloned()
                            .unwrap_or_else(|| self.fail("Fn::Select out of range"))
                    }
                    "Fn::If" => {
                        let name = arg[0].as_str().unwrap_or_else(|| self.fail("Fn::If"));
                        let branch = if self.condition(name) { 1 } else { 2 };
                        self.resolve(&arg[branch])
                    }
                    "Fn::GetAZs" => {
                        json!(["a", "b", "c"].map(|z| format!("{}{z}", self.stack.region)))
                    }
                    other if other.starts_with("Fn::") => self.fail(other),
                    _ => Value::Object(
                        m.iter()
                            .map(|(k, x)| (k.clone(), self.resolve(x)))
                            .collect(),
                    ),
                }
            }
            Value::Object(m) => Value::Object(
                m.iter()
                    .map(|(k, x)| (k.clone(), self.resolve(x)))
                    .filter(|(_, x)| !is_no_value(x))
                    .collect(),
            ),
            other => other.clone(),
        }
    }

    fn text(&self, v: &Value) -> String {
        match v {
            Value::String(s) => s.clone(),
            Value::Number(n) => n.to_string(),
            Value::Bool(b) => b.to_string(),
            other => self.fail(&format!("{other} as a string")),
        }
    }

    fn condition(&self, name: &str) -> bool {
        let c = &self.stack.template["Conditions"][name];
        if c.is_null() {
            self.fail(&format!("condition {name}"));
        }
        self.truth(c)
    }

    fn truth(&self, c: &Value) -> bool {
        let (k, arg) = c
            .as_object()
            .and_then(|m| m.iter().next())
            .unwrap_or_else(|| self.fail(&format!("condition {c}")));
        let list = || arg.as_array().cloned().unwrap_or_default();
        match k.as_str() {
            "Fn::Equals" => {
                let l = list();
                self.resolve(&l[0]) == self.resolve(&l[1])
            }
            "Fn::Not" => !self.truth(&list()[0]),
            "Fn::And" => list().iter().all(|x| self.truth(x)),
            "Fn::Or" => list().iter().any(|x| self.truth(x)),
            "Condition" => self.condition(arg.as_str().unwrap_or_default()),
            other => self.fail(&format!("condition function {other}")),
        }
    }

    fn sub(&self, arg: &Value) -> Value {
        let (text, vars) = match arg {
            Value::String(s) => (s.as_str(), None),
            Value::Array(a) if a.len() == 2 => (
                a[0].as_str().unwrap_or_else(|| self.fail("Fn::Sub")),
                a[1].as_object(),
            ),
            _ => self.fail(&format!("Fn::Sub {arg}")),
        };
        let mut out = String::new();
        let mut rest = text;
        while let Some(start) = rest.find("${") {
            out.push_str(&rest[..start]);
            let after = &rest[start + 2..];
            let end = after
                .find('}')
                .unwrap_or_else(|| self.fail(&format!("Fn::Sub {text}")));
            let name = &after[..end];
            if let Some(literal) = name.strip_prefix('!') {
                out.push_str("${");
                out.push_str(literal);
                out.push('}');
            } else if let Some(v) = vars.and_then(|m| m.get(name)) {
                out.push_str(&self.text(&self.resolve(v)));
            } else if let Some((id, att)) = name.split_once('.')
                && !name.starts_with("AWS::")
            {
                out.push_str(&self.text(&self.get_att(id, att)));
            } else {
                out.push_str(&self.text(&self.ref_(name)));
            }
            rest = &after[end + 1..];
        }
        out.push_str(rest);
        Value::String(out)
    }

    fn ref_(&self, name: &str) -> Value {
        let s = self.stack;
        match name {
            "AWS::AccountId" => return json!(s.account),
            "AWS::Region" => return json!(s.region),
            "AWS::Partition" => return json!(self.partition()),
            "AWS::URLSuffix" => return json!("amazonaws.com"),
            "AWS::StackName" => return json!(s.name),
            "AWS::StackId" => {
                return json!(format!(
                    "arn:{}:cloudformation:{}:{}:stack/{}/0a1b2c3d-0000-4000-8000-000000000000",
                    self.partition(),
                    s.region,
                    s.account,
                    s.name
                ));
            }
            "AWS::NoValue" => return json!({ "Ref": "AWS::NoValue" }),
            _ => {}
        }
        if let Some(v) = s.parameters.get(name) {
            return json!(v);
        }
        if let Some(p) = s.template["Parameters"].get(name) {
            return p
                .get("Default")
                .cloned()
                .unwrap_or_else(|| self.fail(&format!("parameter {name} (no value)")));
        }
        let Some(r) = self.resource(name) else {
            self.fail(&format!("Ref {name}"))
        };
        let kind = r["Type"].as_str().unwrap_or_default();
        match kind {
            // Types whose Ref is their name.
            "AWS::EKS::Cluster"
            | "AWS::ECS::Cluster"
            | "AWS::DynamoDB::Table"
            | "AWS::Logs::LogGroup"
            | "AWS::IAM::Role"
            | "AWS::IAM::InstanceProfile"
            | "AWS::S3::Bucket"
            | "AWS::Lambda::Function"
            | "AWS::SSM::Parameter"
            | "AWS::AutoScaling::AutoScalingGroup" => json!(self.name_of(name)),
            "AWS::SecretsManager::Secret" | "AWS::IAM::ManagedPolicy" => self.get_att(name, "Arn"),
            "AWS::KMS::Key" => json!("0a1b2c3d-1111-4222-8333-444455556666"),
            "AWS::ApiGateway::RestApi" => json!("a1b2c3d4e5"),
            _ => self.fail(&format!("Ref {name} of type {kind}")),
        }
    }

    /// The physical name of resource `id`: its name property, else the
    /// shape of a name CloudFormation generates.
    fn name_of(&self, id: &str) -> String {
        let r = self.resource(id).expect("resource exists");
        let prop = match r["Type"].as_str().unwrap_or_default() {
            "AWS::EKS::Cluster" | "AWS::SecretsManager::Secret" | "AWS::SSM::Parameter" => "Name",
            "AWS::ECS::Cluster" => "ClusterName",
            "AWS::DynamoDB::Table" => "TableName",
            "AWS::Logs::LogGroup" => "LogGroupName",
            "AWS::IAM::Role" => "RoleName",
            "AWS::IAM::InstanceProfile" => "InstanceProfileName",
            "AWS::IAM::ManagedPolicy" => "ManagedPolicyName",
            "AWS::S3::Bucket" => "BucketName",
            "AWS::Lambda::Function" => "FunctionName",
            "AWS::AutoScaling::AutoScalingGroup" => "AutoScalingGroupName",
            _ => "",
        };
        match r["Properties"].get(prop) {
            Some(v) if !prop.is_empty() => self.text(&self.resolve(v)),
            _ => format!("{}-{id}-1a2b3c4d5e6f", self.stack.name).to_lowercase(),
        }
    }

    fn get_att(&self, id: &str, att: &str) -> Value {
        let Some(r) = self.resource(id) else {
            self.fail(&format!("Fn::GetAtt {id}.{att}"))
        };
        let kind = r["Type"].as_str().unwrap_or_default();
        let (p, region, account) = (self.partition(), self.stack.region, self.stack.account);
        let arn =
            |service: &str, rest: &str| format!("arn:{p}:{service}:{region}:{account}:{rest}");
        let v = match (kind, att) {
            ("AWS::S3::Bucket", "Arn") => format!("arn:{p}:s3:::{}", self.name_of(id)),
            ("AWS::DynamoDB::Table", "Arn") => {
                arn("dynamodb", &format!("table/{}", self.name_of(id)))
            }
            ("AWS::ECS::Cluster", "Arn") => arn("ecs", &format!("cluster/{}", self.name_of(id))),
            ("AWS::EKS::Cluster", "Arn") => arn("eks", &format!("cluster/{}", self.name_of(id))),
            ("AWS::KMS::Key", "Arn") => arn("kms", "key/0a1b2c3d-1111-4222-8333-444455556666"),
            ("AWS::Logs::LogGroup", "Arn") => {
                arn("logs", &format!("log-group:{}:*", self.name_of(id)))
            }
            ("AWS::IAM::Role", "Arn") => {
                format!("arn:{p}:iam::{account}:role/{}", self.name_of(id))
            }
            ("AWS::IAM::InstanceProfile", "Arn") => {
                format!(
                    "arn:{p}:iam::{account}:instance-profile/{}",
                    self.name_of(id)
                )
            }
            ("AWS::IAM::ManagedPolicy", "Arn" | "PolicyArn") => {
                format!("arn:{p}:iam::{account}:policy/{}", self.name_of(id))
            }
            ("AWS::Lambda::Function", "Arn") => {
                arn("lambda", &format!("function:{}", self.name_of(id)))
            }
            ("AWS::SecretsManager::Secret", "Arn" | "Id") => arn(
                "secretsmanager",
                &format!("secret:{}-AbCdEf", self.name_of(id)),
            ),
            ("AWS::SSM::Parameter", "Arn") => {
                let name = self.name_of(id);
                arn(
                    "ssm",
                    &format!("parameter/{}", name.trim_start_matches('/')),
                )
            }
            ("AWS::ApiGateway::RestApi", "RootResourceId") => "abc123def4".to_owned(),
            _ => self.fail(&format!("Fn::GetAtt {id}.{att} of type {kind}")),
        };
        Value::String(v)
    }
}

fn is_no_value(v: &Value) -> bool {
    v.get("Ref").and_then(Value::as_str) == Some("AWS::NoValue")
}

/// Run parliament on `docs`; every finding, in document order.
pub fn lint(docs: &[Document]) -> Vec<Finding> {
    let python = harmonix_tests::venv_tool("python");
    let script = harmonix_tests::repo_root().join("tests/iam_lint.py");
    let input: Vec<Value> = docs
        .iter()
        .map(|d| json!({ "id": d.id(), "policy": d.policy }))
        .collect();
    let mut child = Command::new(python)
        .arg(&script)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("runs the venv's python");
    child
        .stdin
        .take()
        .expect("stdin")
        .write_all(serde_json::to_string(&input).expect("json").as_bytes())
        .expect("writes the policies");
    let out = child.wait_with_output().expect("parliament finishes");
    assert!(
        out.status.success(),
        "{} failed (is parliament installed? run `scripts/setup`):\n{}",
        script.display(),
        String::from_utf8_lossy(&out.stderr)
    );
    let found: Vec<Value> = serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
        panic!(
            "iam_lint.py printed no JSON ({e}):\n{}",
            String::from_utf8_lossy(&out.stdout)
        )
    });
    let by_id: BTreeMap<String, &Document> = docs.iter().map(|d| (d.id(), d)).collect();
    found
        .iter()
        .map(|f| {
            let document = f["id"].as_str().unwrap_or_default().to_owned();
            let statement = f["statement"].as_u64().map(|i| i as usize);
            let source = statement
                .and_then(|i| {
                    let doc = &by_id.get(&document)?.policy;
                    match &doc["Statement"] {
                        Value::Array(a) => a.get(i).map(Value::to_string),
                        st => Some(st.to_string()),
                    }
                })
                .unwrap_or_default();
            let detail = match &f["detail"] {
                Value::String(s) => s.clone(),
                Value::Null => String::new(),
                other => other.to_string(),
            };
            Finding {
                document,
                statement,
                sid: f["sid"].as_str().map(str::to_owned),
                issue: f["issue"].as_str().unwrap_or_default().to_owned(),
                severity: f["severity"].as_str().unwrap_or_default().to_owned(),
                text: format!("{}: {detail}", f["title"].as_str().unwrap_or_default()),
                source,
            }
        })
        .collect()
}
