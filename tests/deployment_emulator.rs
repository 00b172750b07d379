//! The whole engine against the local emulator, as a pipeline job runs it:
//! `examples/specs/multi.yaml` (three providers in two accounts) planned,
//! saved, applied through a pipeline role and each account's environment
//! role, re-planned as a no-op, updated, refused when stale or locked, and
//! destroyed; the catalog checked with Backstage's validators and the audit
//! items read back.
//!
//! Every AWS request goes through a counting proxy in front of the
//! emulator (`harmonix_tests::proxy`): the call counts below are what went
//! over the wire.
//!
//! Emulator limits (see `/work/shared/EMULATOR.md`): stacks made by change
//! sets have no Outputs here, so the catalog's VPC ids come from
//! `DescribeStackResources` (the engine asks only when an output is
//! missing); stacks have no `LastUpdatedTime`, so stale plans are detected
//! here by the status change; rollbacks do not exist, so those paths are
//! covered with `aws-smithy-mocks` in `harmonix-core/src/engine/apply.rs`.

use std::collections::HashMap;
use std::path::Path;
use std::sync::Mutex;
use std::time::Duration;

use aws_config::{BehaviorVersion, Region, SdkConfig};
use aws_sdk_dynamodb::types::AttributeValue;
use aws_sdk_sts::config::{Credentials, SharedCredentialsProvider};
use harmonix_core::Error;
use harmonix_core::aws::{ApiBudget, AwsOptions, ClientPool, Target};
use harmonix_core::engine::apply::Outcome;
use harmonix_core::engine::events::{Event, ignore_events};
use harmonix_core::engine::lock::{Holder, LOCK_TABLE, LockError, LockManager};
use harmonix_core::engine::plan::{ActionKind, ChangeAction};
use harmonix_core::engine::{DeploymentPlan, Engine, PlanKind};
use harmonix_core::error::codes;
use harmonix_core::provider::Registry;
use harmonix_core::spec::SpecSet;
use harmonix_tests::backstage;
use harmonix_tests::emulator::Emulator;
use harmonix_tests::proxy::Proxy;
use harmonix_tests::repo_root;

const PIPELINE_ROLE: &str = "arn:aws:iam::111111111111:role/opa-pipeline-role";
const DEV: &str = "123456789012";
const PROD: &str = "210987654321";

fn base_config() -> SdkConfig {
    SdkConfig::builder()
        .behavior_version(BehaviorVersion::latest())
        .region(Region::new("us-east-1"))
        .credentials_provider(SharedCredentialsProvider::new(Credentials::new(
            "testing", "testing", None, None, "static",
        )))
        .build()
}

fn engine(endpoint: &str) -> Engine {
    let aws = AwsOptions {
        endpoint_url: Some(endpoint.to_owned()),
        pipeline_role: Some(PIPELINE_ROLE.to_owned()),
        caller: Some("ci-bot".to_owned()),
        max_attempts: Some(2),
        api_budget: ApiBudget {
            rate: 500.0,
            burst: 100,
        },
        ..AwsOptions::default()
    };
    let pool = ClientPool::from_sdk_config(base_config(), aws).expect("valid options");
    let opts = harmonix_tests::fast_engine_options("harmonix apply multi.yaml");
    Engine::new(pool, Registry::builtin(), opts)
}

fn load(path: &Path) -> SpecSet {
    SpecSet::load(&[path], &Registry::builtin()).expect("spec loads")
}

/// multi.yaml in a temp dir, with `edit` applied to its text.
fn spec_file(dir: &Path, edit: impl Fn(String) -> String) -> std::path::PathBuf {
    let text =
        std::fs::read_to_string(repo_root().join("examples/specs/multi.yaml")).expect("multi.yaml");
    let p = dir.join("multi.yaml");
    std::fs::write(&p, edit(text)).expect("write spec");
    p
}

fn target(account: &str, environment: &str) -> Target {
    Target {
        account: account.to_owned(),
        region: "us-east-1".to_owned(),
        role_arn: format!("arn:aws:iam::{account}:role/opa-envprovisioning-role"),
        environment: environment.to_owned(),
    }
}

fn s(v: &AttributeValue) -> &str {
    v.as_s().map_or("", String::as_str)
}

#[tokio::test]
async fn pipeline_flow_on_the_emulator() {
    let emu = Emulator::start();
    let proxy = Proxy::start(emu.port());
    let engine = engine(&proxy.endpoint_url());
    let dir = tempfile::tempdir().expect("tmp");
    let spec_path = spec_file(dir.path(), |t| t);
    let specs = load(&spec_path);
    let catalog = dir.path().join("catalog-info.yaml");

    // --- plan, save, apply the saved plan --------------------------------
    let plan = engine.plan(&specs, &ignore_events).await.expect("plan");
    assert_eq!(plan.kind, PlanKind::Deploy);
    assert_eq!(plan.targets.len(), 2, "two accounts: {plan:#?}");
    assert_eq!(
        plan.targets[0].providers,
        ["shop-dev-ecs", "shop-dev-api"],
        "same account, region and role: one target"
    );
    assert!(plan.stacks().all(|s| s.action == ActionKind::Create));
    let diff = plan.render_diff(false);
    assert!(diff.contains("+ Vpc (AWS::EC2::VPC) create"), "{diff}");
    assert!(diff.contains("(3 of 3 stacks)"), "{diff}");
    let plan_file = dir.path().join("plan.json");
    plan.save(&plan_file).expect("save plan");
    let text = std::fs::read_to_string(&plan_file).expect("plan file");
    assert!(!text.contains("testing"), "no credentials in the plan file");
    let reviewed = DeploymentPlan::load(&plan_file).expect("load plan");
    assert_eq!(reviewed, plan);

    proxy.reset();
    let events = Mutex::new(Vec::new());
    let sink = |e: &Event| events.lock().expect("events").push(e.clone());
    let report = engine
        .apply(&reviewed, Some(&catalog), &sink)
        .await
        .expect("apply");
    assert!(report.succeeded(), "{report:#?}");
    assert!(report.stacks().all(|s| s.outcome == Outcome::Created));
    // Three environment stacks, and the account/region bootstrap stack of
    // the account whose serverless stage needs API Gateway's logging role
    // (made on first use, before the environments).
    assert_eq!(proxy.count("ExecuteChangeSet"), 4, "{:?}", proxy.counts());
    assert_eq!(
        proxy.count("CreateChangeSet"),
        1,
        "the reviewed change sets ran; only the bootstrap stack's was made at apply"
    );
    assert!(events.lock().expect("events").iter().any(
        |e| matches!(e, Event::Locked { lock } if lock == "123456789012/us-east-1/opa-shop-dev-ecs")
    ),);

    // Role chain: pipeline role, then each account's environment role, with
    // session names from the caller and the target's environments.
    let dev = engine
        .pool()
        .clients(&target(DEV, "shop-dev-ecs+shop-dev-api"))
        .await
        .expect("dev clients");
    let me = dev.sts.get_caller_identity().send().await.expect("whoami");
    assert_eq!(
        me.arn(),
        Some(
            "arn:aws:sts::123456789012:assumed-role/opa-envprovisioning-role/harmonix-ci-bot-shop-dev-ecs+shop-dev-api"
        ),
        "{me:?}"
    );
    assert_eq!(
        dev.session_name,
        "harmonix-ci-bot-shop-dev-ecs+shop-dev-api"
    );

    // Catalog: complete values (VPC ids from the stacks' resources), valid
    // for Backstage.
    let entities = &report.entities;
    assert_eq!(entities.len(), 6, "3 providers + 3 environments");
    for e in entities
        .iter()
        .filter(|e| e.kind == "AWSEnvironmentProvider")
    {
        let vpc = e.metadata["vpc"].as_str().unwrap_or_default();
        assert!(vpc.starts_with("vpc-"), "{}: vpc {vpc:?}", e.name());
        assert!(
            !e.metadata["clusterName"]
                .as_str()
                .unwrap_or_default()
                .is_empty()
                || e.name().ends_with("-api")
        );
    }
    assert_eq!(
        report.catalog.as_ref().map(|c| c.outcome.as_str()),
        Some("created")
    );
    let (code, verdicts) = backstage::validate(std::slice::from_ref(&catalog));
    assert_eq!(code, Some(0), "{verdicts:#?}");
    assert_eq!(verdicts.len(), 6);
    assert!(verdicts.iter().all(|v| v.ok), "{verdicts:#?}");

    // Audit: one SUCCESS item per provider in its own audit table, with
    // the assumed role and no secrets.
    let items = dev
        .dynamodb
        .scan()
        .table_name("opa-shop-dev-ecs-audit")
        .send()
        .await
        .expect("scan audit table");
    let items: Vec<&HashMap<String, AttributeValue>> = items.items().iter().collect();
    assert_eq!(items.len(), 1, "{items:#?}");
    let item = items[0];
    assert_eq!(s(&item["actionType"]), "apply");
    assert_eq!(s(&item["status"]), "SUCCESS");
    assert_eq!(s(&item["origin"]), "harmonix");
    assert_eq!(s(&item["providerName"]), "shop-dev-ecs");
    assert_eq!(s(&item["targetAccount"]), DEV);
    assert_eq!(s(&item["initiatedBy"]), "ci-bot");
    assert_eq!(
        s(&item["assumedRole"]),
        "arn:aws:iam::123456789012:role/opa-envprovisioning-role"
    );
    assert!(s(&item["request"]).contains(&plan.targets[0].plan.content_hash));
    assert!(!s(&item["request"]).contains("testing"));

    // --- no-op plan: one DescribeStacks per target, nothing else ----------
    proxy.reset();
    let noop = engine.plan(&specs, &ignore_events).await.expect("replan");
    assert!(noop.is_noop(), "{}", noop.render_diff(false));
    assert!(noop.render_diff(false).contains("No changes."));
    assert_eq!(proxy.count("DescribeStacks"), 2, "{:?}", proxy.counts());
    assert_eq!(proxy.count_matching("ChangeSet"), 0, "{:?}", proxy.counts());
    assert_eq!(proxy.total(), 2, "{:?}", proxy.counts());
    let status = engine.status(&specs).await.expect("status");
    assert!(
        status
            .iter()
            .flat_map(|t| &t.stacks)
            .all(|s| s.drift == harmonix_core::engine::state::Drift::InSync)
    );

    // --- update: a visible modify diff -----------------------------------
    let edited = spec_file(dir.path(), |t| {
        t.replacen(
            "    name: shop-dev-ecs\n",
            "    name: shop-dev-ecs\n    logRetentionDays: 30\n",
            1,
        )
    });
    let specs2 = load(&edited);
    let update = engine
        .plan(&specs2, &ignore_events)
        .await
        .expect("plan update");
    let changed: Vec<_> = update
        .stacks()
        .filter(|s| s.action != ActionKind::NoOp)
        .collect();
    assert_eq!(changed.len(), 1, "{}", update.render_diff(false));
    assert_eq!(changed[0].name, "opa-shop-dev-ecs-environment");
    assert_eq!(changed[0].action, ActionKind::Update);
    assert!(
        changed[0]
            .changes
            .iter()
            .any(|c| c.action == ChangeAction::Modify && c.logical_id == "EnvironmentLogGroup"),
        "{:?}",
        changed[0].changes
    );
    let diff = update.render_diff(false);
    assert!(
        diff.contains("~ EnvironmentLogGroup (AWS::Logs::LogGroup) update"),
        "{diff}"
    );
    let report = engine
        .apply(&update, Some(&catalog), &ignore_events)
        .await
        .expect("apply update");
    assert!(report.succeeded(), "{report:#?}");
    assert_eq!(
        report
            .stack("opa-shop-dev-ecs-environment")
            .map(|s| s.outcome.clone()),
        Some(Outcome::Updated)
    );
    assert_eq!(
        report.catalog.as_ref().map(|c| c.outcome.as_str()),
        Some("unchanged"),
        "same entities after a retention change"
    );

    // --- stale plan refused ----------------------------------------------
    let prod_edit = spec_file(dir.path(), |t| {
        t.replacen(
            "    name: shop-prod-ecs\n",
            "    name: shop-prod-ecs\n    logRetentionDays: 365\n",
            1,
        )
    });
    let stale = engine
        .plan(&load(&prod_edit), &ignore_events)
        .await
        .expect("plan prod change");
    let prod = engine
        .pool()
        .clients(&target(PROD, "shop-prod-ecs"))
        .await
        .expect("prod clients");
    prod.cloudformation
        .update_stack()
        .stack_name("shop-shop-prod-ecs-environment")
        .use_previous_template(true)
        .capabilities(aws_sdk_cloudformation::types::Capability::CapabilityNamedIam)
        .send()
        .await
        .expect("out-of-band update");
    proxy.reset();
    let err = engine
        .apply(&stale, None, &ignore_events)
        .await
        .expect_err("stale plan refused");
    assert_eq!(err.code(), codes::PLAN_STALE, "{err}");
    assert_eq!(err.stack(), Some("shop-shop-prod-ecs-environment"));
    assert!(err.to_string().contains("plan again"), "{err}");
    assert_eq!(proxy.count("ExecuteChangeSet"), 0);

    // --- a second apply on a locked environment is refused ---------------
    // (a change of shop-dev-ecs; environments without changes are not
    // locked.)
    let other = LockManager::new(dev.dynamodb.clone(), LOCK_TABLE);
    let foreign = Holder {
        id: "other-run".to_owned(),
        host: "runner-7".to_owned(),
        pid: 4242,
        user: "gitlab-runner".to_owned(),
        command: "harmonix apply multi.yaml".to_owned(),
    };
    let held = other
        .acquire(
            "123456789012/us-east-1/opa-shop-dev-ecs",
            foreign,
            Duration::from_mins(1),
        )
        .await
        .expect("foreign lock");
    let locked_edit = spec_file(dir.path(), |t| {
        t.replacen(
            "    name: shop-dev-ecs\n",
            "    name: shop-dev-ecs\n    logRetentionDays: 14\n",
            1,
        )
    });
    let again = engine
        .plan(&load(&locked_edit), &ignore_events)
        .await
        .expect("plan");
    assert!(!again.is_noop(), "{}", again.render_diff(false));
    proxy.reset();
    let err = engine
        .apply(&again, None, &ignore_events)
        .await
        .expect_err("lock held");
    assert_eq!(err.code(), codes::LOCK_HELD);
    assert!(
        matches!(&err, Error::Lock(LockError::Held { holder, .. }) if holder.host == "runner-7" && holder.pid == 4242),
        "{err:?}"
    );
    let msg = err.to_string();
    assert!(msg.contains("gitlab-runner@runner-7 pid 4242"), "{msg}");
    assert_eq!(proxy.count("ExecuteChangeSet"), 0);
    held.release().await.expect("release");

    // --- destroy -----------------------------------------------------------
    // moto cannot delete a VPC it created through CloudFormation (its route
    // tables, NAT gateway and internet gateway are never deleted; see
    // tests/deploy_emulator.rs): DeleteStack answers DependencyViolation.
    // The engine reports that per stack, names the VPC, and fails the run;
    // a clean destroy is shown with existing-VPC environments below.
    let report = engine
        .destroy(&specs, &ignore_events)
        .await
        .expect("destroy runs");
    assert!(!report.succeeded());
    for st in report.stacks() {
        assert!(
            matches!(&st.outcome, Outcome::Failed { reason } if reason.contains("DeleteStack") && reason.contains("DependencyViolation") && reason.contains("vpc-")),
            "{st:?}"
        );
    }
    // The locks were released: nothing is left in the lock table.
    let left = dev
        .dynamodb
        .scan()
        .table_name(LOCK_TABLE)
        .send()
        .await
        .expect("scan locks");
    assert_eq!(left.count(), 0, "{left:?}");
}

/// 100 deployed environments: a no-op plan reads the state once per page
/// and makes no other call; destroy deletes them all.
#[tokio::test]
async fn noop_plan_of_100_environments_costs_one_call_per_page_and_destroy() {
    let emu = Emulator::start();
    let proxy = Proxy::start(emu.port());
    let engine = engine(&proxy.endpoint_url());
    let dir = tempfile::tempdir().expect("tmp");
    let template = std::fs::read_to_string(repo_root().join("examples/specs/serverless.yaml"))
        .expect("serverless.yaml");
    let name_line = template
        .lines()
        .find(|l| l.trim_start().starts_with("name:"))
        .expect("a name line")
        .to_owned();
    let mut specs = SpecSet::new();
    for i in 0..100 {
        // An existing VPC keeps each stack small (moto creates every
        // resource synchronously).
        let text = template
            .replacen(&name_line, &format!("{name_line}-{i:03}"), 1)
            .replace(
                "    vpc:\n      cidr: 10.4.0.0/24\n",
                "    vpc:\n      mode: existing\n      id: vpc-0123456789abcdef0\n",
            );
        let p = dir.path().join(format!("env-{i:03}.yaml"));
        std::fs::write(&p, text).expect("write");
        specs.push(
            p.display().to_string(),
            harmonix_core::spec::load(&p, &Registry::builtin()).expect("valid"),
        );
    }
    let plan = engine.plan(&specs, &ignore_events).await.expect("plan");
    assert_eq!(plan.stacks().count(), 100);
    let report = engine
        .apply(&plan, None, &ignore_events)
        .await
        .expect("apply");
    assert!(report.succeeded(), "{report:#?}");

    proxy.reset();
    let plan = engine.plan(&specs, &ignore_events).await.expect("replan");
    assert!(plan.is_noop());
    // moto pages DescribeStacks by 50 (AWS by 100): the 100 stacks and
    // the account/region bootstrap stack, ⌈101/50⌉ pages.
    assert_eq!(proxy.count("DescribeStacks"), 3, "{:?}", proxy.counts());
    assert_eq!(proxy.total(), 3, "{:?}", proxy.counts());

    proxy.reset();
    let report = engine
        .destroy(&specs, &ignore_events)
        .await
        .expect("destroy");
    assert!(report.succeeded(), "{report:#?}");
    assert!(report.stacks().all(|s| s.outcome == Outcome::Deleted));
    assert_eq!(proxy.count("DeleteStack"), 100, "{:?}", proxy.counts());
    let status = engine.status(&specs).await.expect("status");
    assert!(
        status
            .iter()
            .flat_map(|t| &t.stacks)
            .all(|s| s.drift == harmonix_core::engine::state::Drift::Missing),
        "{status:#?}"
    );
}

/// EKS in existing-cluster mode: the cluster is made through the EKS API
/// (moto cannot create EKS clusters through CloudFormation). Planning
/// checks it first with `DescribeCluster` (the providers' pre-plan
/// checks): without the cluster, the plan is refused naming it and nothing
/// is created. With it, the apply confirms it is ACTIVE and puts its
/// endpoint and OIDC issuer into the catalog.
///
/// The cluster is created with authentication mode `API_AND_CONFIG_MAP`,
/// as the environment's access entry needs; moto 5.2 ignores
/// `accessConfig` and omits it from `DescribeCluster`, which the engine
/// lets through with a warning (a refused `CONFIG_MAP` cluster is covered
/// with `aws-smithy-mocks` in `harmonix-core/src/engine/preflight.rs`).
#[tokio::test]
async fn eks_existing_cluster_is_confirmed_and_described_in_the_catalog() {
    let emu = Emulator::start();
    let proxy = Proxy::start(emu.port());
    let engine = engine(&proxy.endpoint_url());
    let dir = tempfile::tempdir().expect("tmp");
    let specs = load(&repo_root().join("examples/specs/eks-existing.yaml"));
    let catalog = dir.path().join("catalog-info.yaml");

    // No cluster yet: refused before any change set, naming the cluster.
    let err = engine
        .deploy(&specs, Some(&catalog), &ignore_events)
        .await
        .expect_err("no cluster: refused");
    assert_eq!(err.code(), codes::PRECONDITION, "{err}");
    let why = err.to_string();
    assert!(
        why.contains("shared-dev-cluster") && why.contains("not found"),
        "{why}"
    );
    assert_eq!(proxy.count("CreateChangeSet"), 0, "{:?}", proxy.counts());
    assert!(!catalog.exists());

    let clients = engine
        .pool()
        .clients(&target(DEV, "shared-dev"))
        .await
        .expect("clients");
    clients
        .eks
        .create_cluster()
        .name("shared-dev-cluster")
        .role_arn("arn:aws:iam::123456789012:role/shared-dev-cluster-role")
        .resources_vpc_config(
            aws_sdk_eks::types::VpcConfigRequest::builder()
                .subnet_ids("subnet-0123456789abcdef0")
                .build(),
        )
        .access_config(
            aws_sdk_eks::types::CreateAccessConfigRequest::builder()
                .authentication_mode(aws_sdk_eks::types::AuthenticationMode::ApiAndConfigMap)
                .build(),
        )
        .send()
        .await
        .expect("CreateCluster through the EKS API");

    proxy.reset();
    let events = Mutex::new(Vec::new());
    let sink = |e: &Event| events.lock().expect("events").push(e.clone());
    let report = engine
        .deploy(&specs, Some(&catalog), &sink)
        .await
        .expect("apply");
    assert!(report.succeeded(), "{report:#?}");
    // Once before planning, once for the catalog.
    assert_eq!(proxy.count("GET /clusters"), 2, "{:?}", proxy.counts());
    let warned = events.lock().expect("events").iter().any(|e| {
        matches!(e, Event::Warning { message }
            if message.contains("shared-dev-cluster") && message.contains("no authentication mode"))
    });
    assert!(warned, "moto omits accessConfig: the engine says so");
    let e = &report.entities[0];
    assert_eq!(e.metadata["clusterName"], "shared-dev-cluster");
    assert_eq!(e.metadata["nodeType"], "existing");
    let endpoint = e.metadata["clusterEndpoint"].as_str().unwrap_or_default();
    assert!(endpoint.starts_with("https://"), "{e:#?}");
    let issuer = e.metadata["clusterOidcIssuer"].as_str().unwrap_or_default();
    assert!(issuer.starts_with("https://oidc.eks."), "{e:#?}");
    let (code, verdicts) = backstage::validate(std::slice::from_ref(&catalog));
    assert_eq!(code, Some(0), "{verdicts:#?}");
}

/// A JSON-protocol request straight to the emulator (the tests have no SDK
/// for KMS or CloudWatch Logs); moto routes it by the credential scope and
/// does not check signatures. Returns the response body.
fn moto_json(endpoint: &str, service: &str, target: &str, body: &str) -> serde_json::Value {
    use std::io::{Read, Write};
    let addr = endpoint.trim_start_matches("http://");
    let mut stream = std::net::TcpStream::connect(addr).expect("connect");
    let request = format!(
        "POST / HTTP/1.1\r\nHost: {addr}\r\nContent-Type: application/x-amz-json-1.1\r\n\
         X-Amz-Target: {target}\r\n\
         Authorization: AWS4-HMAC-SHA256 Credential=testing/20260101/us-east-1/{service}/aws4_request, SignedHeaders=host, Signature=0\r\n\
         Content-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
    stream.write_all(request.as_bytes()).expect("send");
    let mut response = String::new();
    stream.read_to_string(&mut response).expect("read");
    let (head, payload) = response.split_once("\r\n\r\n").expect("HTTP response");
    assert!(head.starts_with("HTTP/1.1 200"), "{head}\n{payload}");
    serde_json::from_str(payload).unwrap_or_else(|e| panic!("{e}: {payload}"))
}

/// The serverless example in an existing VPC (moto can delete it).
fn serverless_spec(dir: &Path) -> SpecSet {
    let text = std::fs::read_to_string(repo_root().join("examples/specs/serverless.yaml"))
        .expect("serverless.yaml")
        .replace(
            "    vpc:\n      cidr: 10.4.0.0/24\n",
            "    vpc:\n      mode: existing\n      id: vpc-0123456789abcdef0\n",
        );
    let p = dir.join("orders.yaml");
    std::fs::write(&p, text).expect("write");
    load(&p)
}

/// A destroy keeps the audit table, the KMS key and the log group (their
/// `DeletionPolicy` is `Retain`, which moto honours), lists them with their
/// physical ids in the events and the report, and writes its final audit
/// record into the kept table; planning the environment again is refused
/// with the kept table named, instead of a create that would fail on AWS
/// with "already exists".
#[tokio::test]
async fn destroy_keeps_and_lists_the_data_and_a_new_create_is_refused() {
    use harmonix_core::engine::retained::RetainedResource;
    let emu = Emulator::start();
    let proxy = Proxy::start(emu.port());
    let engine = engine(&proxy.endpoint_url());
    let dir = tempfile::tempdir().expect("tmp");
    let specs = serverless_spec(dir.path());
    let report = engine
        .deploy(&specs, None, &ignore_events)
        .await
        .expect("deploy");
    assert!(report.succeeded(), "{report:#?}");

    let plan = engine
        .plan_destroy(&specs, &ignore_events)
        .await
        .expect("plan destroy");
    let diff = plan.render_diff(false);
    assert!(
        diff.contains("= AuditTable (AWS::DynamoDB::Table) kept: opa-orders-dev-audit"),
        "{diff}"
    );
    let kept_events = Mutex::new(Vec::<RetainedResource>::new());
    let sink = |e: &Event| {
        if let Event::Kept { resource } = e {
            kept_events.lock().expect("lock").push(resource.clone());
        }
    };
    let report = engine.apply(&plan, None, &sink).await.expect("destroy");
    assert!(report.succeeded(), "{report:#?}");
    let kept: HashMap<&str, &RetainedResource> = report
        .kept
        .iter()
        .map(|k| (k.logical_id.as_str(), k))
        .collect();
    let mut ids: Vec<&str> = kept.keys().copied().collect();
    ids.sort_unstable();
    assert_eq!(ids, ["AuditTable", "EnvironmentKey", "EnvironmentLogGroup"]);
    assert_eq!(*kept_events.lock().expect("lock"), report.kept);
    assert!(
        kept.values()
            .all(|k| k.stack == "opa-orders-dev-environment" && k.policy == "Retain")
    );

    // They exist after the stack is gone.
    let dev = engine
        .pool()
        .clients(&target(DEV, "orders-dev"))
        .await
        .expect("clients");
    let table = dev
        .dynamodb
        .describe_table()
        .table_name(&kept["AuditTable"].physical_id)
        .send()
        .await
        .expect("the audit table is kept");
    assert_eq!(
        table
            .table()
            .and_then(aws_sdk_dynamodb::types::TableDescription::deletion_protection_enabled),
        Some(true)
    );
    let keys = moto_json(&emu.endpoint_url(), "kms", "TrentService.ListKeys", "{}");
    let key_ids: Vec<&str> = keys["Keys"]
        .as_array()
        .expect("keys")
        .iter()
        .filter_map(|k| k["KeyId"].as_str())
        .collect();
    assert!(
        key_ids.contains(&kept["EnvironmentKey"].physical_id.as_str()),
        "{keys}"
    );
    let groups = moto_json(
        &emu.endpoint_url(),
        "logs",
        "Logs_20140328.DescribeLogGroups",
        r#"{"logGroupNamePrefix":"/opa/orders-dev/"}"#,
    );
    assert_eq!(
        groups["logGroups"][0]["logGroupName"],
        kept["EnvironmentLogGroup"].physical_id.as_str(),
        "{groups}"
    );
    // The destroy's own record is in the kept audit table.
    let items = dev
        .dynamodb
        .scan()
        .table_name(&kept["AuditTable"].physical_id)
        .send()
        .await
        .expect("scan audit");
    let destroys: Vec<_> = items
        .items()
        .iter()
        .filter(|i| i.get("actionType").map(s) == Some("destroy"))
        .map(|i| i.get("status").map(s).unwrap_or_default().to_owned())
        .collect();
    assert!(destroys.contains(&"SUCCESS".to_owned()), "{destroys:?}");

    // Creating the environment again would collide with the kept names.
    let err = engine
        .plan(&specs, &ignore_events)
        .await
        .expect_err("refused");
    assert_eq!(err.code(), codes::STACK_NOT_READY);
    let msg = err.to_string();
    for part in [
        "stack `opa-orders-dev-environment` cannot be created",
        "table `opa-orders-dev-audit` (AuditTable) exists",
        "`/opa/orders-dev/environment` (EnvironmentLogGroup, AWS::Logs::LogGroup)",
        "already exists",
    ] {
        assert!(msg.contains(part), "{part}\n{msg}");
    }
}
