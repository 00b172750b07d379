//! The `vm-image` provider end to end on the local emulator, as a release
//! pipeline runs it: plan and apply `examples/specs/vm-image.yaml`
//! (through change sets, the pipeline role and the environment role), then
//! raise the frontend's image version and plan again. The plan changes the
//! frontend's launch template and Auto Scaling group and nothing else, the
//! apply runs it, the deployed template holds the new image in exactly
//! those resources, the catalog shows the new version, and a last plan is a
//! no-op.
//!
//! What the emulator (moto 5.2.5, see `/work/shared/EMULATOR.md`) cannot
//! show, and where it is covered instead:
//! - the rolling replacement itself: moto replaces a group on update and
//!   ignores `UpdatePolicy`/`CreationPolicy`; the policy's numbers
//!   (`MinInstancesInService` ≥ the minimum healthy count, batch size,
//!   pause, signals) are unit-tested in
//!   `harmonix-core/src/provider/vm_image_tests.rs` and checked by
//!   `cfn-lint` (`tests/templates.rs`);
//! - `Replacement` in change sets: moto reports only action, logical id and
//!   type, so "modify, no replacement" of the launch template is not
//!   asserted here (on AWS a launch template data change adds a version);
//! - `AWS::IAM::ServiceLinkedRole` (no moto model: skipped) and
//!   `{{resolve:ssm:…}}` (not resolved; the backend's image parameter stays
//!   a literal); both are unit-tested and `cfn-lint`-checked;
//! - outputs of stacks made by change sets: moto has none, so the catalog's
//!   image versions come from the spec and its DNS fields stay empty (the
//!   engine completes only `Ref`/`Arn` outputs from the stack's resources).

use std::path::{Path, PathBuf};

use aws_config::{BehaviorVersion, Region, SdkConfig};
use aws_sdk_sts::config::{Credentials, SharedCredentialsProvider};
use harmonix_core::aws::{ApiBudget, AwsOptions, ClientPool, Target};
use harmonix_core::engine::apply::Outcome;
use harmonix_core::engine::events::ignore_events;
use harmonix_core::engine::plan::{ActionKind, ChangeAction};
use harmonix_core::engine::{DeploymentPlan, Engine};
use harmonix_core::provider::Registry;
use harmonix_core::spec::SpecSet;
use harmonix_tests::emulator::Emulator;
use harmonix_tests::repo_root;
use serde_json::Value;

const PIPELINE_ROLE: &str = "arn:aws:iam::111111111111:role/opa-pipeline-role";
const STACK: &str = "opa-shop-web-environment";
const OLD_IMAGE: &str = "imageId: ami-0a1b2c3d4e5f60718";
const NEW_IMAGE: &str = "imageId: ami-0fedcba9876543210";

fn engine(endpoint: &str) -> Engine {
    let base = SdkConfig::builder()
        .behavior_version(BehaviorVersion::latest())
        .region(Region::new("us-east-1"))
        .credentials_provider(SharedCredentialsProvider::new(Credentials::new(
            "testing", "testing", None, None, "static",
        )))
        .build();
    let aws = AwsOptions {
        endpoint_url: Some(endpoint.to_owned()),
        pipeline_role: Some(PIPELINE_ROLE.to_owned()),
        caller: Some("release-bot".to_owned()),
        max_attempts: Some(2),
        api_budget: ApiBudget {
            rate: 500.0,
            burst: 100,
        },
        ..AwsOptions::default()
    };
    let pool = ClientPool::from_sdk_config(base, aws).expect("valid options");
    let opts = harmonix_tests::fast_engine_options("harmonix apply vm-image.yaml");
    Engine::new(pool, Registry::builtin(), opts)
}

/// The example spec in `dir`, with `edit` applied to its text.
fn spec_file(dir: &Path, edit: impl Fn(String) -> String) -> PathBuf {
    let text = std::fs::read_to_string(repo_root().join("examples/specs/vm-image.yaml"))
        .expect("vm-image.yaml");
    let p = dir.join("vm-image.yaml");
    std::fs::write(&p, edit(text)).expect("write spec");
    p
}

fn load(path: &Path) -> SpecSet {
    SpecSet::load(&[path], &Registry::builtin()).expect("spec loads")
}

/// The frontend release: a new image and version label.
fn release(text: String) -> String {
    assert!(text.contains(OLD_IMAGE) && text.contains("imageVersion: \"1.4.2\""));
    text.replacen(OLD_IMAGE, NEW_IMAGE, 1).replacen(
        "imageVersion: \"1.4.2\"",
        "imageVersion: \"1.5.0\"",
        1,
    )
}

/// The deployed template's resources.
async fn deployed_resources(engine: &Engine) -> serde_json::Map<String, Value> {
    let clients = engine
        .pool()
        .clients(&Target {
            account: "123456789012".to_owned(),
            region: "us-east-1".to_owned(),
            role_arn: "arn:aws:iam::123456789012:role/opa-envprovisioning-role".to_owned(),
            environment: "shop-web".to_owned(),
        })
        .await
        .expect("clients");
    let body = clients
        .cloudformation
        .get_template()
        .stack_name(STACK)
        .send()
        .await
        .expect("GetTemplate")
        .template_body()
        .unwrap_or_default()
        .to_owned();
    let t: Value = serde_json::from_str(&body).expect("template JSON");
    t["Resources"].as_object().cloned().expect("resources")
}

fn metadata<'a>(entities: &'a [harmonix_core::catalog::Entity], key: &str) -> &'a str {
    let e = entities
        .iter()
        .find(|e| e.kind == "AWSEnvironmentProvider")
        .expect("provider entity");
    e.metadata[key].as_str().unwrap_or_default()
}

#[tokio::test]
async fn a_frontend_release_rolls_only_the_frontend() {
    let emu = Emulator::start();
    let engine = engine(&emu.endpoint_url());
    let dir = tempfile::tempdir().expect("tmp");
    let catalog = dir.path().join("catalog-info.yaml");
    let tail = || {
        let log = emu.output();
        let lines: Vec<&str> = log.lines().collect();
        lines[lines.len().saturating_sub(40)..].join("\n")
    };

    // --- first deployment --------------------------------------------------
    let specs = load(&spec_file(dir.path(), |t| t));
    let plan = engine.plan(&specs, &ignore_events).await.expect("plan");
    let [stack] = plan.stacks().collect::<Vec<_>>()[..] else {
        panic!("one stack: {}", plan.render_diff(false));
    };
    assert_eq!(stack.name, STACK);
    assert_eq!(stack.action, ActionKind::Create);
    let diff = plan.render_diff(false);
    for line in [
        "+ FrontendGroup (AWS::AutoScaling::AutoScalingGroup) create",
        "+ BackendLaunchTemplate (AWS::EC2::LaunchTemplate) create",
        "+ FrontendLoadBalancer (AWS::ElasticLoadBalancingV2::LoadBalancer) create",
    ] {
        assert!(diff.contains(line), "{line} not in\n{diff}");
    }
    let report = engine
        .apply(&plan, Some(&catalog), &ignore_events)
        .await
        .expect("apply");
    assert!(report.succeeded(), "{report:#?}\n{}", tail());
    assert_eq!(
        report.stack(STACK).map(|s| s.outcome.clone()),
        Some(Outcome::Created)
    );
    assert_eq!(metadata(&report.entities, "frontendImageVersion"), "1.4.2");
    assert_eq!(metadata(&report.entities, "backendImageVersion"), "2.0.1");
    assert!(metadata(&report.entities, "vpc").starts_with("vpc-"));
    let before = deployed_resources(&engine).await;

    // --- the frontend release: exactly its launch template and group ------
    let released = load(&spec_file(dir.path(), release));
    let plan = engine.plan(&released, &ignore_events).await.expect("plan");
    let [stack] = plan.stacks().collect::<Vec<_>>()[..] else {
        panic!("one stack: {}", plan.render_diff(false));
    };
    assert_eq!(
        stack.action,
        ActionKind::Update,
        "{}",
        plan.render_diff(false)
    );
    let mut changed: Vec<(&str, ChangeAction, &str)> = stack
        .changes
        .iter()
        .map(|c| (c.logical_id.as_str(), c.action, c.resource_type.as_str()))
        .collect();
    changed.sort_unstable_by_key(|c| c.0);
    assert_eq!(
        changed,
        [
            (
                "FrontendGroup",
                ChangeAction::Modify,
                "AWS::AutoScaling::AutoScalingGroup"
            ),
            (
                "FrontendLaunchTemplate",
                ChangeAction::Modify,
                "AWS::EC2::LaunchTemplate"
            ),
        ],
        "{}",
        plan.render_diff(false)
    );
    let diff = plan.render_diff(false);
    assert!(
        diff.contains("~ FrontendLaunchTemplate (AWS::EC2::LaunchTemplate) update"),
        "{diff}"
    );
    assert!(!diff.contains("Backend"), "{diff}");
    // The group's instances are replaced by its rolling update policy.
    assert!(
        diff.contains("~ FrontendGroup (AWS::AutoScaling::AutoScalingGroup) update; instances replaced by a rolling update"),
        "{diff}"
    );

    // The reviewed plan survives a save and load, and applies.
    let plan_file = dir.path().join("plan.json");
    plan.save(&plan_file).expect("save plan");
    let reviewed = DeploymentPlan::load(&plan_file).expect("load plan");
    let report = engine
        .apply(&reviewed, Some(&catalog), &ignore_events)
        .await
        .expect("apply release");
    assert!(report.succeeded(), "{report:#?}\n{}", tail());
    assert_eq!(
        report.stack(STACK).map(|s| s.outcome.clone()),
        Some(Outcome::Updated)
    );

    // The deployed template: the new image in the frontend's launch
    // template and group, every other resource as it was.
    let after = deployed_resources(&engine).await;
    let differing: Vec<&String> = after
        .keys()
        .chain(before.keys())
        .filter(|id| after.get(*id) != before.get(*id))
        .collect::<std::collections::BTreeSet<_>>()
        .into_iter()
        .collect();
    assert_eq!(differing, ["FrontendGroup", "FrontendLaunchTemplate"]);
    let data = &after["FrontendLaunchTemplate"]["Properties"]["LaunchTemplateData"];
    assert_eq!(data["ImageId"], "ami-0fedcba9876543210");
    let tags = after["FrontendGroup"]["Properties"]["Tags"]
        .as_array()
        .expect("group tags");
    assert!(
        tags.iter()
            .any(|t| t["Key"] == "harmonix:image-version" && t["Value"] == "1.5.0"),
        "{tags:?}"
    );
    assert_eq!(
        after["FrontendGroup"]["UpdatePolicy"]["AutoScalingRollingUpdate"]["MinInstancesInService"],
        2,
        "the rolling update keeps both frontend instances in service"
    );

    // The catalog shows the new version (entities and the written file).
    assert_eq!(metadata(&report.entities, "frontendImageVersion"), "1.5.0");
    assert_eq!(
        metadata(&report.entities, "frontendImage"),
        "ami-0fedcba9876543210"
    );
    assert_eq!(metadata(&report.entities, "backendImageVersion"), "2.0.1");
    let written = std::fs::read_to_string(&catalog).expect("catalog written");
    assert!(
        written
            .lines()
            .any(|l| l.trim_start().starts_with("frontendImageVersion:") && l.contains("1.5.0")),
        "{written}"
    );
    assert!(!written.contains("1.4.2"), "{written}");

    // --- nothing left to do ------------------------------------------------
    let again = engine
        .plan(&released, &ignore_events)
        .await
        .expect("replan");
    assert!(again.is_noop(), "{}", again.render_diff(false));
}

/// 40 tags with long keys and values: the vm-image template (tags on the
/// launch templates' instances and volumes and on the groups) then
/// exceeds CloudFormation's 51,200-byte inline limit even as compact JSON.
fn many_long_tags(text: String) -> String {
    let mut tags = String::from("    tags:\n");
    for i in 0..40 {
        tags.push_str(&format!(
            "      team-{i:02}-{}: \"{}\"\n",
            "k".repeat(100),
            "v".repeat(200)
        ));
    }
    let anchor = "    logRetentionDays: 30\n";
    assert!(text.contains(anchor), "anchor in vm-image.yaml");
    text.replacen(anchor, &format!("{anchor}{tags}"), 1)
}

#[tokio::test]
async fn a_template_over_the_inline_limit_is_applied_from_the_assets_bucket() {
    use harmonix_core::engine::assets::{TemplateStore, bucket_name, template_key};
    use harmonix_core::template::quotas::MAX_INLINE_BODY_BYTES;

    let emu = Emulator::start();
    let engine = engine(&emu.endpoint_url());
    let dir = tempfile::tempdir().expect("tmp");
    let specs = load(&spec_file(dir.path(), many_long_tags));
    let stacks = specs.stacks(&Registry::builtin()).expect("renders");
    let body = stacks[0].template.to_compact_json();
    assert!(
        body.len() > MAX_INLINE_BODY_BYTES,
        "the test needs a template over the inline limit: {} bytes",
        body.len()
    );

    let target = Target {
        account: "123456789012".to_owned(),
        region: "us-east-1".to_owned(),
        role_arn: "arn:aws:iam::123456789012:role/opa-envprovisioning-role".to_owned(),
        environment: "shop-web".to_owned(),
    };
    let clients = engine.pool().clients(&target).await.expect("clients");

    // What AWS refuses, the proxy refuses: this body inline.
    let inline = clients
        .cloudformation
        .create_change_set()
        .stack_name("inline-probe")
        .change_set_name("probe")
        .change_set_type(aws_sdk_cloudformation::types::ChangeSetType::Create)
        .template_body(&body)
        .send()
        .await
        .expect_err("an inline body over 51,200 bytes is refused");
    let msg = harmonix_core::error_chain(&inline);
    assert!(
        msg.contains("ValidationError")
            && msg.contains("Member must have length less than or equal to 51200"),
        "{msg}"
    );

    // Plan and apply: the template goes through S3 (TemplateURL).
    let plan = engine.plan(&specs, &ignore_events).await.expect("plan");
    assert_eq!(
        plan.stacks().map(|s| s.action).collect::<Vec<_>>(),
        [ActionKind::Create],
        "{}",
        plan.render_diff(false)
    );
    let report = engine
        .apply(&plan, None, &ignore_events)
        .await
        .expect("apply");
    assert!(report.succeeded(), "{report:#?}");
    assert_eq!(
        report.stack(STACK).map(|s| s.outcome.clone()),
        Some(Outcome::Created)
    );
    let refused = emu.proxy().snapshot().refused;
    assert_eq!(
        refused.values().sum::<u64>(),
        1,
        "only the probe was refused: {refused:?}"
    );
    assert!(
        emu.proxy()
            .count("PUT /harmonix-assets-123456789012-us-east-1")
            >= 1
    );

    // The object is content-addressed and holds exactly the template.
    let bucket = bucket_name("123456789012", "us-east-1");
    let object = clients
        .s3
        .get_object()
        .bucket(&bucket)
        .key(template_key(&body))
        .send()
        .await
        .expect("the template object exists under its hash");
    let bytes = object
        .body
        .collect()
        .await
        .expect("object body")
        .into_bytes();
    assert_eq!(bytes.as_ref(), body.as_bytes());
    let deployed = clients
        .cloudformation
        .get_template()
        .stack_name(STACK)
        .send()
        .await
        .expect("GetTemplate");
    let deployed: Value =
        serde_json::from_str(deployed.template_body().unwrap_or_default()).expect("JSON");
    let expected: Value = serde_json::from_str(&body).expect("JSON");
    assert_eq!(deployed, expected, "the stack runs the uploaded template");

    // The bucket as documented: versioned, encrypted, private, TLS only,
    // old templates expire.
    let s3 = &clients.s3;
    let versioning = s3.get_bucket_versioning().bucket(&bucket).send().await;
    assert_eq!(
        versioning
            .expect("versioning")
            .status()
            .map(|s| s.as_str().to_owned()),
        Some("Enabled".to_owned())
    );
    let enc = s3
        .get_bucket_encryption()
        .bucket(&bucket)
        .send()
        .await
        .expect("encryption");
    let algo = enc
        .server_side_encryption_configuration()
        .and_then(|c| c.rules().first())
        .and_then(|r| r.apply_server_side_encryption_by_default())
        .map(|d| d.sse_algorithm().as_str().to_owned());
    assert_eq!(algo.as_deref(), Some("AES256"));
    let pab = s3
        .get_public_access_block()
        .bucket(&bucket)
        .send()
        .await
        .expect("public access block");
    let pab = pab
        .public_access_block_configuration()
        .expect("configuration");
    assert_eq!(
        (
            pab.block_public_acls(),
            pab.ignore_public_acls(),
            pab.block_public_policy(),
            pab.restrict_public_buckets()
        ),
        (Some(true), Some(true), Some(true), Some(true))
    );
    // Under the emulator's plain-HTTP endpoint the engine leaves out the
    // TLS-only policy (it would deny the engine itself; moto evaluates the
    // Deny without its condition anyway). With TLS, bootstrap puts it:
    assert!(
        s3.get_bucket_policy().bucket(&bucket).send().await.is_err(),
        "no TLS-only policy over plain HTTP"
    );
    let tls = TemplateStore::s3(
        s3.clone(),
        "123456789012",
        "eu-west-1",
        harmonix_core::engine::assets::AssetsOptions::default(),
        true,
    );
    let tls_bucket = tls.bootstrap().await.expect("bootstrap").expect("a bucket");
    let policy = s3
        .get_bucket_policy()
        .bucket(&tls_bucket)
        .send()
        .await
        .expect("policy");
    let policy: Value = serde_json::from_str(policy.policy().unwrap_or_default()).expect("JSON");
    assert_eq!(policy["Statement"][0]["Effect"], "Deny");
    assert_eq!(
        policy["Statement"][0]["Condition"]["Bool"]["aws:SecureTransport"],
        "false"
    );
    let lifecycle = s3
        .get_bucket_lifecycle_configuration()
        .bucket(&bucket)
        .send()
        .await
        .expect("lifecycle");
    let rule = lifecycle.rules().first().expect("a lifecycle rule");
    assert_eq!(
        rule.expiration()
            .and_then(aws_sdk_s3::types::LifecycleExpiration::days),
        Some(90)
    );
    assert_eq!(
        rule.noncurrent_version_expiration()
            .and_then(aws_sdk_s3::types::NoncurrentVersionExpiration::noncurrent_days),
        Some(30)
    );

    // Nothing left to do: the second plan is a no-op.
    let again = engine.plan(&specs, &ignore_events).await.expect("replan");
    assert!(again.is_noop(), "{}", again.render_diff(false));
}
