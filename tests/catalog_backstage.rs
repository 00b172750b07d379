//! The catalog Harmonix writes, checked with Backstage's own model:
//! every example spec's entities (before and after deployment) are written
//! with `write_catalog` and validated by `tests/node/validate-catalog.mjs`
//! (@backstage/catalog-model policies, built-in kind validators and the
//! JSON schemas of the Harmonix kinds in
//! `backstage/plugins/harmonix-common/schemas/`). Negative
//! cases prove the validator rejects what it should; merge tests use
//! `tests/data/catalog/existing.yaml`.

use std::path::{Path, PathBuf};
use std::process::Command;

use harmonix_core::catalog::{self, CatalogError, Entity, WriteOutcome};
use harmonix_core::provider::{Names, Registry, StackDefinition, StackOutputs};
use harmonix_core::spec::{self, ProviderKind, ValidSpec};
use harmonix_tests::backstage::{Verdict, validate};
use harmonix_tests::{example_specs, repo_root};
use serde_json::{Value, json};

fn load(path: &Path) -> ValidSpec {
    spec::load(path, &Registry::builtin())
        .unwrap_or_else(|e| panic!("{} does not load: {e}", path.display()))
}

fn example(name: &str) -> ValidSpec {
    load(&repo_root().join("examples/specs").join(name))
}

fn kebab(key: &str) -> String {
    let mut s = String::new();
    for (i, c) in key.chars().enumerate() {
        if c.is_ascii_uppercase() {
            if i > 0 {
                s.push('-');
            }
            s.push(c.to_ascii_lowercase());
        } else {
            s.push(c);
        }
    }
    s
}

/// A value shaped like what CloudFormation would return for `key`.
fn fake_output(key: &str, stack: &StackDefinition, kind: ProviderKind) -> String {
    let (account, region, name) = (&stack.account, &stack.region, &stack.name);
    let k = kebab(key);
    let svc = if kind == ProviderKind::Eks {
        "eks"
    } else {
        "ecs"
    };
    match key {
        "VpcId" => "vpc-0f1e2d3c4b5a69788".to_owned(),
        "StageName" => "dev".to_owned(),
        "ClusterArn" => format!("arn:aws:{svc}:{region}:{account}:cluster/{name}-cluster"),
        _ if key.ends_with("SubnetIds") => {
            "subnet-0a1b2c3d4e5f60718,subnet-0b1c2d3e4f5a60718,subnet-0c1d2e3f4a5b60718".to_owned()
        }
        _ if key.ends_with("SecurityGroupId") => "sg-0a1b2c3d4e5f60718".to_owned(),
        _ if key.ends_with("RoleArn") => format!(
            "arn:aws:iam::{account}:role/{name}-{}",
            k.trim_end_matches("-arn")
        ),
        _ if key.ends_with("Arn") && (key.contains("Lambda") || key.contains("Function")) => {
            format!(
                "arn:aws:lambda:{region}:{account}:function:{name}-{}",
                k.trim_end_matches("-arn")
            )
        }
        _ if key.ends_with("TableArn") => {
            format!("arn:aws:dynamodb:{region}:{account}:table/{name}-audit")
        }
        _ if key.ends_with("KeyArn") => {
            format!("arn:aws:kms:{region}:{account}:key/0a1b2c3d-4e5f-6a7b-8c9d-0e1f2a3b4c5d")
        }
        _ if key.ends_with("Arn") => {
            format!("arn:aws:cloudformation:{region}:{account}:{k}/{name}")
        }
        _ if key.ends_with("Url") || key.ends_with("Endpoint") => {
            format!("https://a1b2c3d4e5.execute-api.{region}.amazonaws.com/{k}")
        }
        _ if key.ends_with("Id") => "a1b2c3d4e5".to_owned(),
        _ => format!("{name}-{k}"),
    }
}

/// Outputs for every stack of every provider, one value per output the
/// stack's template declares.
fn fake_outputs(spec: &ValidSpec, registry: &Registry) -> StackOutputs {
    let mut all = StackOutputs::new();
    for p in spec.providers() {
        let provider = registry.get(p.kind).expect("built-in kind");
        for stack in provider.stacks(p) {
            let outputs = stack
                .template
                .outputs
                .keys()
                .map(|k| (k.clone(), fake_output(k, &stack, p.kind)))
                .collect();
            all.insert(stack.name.clone(), outputs);
        }
    }
    all
}

fn file_verdicts<'v>(verdicts: &'v [Verdict], file: &Path) -> Vec<&'v Verdict> {
    let f = file.display().to_string();
    verdicts.iter().filter(|v| v.file == f).collect()
}

#[test]
fn every_example_spec_validates_with_backstage() {
    let registry = Registry::builtin();
    let tmp = tempfile::tempdir().expect("temp dir");
    let specs = example_specs();
    assert!(
        specs.len() >= 7,
        "expected the example specs, found {specs:?}"
    );

    let mut written: Vec<(PathBuf, Vec<Entity>)> = Vec::new();
    for path in &specs {
        let stem = path
            .file_stem()
            .and_then(|s| s.to_str())
            .expect("file stem");
        let spec = load(path);
        let outputs = fake_outputs(&spec, &registry);
        for (variant, outs) in [
            ("no-outputs", StackOutputs::new()),
            ("outputs", outputs.clone()),
        ] {
            let entities = catalog::entities(&spec, &registry, &outs)
                .unwrap_or_else(|e| panic!("{stem} ({variant}): {e}"));
            // One provider entity per provider, one environment entity per
            // environment; any other entity a kind adds (a `Resource` per
            // platform stage) depends on its provider's entity.
            let count = |kind: &str| entities.iter().filter(|e| e.kind == kind).count();
            assert_eq!(
                count(catalog::KIND_PROVIDER),
                spec.providers().len(),
                "{stem} ({variant}): one entity per provider"
            );
            assert_eq!(
                count(catalog::KIND_ENVIRONMENT),
                spec.environments().len(),
                "{stem} ({variant}): one entity per environment"
            );
            for e in entities
                .iter()
                .filter(|e| e.kind != catalog::KIND_PROVIDER && e.kind != catalog::KIND_ENVIRONMENT)
            {
                let refs: Vec<String> = spec
                    .providers()
                    .map(|p| catalog::provider_ref(&p.name))
                    .collect();
                assert!(
                    e.spec["dependsOn"]
                        .as_array()
                        .is_some_and(|d| d.iter().any(|r| refs.iter().any(|x| x == r))),
                    "{stem} ({variant}): {} depends on no provider",
                    e.entity_ref()
                );
            }
            let file = tmp
                .path()
                .join(format!("{stem}-{variant}"))
                .join("catalog-info.yaml");
            let outcome = catalog::write_catalog(&file, &entities)
                .unwrap_or_else(|e| panic!("{stem} ({variant}): {e}"));
            assert_eq!(outcome, WriteOutcome::Created, "{stem} ({variant})");
            written.push((file, entities));
        }

        // With outputs, the provider entities carry the deployed values.
        let deployed = catalog::entities(&spec, &registry, &outputs).expect("entities");
        for p in spec.providers() {
            let entity = deployed
                .iter()
                .find(|e| e.kind == catalog::KIND_PROVIDER && e.name() == p.name)
                .expect("the provider's entity");
            // The provider entity describes the environment stack (a
            // platform's stages have entities of their own).
            let stacks = [Names::of(&p).stack];
            let mut fields = vec![
                ("VpcId", "vpc"),
                ("OperationsRoleArn", "operationRole"),
                ("ProvisioningRoleArn", "provisioningRole"),
                ("AuditTableName", "auditTable"),
            ];
            if matches!(p.kind, ProviderKind::Ecs | ProviderKind::EcsEc2) {
                fields.push(("ClusterName", "clusterName"));
            }
            for (output, field) in fields {
                let values: Vec<&String> = stacks
                    .iter()
                    .filter_map(|s| outputs.get(s).and_then(|o| o.get(output)))
                    .collect();
                if values.is_empty() {
                    continue;
                }
                let got = entity
                    .metadata
                    .get(field)
                    .and_then(Value::as_str)
                    .unwrap_or_default();
                assert!(
                    values.iter().any(|v| v.as_str() == got),
                    "{stem}: provider {} metadata.{field} = {got:?}, expected the stack output {output} ({values:?})",
                    p.name
                );
            }
        }
    }

    let files: Vec<PathBuf> = written.iter().map(|(f, _)| f.clone()).collect();
    let (code, verdicts) = validate(&files);
    let failures: Vec<&Verdict> = verdicts.iter().filter(|v| !v.ok).collect();
    assert!(
        failures.is_empty(),
        "Backstage rejects entities: {failures:#?}"
    );
    assert_eq!(code, Some(0), "validator exit code");
    for (file, entities) in &written {
        let got = file_verdicts(&verdicts, file);
        assert_eq!(
            got.len(),
            entities.len(),
            "{}: one verdict per entity: {got:#?}",
            file.display()
        );
        for (v, e) in got.iter().zip(entities) {
            assert!(v.ok);
            assert_eq!(
                v.kind.as_deref(),
                Some(e.kind.as_str()),
                "{}",
                file.display()
            );
            assert_eq!(v.name.as_deref(), Some(e.name()), "{}", file.display());
        }
    }
}

/// A provider entity and an environment entity that Backstage accepts.
fn valid_pair() -> (Entity, Entity) {
    let spec = example("multi.yaml");
    let all =
        catalog::entities(&spec, &Registry::builtin(), &StackOutputs::new()).expect("entities");
    let provider = all
        .iter()
        .find(|e| e.kind == catalog::KIND_PROVIDER && e.metadata["envType"] == "aws-ecs")
        .expect("an ECS provider in multi.yaml")
        .clone();
    let env = all
        .iter()
        .find(|e| e.kind == catalog::KIND_ENVIRONMENT)
        .expect("an environment in multi.yaml")
        .clone();
    (provider, env)
}

#[test]
fn validator_rejects_broken_entities() {
    let (provider, env) = valid_pair();
    let tmp = tempfile::tempdir().expect("temp dir");
    let write = |name: &str, text: String| {
        let p = tmp.path().join(format!("{name}.yaml"));
        std::fs::write(&p, text).expect("write case");
        p
    };
    let yaml = |e: &Entity| catalog::merge("", std::slice::from_ref(e)).expect("serialize");
    let with = |e: &Entity, f: &dyn Fn(&mut Entity)| {
        let mut e = e.clone();
        f(&mut e);
        yaml(&e)
    };

    let control = [
        write("valid-provider", yaml(&provider)),
        write("valid-environment", yaml(&env)),
    ];
    // (case, file content, substring expected in the error)
    let cases: Vec<(&str, String, &str)> = vec![
        (
            "missing-aws-account",
            with(&provider, &|e| {
                e.metadata.remove("awsAccount");
            }),
            "awsAccount",
        ),
        (
            "non-string-aws-region",
            with(&provider, &|e| {
                e.metadata.insert("awsRegion".into(), json!(1));
            }),
            "awsRegion",
        ),
        (
            "wrong-spec-type",
            with(&provider, &|e| {
                e.spec.insert("type".into(), json!("environment"));
            }),
            "/spec/type",
        ),
        (
            "invalid-name",
            with(&provider, &|e| {
                e.metadata.insert("name".into(), json!("payments dev!"));
            }),
            "metadata.name",
        ),
        (
            // What a writer that forgot to quote account ids would produce:
            // YAML 1.2 reads it as the number 123456789012.
            "unquoted-account",
            yaml(&provider).replace(
                &format!(
                    "awsAccount: \"{}\"",
                    provider.metadata["awsAccount"].as_str().expect("string")
                ),
                &format!(
                    "awsAccount: {}",
                    provider.metadata["awsAccount"].as_str().expect("string")
                ),
            ),
            "awsAccount",
        ),
        (
            "bad-role-arn",
            with(&provider, &|e| {
                e.metadata
                    .insert("operationRole".into(), json!("opa-operations-role"));
            }),
            "operationRole",
        ),
        (
            "foreign-root-field",
            yaml(&provider).replace("spec:\n", "relations: []\nspec:\n"),
            "Unknown field",
        ),
        (
            "environment-missing-account",
            with(&env, &|e| {
                e.metadata.remove("envTypeAccount");
            }),
            "envTypeAccount",
        ),
        (
            "environment-bad-depends-on",
            with(&env, &|e| {
                e.spec
                    .insert("dependsOn".into(), json!(["component:default/web"]));
            }),
            "dependsOn",
        ),
        (
            "environment-wrong-spec-type",
            with(&env, &|e| {
                e.spec.insert("type".into(), json!("environment-provider"));
            }),
            "/spec/type",
        ),
        (
            "environment-level-not-a-number",
            with(&env, &|e| {
                e.metadata.insert("level".into(), json!("high"));
            }),
            "level",
        ),
        (
            "environment-wrong-api-version",
            with(&env, &|e| {
                e.api_version = "backstage.io/v1alpha1".into();
            }),
            "not accepted",
        ),
    ];
    let mut files = control.to_vec();
    for (name, text, _) in &cases {
        files.push(write(name, text.clone()));
    }

    let (code, verdicts) = validate(&files);
    assert_eq!(code, Some(1), "validator must fail: {verdicts:#?}");
    for file in &control {
        let got = file_verdicts(&verdicts, file);
        assert_eq!(got.len(), 1, "{got:#?}");
        assert!(got[0].ok, "control case rejected: {:#?}", got[0]);
    }
    for ((name, _, expected), file) in cases.iter().zip(&files[control.len()..]) {
        let got = file_verdicts(&verdicts, file);
        assert_eq!(got.len(), 1, "{name}: {got:#?}");
        assert!(!got[0].ok, "{name}: accepted, but it is broken");
        let error = got[0].error.as_deref().unwrap_or_default();
        assert!(
            error.contains(expected),
            "{name}: error {error:?} does not mention {expected:?}"
        );
    }
}

fn fixture() -> String {
    std::fs::read_to_string(repo_root().join("tests/data/catalog/existing.yaml")).expect("fixture")
}

/// The fixture's documents as written: the text between its `---` lines
/// (comments above a `---` belong to the document before it).
fn fixture_documents(text: &str) -> Vec<&str> {
    let mut cuts: Vec<usize> = vec![0];
    cuts.extend(text.match_indices("\n---\n").map(|(i, _)| i + 1));
    cuts.push(text.len());
    cuts.windows(2).map(|w| &text[w[0]..w[1]]).collect()
}

fn documents(text: &str) -> Vec<Value> {
    serde_saphyr::from_multiple::<Value>(text)
        .expect("merged catalog parses")
        .into_iter()
        .filter(|d| !d.is_null())
        .collect()
}

#[test]
fn merge_keeps_foreign_documents_and_fields() {
    let registry = Registry::builtin();
    let spec = example("ecs.yaml");
    let entities =
        catalog::entities(&spec, &registry, &fake_outputs(&spec, &registry)).expect("entities");
    let tmp = tempfile::tempdir().expect("temp dir");
    let path = tmp.path().join("catalog-info.yaml");
    let original = fixture();
    std::fs::write(&path, &original).expect("copy fixture");

    assert_eq!(
        catalog::write_catalog(&path, &entities).expect("merge"),
        WriteOutcome::Updated
    );
    let merged = std::fs::read_to_string(&path).expect("read merged");

    // The Component (with its comments) and the Location are byte-identical.
    let docs = fixture_documents(&original);
    assert_eq!(docs.len(), 3);
    assert!(docs[0].contains("kind: Component") && docs[1].contains("kind: Location"));
    assert!(merged.starts_with(docs[0]), "Component changed:\n{merged}");
    assert!(merged.contains(docs[1]), "Location changed:\n{merged}");
    assert!(merged.contains("  name: payments-web   # the public checkout UI\n"));
    // The comments above and right below the old provider's `---` are kept.
    assert!(
        merged.contains(
            "\n# ---- Harmonix environment entities ----\n---\n\
             # Written by an older Harmonix version, then extended by hand.\n\
             apiVersion: aws.backstage.io/v1alpha\n"
        ),
        "{merged}"
    );

    let parsed = documents(&merged);
    assert_eq!(
        parsed.len(),
        3,
        "the provider is updated in place, not appended:\n{merged}"
    );
    let provider = &parsed[2];
    let ours = &entities[0];
    assert_eq!(provider["kind"], catalog::KIND_PROVIDER);
    assert_eq!(provider["metadata"]["name"], "payments-dev");
    // Foreign fields are kept...
    assert_eq!(
        provider["metadata"]["labels"],
        json!({ "cost-center": "payments" })
    );
    assert_eq!(provider["metadata"]["links"][0]["title"], "ECS console");
    assert_eq!(
        provider["metadata"]["annotations"]["example.com/on-call"],
        "payments-oncall"
    );
    assert_eq!(provider["spec"]["system"], "payments");
    // ...and every field Harmonix generates is updated.
    for (key, value) in &ours.metadata {
        if key == "annotations" {
            assert_eq!(
                provider["metadata"]["annotations"][catalog::MANAGED_BY_ANNOTATION],
                "harmonix"
            );
        } else {
            assert_eq!(&provider["metadata"][key], value, "metadata.{key}");
        }
    }
    for (key, value) in &ours.spec {
        assert_eq!(&provider["spec"][key], value, "spec.{key}");
    }
    assert_eq!(provider["metadata"]["awsAccount"], "123456789012");
    assert_eq!(provider["metadata"]["vpc"], "vpc-0f1e2d3c4b5a69788");
    assert_eq!(provider["spec"]["owner"], "group:payments");
    // Foreign keys stay in their place: `labels` and `links` come before
    // `annotations`, as in the fixture.
    let keys: Vec<&str> = provider["metadata"]
        .as_object()
        .expect("metadata mapping")
        .keys()
        .map(String::as_str)
        .collect();
    assert_eq!(
        &keys[..5],
        ["name", "title", "description", "labels", "links"]
    );

    // Merging again changes nothing.
    assert_eq!(
        catalog::write_catalog(&path, &entities).expect("merge again"),
        WriteOutcome::Unchanged
    );
    assert_eq!(std::fs::read_to_string(&path).expect("read"), merged);
    assert_eq!(catalog::merge(&merged, &entities).expect("merge"), merged);

    // Backstage accepts every document of the merged file.
    let (code, verdicts) = validate(std::slice::from_ref(&path));
    assert_eq!(verdicts.len(), 3, "{verdicts:#?}");
    assert!(verdicts.iter().all(|v| v.ok), "{verdicts:#?}");
    assert_eq!(code, Some(0));

    // A multi-environment spec merged into the same file: ECS and
    // serverless providers plus environments appended, the rest unchanged.
    let multi = example("multi.yaml");
    let more = catalog::entities(&multi, &registry, &StackOutputs::new()).expect("entities");
    let combined = catalog::merge(&merged, &more).expect("merge multi");
    assert!(
        combined.starts_with(&merged),
        "appending must not touch existing documents"
    );
    assert_eq!(documents(&combined).len(), 3 + more.len());
    assert_eq!(catalog::merge(&combined, &more).expect("merge"), combined);
}

#[test]
fn account_id_with_leading_zero_stays_a_string() {
    let yaml = r#"
providers:
  - kind: ecs
    name: zero-dev
    owner: group:zero
    account: "012345678901"
    region: us-east-1
    environmentRole: arn:aws:iam::012345678901:role/opa-envprovisioning-role
    platformRole: arn:aws:iam::111111111111:role/opa-platform-role
    pipelineRole: arn:aws:iam::111111111111:role/opa-pipeline-role
environments:
  - name: zero
    shortName: dev
    owner: group:zero
    providers: [zero-dev]
"#;
    let registry = Registry::builtin();
    let spec = spec::validate(
        spec::parse_str(yaml, "inline").expect("parse"),
        &registry,
        "inline",
    )
    .expect("valid");
    let entities = catalog::entities(&spec, &registry, &StackOutputs::new()).expect("entities");
    let tmp = tempfile::tempdir().expect("temp dir");
    let path = tmp.path().join("catalog-info.yaml");
    catalog::write_catalog(&path, &entities).expect("write");
    let text = std::fs::read_to_string(&path).expect("read");
    assert!(text.contains("  awsAccount: \"012345678901\"\n"), "{text}");
    assert!(
        text.contains("  envTypeAccount: \"012345678901\"\n"),
        "{text}"
    );
    let parsed = documents(&text);
    assert_eq!(parsed[0]["metadata"]["awsAccount"], json!("012345678901"));
    assert_eq!(
        parsed[1]["metadata"]["envTypeAccount"],
        json!("012345678901")
    );
    // Backstage's YAML parser (YAML 1.2) sees strings too.
    let (code, verdicts) = validate(std::slice::from_ref(&path));
    assert!(
        verdicts.iter().all(|v| v.ok) && verdicts.len() == 2,
        "{verdicts:#?}"
    );
    assert_eq!(code, Some(0));
}

/// Names in `dir` other than `keep`.
fn stray_files(dir: &Path, keep: &str) -> Vec<String> {
    std::fs::read_dir(dir)
        .expect("read dir")
        .map(|e| {
            e.expect("dir entry")
                .file_name()
                .to_string_lossy()
                .into_owned()
        })
        .filter(|n| n != keep)
        .collect()
}

/// Makes a directory unwritable for this process, and writable again on
/// drop: by permissions, or, when running as root (which ignores them),
/// with the immutable attribute where `chattr` and the file system allow.
struct Unwritable<'a> {
    dir: &'a Path,
    immutable: bool,
}

impl<'a> Unwritable<'a> {
    /// `None` when the directory cannot be made unwritable here.
    fn new(dir: &'a Path) -> Option<Self> {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o555)).expect("chmod");
        let mut guard = Self {
            dir,
            immutable: false,
        };
        if guard.blocks_writes() {
            return Some(guard);
        }
        let chattr = Command::new("chattr").arg("+i").arg(dir).status();
        if chattr.is_ok_and(|s| s.success()) {
            guard.immutable = true;
            if guard.blocks_writes() {
                return Some(guard);
            }
        }
        None
    }

    fn blocks_writes(&self) -> bool {
        let probe = self.dir.join("probe");
        match std::fs::write(&probe, b"x") {
            Ok(()) => {
                let _ = std::fs::remove_file(&probe);
                false
            }
            Err(_) => true,
        }
    }
}

impl Drop for Unwritable<'_> {
    fn drop(&mut self) {
        use std::os::unix::fs::PermissionsExt;
        if self.immutable {
            let _ = Command::new("chattr").arg("-i").arg(self.dir).status();
        }
        let _ = std::fs::set_permissions(self.dir, std::fs::Permissions::from_mode(0o755));
    }
}

#[test]
fn write_is_atomic() {
    let registry = Registry::builtin();
    let spec = example("ecs.yaml");
    let before = catalog::entities(&spec, &registry, &StackOutputs::new()).expect("entities");
    let after =
        catalog::entities(&spec, &registry, &fake_outputs(&spec, &registry)).expect("entities");
    assert_ne!(before, after, "outputs change the entities");

    let tmp = tempfile::tempdir().expect("temp dir");
    let dir = tmp.path().join("repo");
    let path = dir.join("catalog-info.yaml");
    assert_eq!(
        catalog::write_catalog(&path, &before).expect("write"),
        WriteOutcome::Created
    );
    assert_eq!(
        stray_files(&dir, "catalog-info.yaml"),
        Vec::<String>::new(),
        "temp files left"
    );
    assert_eq!(
        catalog::write_catalog(&path, &after).expect("write"),
        WriteOutcome::Updated
    );
    assert_eq!(
        stray_files(&dir, "catalog-info.yaml"),
        Vec::<String>::new(),
        "temp files left"
    );
    let content = std::fs::read(&path).expect("read");

    // A failing write leaves the old file intact and no temp file behind.
    let newer = catalog::entities(&spec, &registry, &StackOutputs::new()).expect("entities");
    let Some(guard) = Unwritable::new(&dir) else {
        eprintln!(
            "NOTE: write_is_atomic: the failed-write sub-case is skipped: this process can write to a \
             read-only directory (root) and `chattr +i` is unavailable here"
        );
        return;
    };
    let err = catalog::write_catalog(&path, &newer).expect_err("the directory is not writable");
    assert!(matches!(err, CatalogError::Write(_)), "{err}");
    assert!(err.to_string().contains("catalog-info.yaml"), "{err}");
    assert_eq!(
        std::fs::read(&path).expect("read"),
        content,
        "old content intact"
    );
    drop(guard);
    assert_eq!(
        stray_files(&dir, "catalog-info.yaml"),
        Vec::<String>::new(),
        "temp files left"
    );
}
