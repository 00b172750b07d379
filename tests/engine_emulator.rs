//! The plan/apply engine against the local emulator (moto, see
//! `/work/shared/EMULATOR.md`) through the real CloudFormation SDK client.
//!
//! Requests are counted by an interceptor reading the awsQuery `Action` of
//! each request body, so "no change-set calls" and "one DescribeStacks per
//! page" are measured, not assumed.
//!
//! Emulator limits met here (the engine is not bent to them): stacks made
//! by change sets have no Outputs, change set Changes carry no Replacement
//! nor property details, and stacks have no LastUpdatedTime. Stale-plan
//! detection is therefore exercised through the status change
//! CREATE_COMPLETE → UPDATE_COMPLETE; the LastUpdatedTime comparison and
//! replacement rendering are covered by the mock tests in harmonix-core.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, Mutex};

use aws_config::{BehaviorVersion, Region, SdkConfig};
use aws_sdk_cloudformation::Client;
use aws_sdk_cloudformation::config::interceptors::BeforeTransmitInterceptorContextRef;
use aws_sdk_cloudformation::config::{
    ConfigBag, Credentials, Intercept, RuntimeComponents, SharedCredentialsProvider,
};
use aws_sdk_cloudformation::types::Parameter as CfnParameter;
use harmonix_core::engine::apply::{ApplyOptions, Outcome, apply, destroy};
use harmonix_core::engine::error::EngineError;
use harmonix_core::engine::events::{Event, ignore_events};
use harmonix_core::engine::plan::{ActionKind, ChangeAction, Plan, PlanOptions, plan};
use harmonix_core::engine::state::{Drift, read_state, status};
use harmonix_core::provider::{Registry, StackDefinition};
use harmonix_core::template::{Parameter, Resource, Template, fns};
use harmonix_core::{render, spec};
use harmonix_tests::emulator::Emulator;
use harmonix_tests::repo_root;

/// Counts CloudFormation requests by operation name.
#[derive(Debug, Clone, Default)]
struct Counter(Arc<Mutex<BTreeMap<String, usize>>>);

impl Counter {
    fn get(&self, op: &str) -> usize {
        self.0.lock().map_or(0, |m| m.get(op).copied().unwrap_or(0))
    }
    fn reset(&self) {
        if let Ok(mut m) = self.0.lock() {
            m.clear();
        }
    }
    fn snapshot(&self) -> BTreeMap<String, usize> {
        self.0.lock().map(|m| m.clone()).unwrap_or_default()
    }
    fn change_set_calls(&self) -> usize {
        self.snapshot()
            .iter()
            .filter(|(k, _)| k.contains("ChangeSet"))
            .map(|(_, v)| v)
            .sum()
    }
}

impl Intercept for Counter {
    fn name(&self) -> &'static str {
        "RequestCounter"
    }

    fn read_before_transmit(
        &self,
        context: &BeforeTransmitInterceptorContextRef<'_>,
        _runtime_components: &RuntimeComponents,
        _cfg: &mut ConfigBag,
    ) -> Result<(), Box<dyn std::error::Error + Send + Sync>> {
        let body = context.request().body().bytes().unwrap_or_default();
        let text = String::from_utf8_lossy(body);
        let action = text
            .split('&')
            .find_map(|kv| kv.strip_prefix("Action="))
            .unwrap_or("Unknown")
            .to_owned();
        if let Ok(mut m) = self.0.lock() {
            *m.entry(action).or_default() += 1;
        }
        Ok(())
    }
}

/// A CloudFormation client for `region` on the emulator: an `SdkConfig`
/// with static dummy credentials and the endpoint override, plus the
/// request counter.
fn client(emu: &Emulator, region: &str, counter: &Counter) -> Client {
    let sdk = SdkConfig::builder()
        .behavior_version(BehaviorVersion::latest())
        .region(Region::new(region.to_owned()))
        .credentials_provider(SharedCredentialsProvider::new(Credentials::new(
            "testing", "testing", None, None, "static",
        )))
        .endpoint_url(emu.endpoint_url())
        .build();
    let conf = aws_sdk_cloudformation::config::Builder::from(&sdk)
        .interceptor(counter.clone())
        .build();
    Client::from_conf(conf)
}

/// A small stack of emulator-supported resources: one SSM parameter whose
/// value is the `Value` parameter. Its `Description` repeats the value:
/// moto's UPDATE change sets list only template differences (a
/// parameter-only change shows no resource change there, unlike AWS).
fn small_stack(name: &str, value: &str, depends_on: &[&str]) -> StackDefinition {
    let mut t = Template::new("engine test stack");
    t.parameter("Value", Parameter::string("The value"));
    t.resource(
        "Param",
        Resource::new("AWS::SSM::Parameter")
            .property("Name", fns::sub("/harmonix-test/${AWS::StackName}"))
            .property("Type", "String")
            .property("Value", fns::ref_("Value"))
            .property("Description", format!("value {value}")),
    );
    StackDefinition {
        name: name.to_owned(),
        provider: "test".to_owned(),
        account: "123456789012".to_owned(),
        region: "us-east-1".to_owned(),
        template: t,
        parameters: BTreeMap::from([("Value".to_owned(), value.to_owned())]),
        tags: BTreeMap::from([("harmonix:provider".to_owned(), "test".to_owned())]),
        depends_on: depends_on.iter().map(|s| (*s).to_owned()).collect(),
        capabilities: Vec::new(),
    }
}

fn fast_plan() -> PlanOptions {
    PlanOptions {
        change_set_timeout: std::time::Duration::from_mins(1),
        ..PlanOptions::default()
    }
}

fn fast_apply() -> ApplyOptions {
    ApplyOptions {
        timeout: std::time::Duration::from_mins(2),
        ..ApplyOptions::default()
    }
}

#[tokio::test]
async fn create_noop_update_stale_destroy() {
    let emu = Emulator::start();
    let counter = Counter::default();
    let cfn = client(&emu, "us-east-1", &counter);
    let mut defs = vec![
        small_stack("eng-a", "one", &[]),
        small_stack("eng-b", "two", &["eng-a"]),
    ];

    // Create.
    let events = Mutex::new(Vec::new());
    let sink = |e: &Event| {
        if let Ok(mut v) = events.lock() {
            v.push(e.clone());
        }
    };
    let p = plan(&defs, &cfn, &fast_plan(), &sink).await.expect("plan");
    assert_eq!(p.stacks.len(), 2);
    for s in &p.stacks {
        assert_eq!(s.action, ActionKind::Create, "{}", s.name);
        assert!(s.change_set_id.is_some());
        assert_eq!(s.changes.len(), 1, "{:?}", s.changes);
        assert_eq!(s.changes[0].action, ChangeAction::Add);
        assert_eq!(s.changes[0].logical_id, "Param");
        assert_eq!(s.changes[0].resource_type, "AWS::SSM::Parameter");
    }
    let diff = p.render_diff(false);
    assert!(diff.contains("stack eng-a: create"), "{diff}");
    assert!(
        diff.contains("+ Param (AWS::SSM::Parameter) create"),
        "{diff}"
    );
    assert!(
        diff.contains("Plan: 2 to add, 0 to change, 0 to destroy."),
        "{diff}"
    );
    // The plan file round-trips.
    let reread = Plan::from_json(&p.to_json()).expect("plan file");
    assert_eq!(reread, p);

    counter.reset();
    let report = apply(&reread, &cfn, &fast_apply(), &sink)
        .await
        .expect("apply");
    assert!(report.succeeded(), "{report:?}");
    for s in &report.stacks {
        assert_eq!(s.outcome, Outcome::Created, "{}", s.name);
        assert_eq!(s.status.as_deref(), Some("CREATE_COMPLETE"));
    }
    assert_eq!(counter.get("ExecuteChangeSet"), 2);
    assert_eq!(counter.get("CreateChangeSet"), 0);
    let state = read_state(&cfn).await.expect("state");
    assert_eq!(state["eng-a"].status, "CREATE_COMPLETE");
    assert_eq!(
        state["eng-a"].hash.as_deref(),
        Some(defs[0].content_hash().as_str())
    );
    {
        let ev = events.lock().expect("events");
        // eng-b depends on eng-a: it starts only after eng-a is done.
        let pos = |f: &dyn Fn(&Event) -> bool| ev.iter().position(f).expect("event present");
        let a_done = pos(&|e| matches!(e, Event::StackDone { stack, .. } if stack == "eng-a"));
        let b_start = pos(&|e| matches!(e, Event::Started { stack, .. } if stack == "eng-b"));
        assert!(a_done < b_start, "{ev:?}");
        assert!(matches!(
            ev.last(),
            Some(Event::Finished {
                succeeded: 2,
                failed: 0,
                skipped: 0
            })
        ));
        let json = serde_json::to_string(&ev[0]).expect("event json");
        assert!(json.starts_with("{\"event\":"), "{json}");
    }

    // Re-plan: all no-op, one DescribeStacks, no change-set call.
    counter.reset();
    let p = plan(&defs, &cfn, &fast_plan(), &ignore_events)
        .await
        .expect("replan");
    assert!(p.is_noop(), "{p:?}");
    assert_eq!(counter.get("DescribeStacks"), 1, "{:?}", counter.snapshot());
    assert_eq!(counter.change_set_calls(), 0, "{:?}", counter.snapshot());
    let st = status(&defs, &cfn).await.expect("status");
    assert!(st.iter().all(|s| s.drift == Drift::InSync), "{st:?}");

    // Modify a parameter: an update with a modify change.
    defs[1] = small_stack("eng-b", "three", &["eng-a"]);
    let st = status(&defs, &cfn).await.expect("status");
    assert_eq!(st[1].drift, Drift::Drifted);
    let p = plan(&defs, &cfn, &fast_plan(), &ignore_events)
        .await
        .expect("plan update");
    assert_eq!(p.stacks[0].action, ActionKind::NoOp);
    assert_eq!(p.stacks[1].action, ActionKind::Update);
    assert_eq!(p.stacks[1].changes.len(), 1, "{:?}", p.stacks[1].changes);
    assert_eq!(p.stacks[1].changes[0].action, ChangeAction::Modify);
    let diff = p.render_diff(true);
    assert!(
        diff.contains("\u{1b}[33m~\u{1b}[0m Param (AWS::SSM::Parameter) update"),
        "{diff}"
    );
    let report = apply(&p, &cfn, &fast_apply(), &ignore_events)
        .await
        .expect("apply update");
    assert_eq!(
        report.stack("eng-a").map(|s| &s.outcome),
        Some(&Outcome::Unchanged)
    );
    assert_eq!(
        report.stack("eng-b").map(|s| &s.outcome),
        Some(&Outcome::Updated)
    );
    let state = read_state(&cfn).await.expect("state");
    assert_eq!(state["eng-b"].status, "UPDATE_COMPLETE");
    // (The new hash tag is not checked here: moto 5.2.5 keeps the old
    // stack tags when it executes an UPDATE change set; AWS applies them.)

    // Stale plan: plan a change of eng-a, update eng-a out of band, apply.
    defs[0] = small_stack("eng-a", "changed", &[]);
    let stale = plan(&defs, &cfn, &fast_plan(), &ignore_events)
        .await
        .expect("plan");
    assert_eq!(stale.stacks[0].action, ActionKind::Update);
    cfn.update_stack()
        .stack_name("eng-a")
        .use_previous_template(true)
        .parameters(
            CfnParameter::builder()
                .parameter_key("Value")
                .parameter_value("out-of-band")
                .build(),
        )
        .send()
        .await
        .expect("out-of-band update");
    counter.reset();
    let err = apply(&stale, &cfn, &fast_apply(), &ignore_events)
        .await
        .expect_err("stale plan must be refused");
    match &err {
        EngineError::StalePlan { stack, detail } => {
            assert_eq!(stack, "eng-a");
            assert!(
                detail.contains("CREATE_COMPLETE -> UPDATE_COMPLETE"),
                "{detail}"
            );
        }
        other => panic!("expected StalePlan, got {other:?}"),
    }
    assert!(err.to_string().contains("plan again"), "{err}");
    assert_eq!(counter.get("ExecuteChangeSet"), 0);

    // Destroy: both gone, eng-b (the dependent) first.
    let order = Mutex::new(Vec::new());
    let sink = |e: &Event| {
        if let Event::StackDone { stack, .. } = e
            && let Ok(mut v) = order.lock()
        {
            v.push(stack.clone());
        }
    };
    let report = destroy(&defs, &cfn, &fast_apply(), &sink)
        .await
        .expect("destroy");
    assert!(
        report.stacks.iter().all(|s| s.outcome == Outcome::Deleted),
        "{report:?}"
    );
    assert_eq!(*order.lock().expect("order"), ["eng-b", "eng-a"]);
    let state = read_state(&cfn).await.expect("state");
    assert!(
        !state.contains_key("eng-a") && !state.contains_key("eng-b"),
        "{state:?}"
    );
    let st = status(&defs, &cfn).await.expect("status");
    assert!(st.iter().all(|s| s.drift == Drift::Missing));
}

#[tokio::test]
async fn noop_plan_over_100_stacks_reads_state_per_page() {
    let emu = Emulator::start();
    let counter = Counter::default();
    let cfn = client(&emu, "us-east-1", &counter);
    let defs: Vec<_> = (0..100)
        .map(|i| small_stack(&format!("many-{i:03}"), &format!("v{i}"), &[]))
        .collect();
    let p = plan(&defs, &cfn, &fast_plan(), &ignore_events)
        .await
        .expect("plan");
    assert!(p.stacks.iter().all(|s| s.action == ActionKind::Create));
    let opts = ApplyOptions {
        concurrency: 8,
        ..fast_apply()
    };
    let report = apply(&p, &cfn, &opts, &ignore_events).await.expect("apply");
    assert!(report.succeeded(), "{report:?}");
    assert_eq!(report.stacks.len(), 100);

    counter.reset();
    let p = plan(&defs, &cfn, &fast_plan(), &ignore_events)
        .await
        .expect("replan");
    assert!(p.is_noop());
    // moto pages DescribeStacks by 50: ⌈100/50⌉ calls, nothing else.
    assert_eq!(counter.get("DescribeStacks"), 2, "{:?}", counter.snapshot());
    assert_eq!(counter.change_set_calls(), 0, "{:?}", counter.snapshot());
    let total: usize = counter.snapshot().values().sum();
    assert_eq!(total, 2, "{:?}", counter.snapshot());
}

/// The stacks of an example spec, grouped by region.
fn example_stacks(file: &str) -> BTreeMap<String, Vec<StackDefinition>> {
    let registry = Registry::builtin();
    let path = repo_root().join("examples/specs").join(file);
    let valid = spec::load(&path, &registry).expect("example validates");
    let stacks = render::stacks(&valid, &registry).expect("example renders");
    let mut by_region: BTreeMap<String, Vec<StackDefinition>> = BTreeMap::new();
    for s in stacks {
        by_region
            .entry(format!("{}/{}", s.account, s.region))
            .or_default()
            .push(s);
    }
    by_region
}

#[tokio::test]
async fn example_specs_deploy_through_change_sets() {
    let emu = Emulator::start();
    let counter = Counter::default();
    let mut seen = BTreeSet::new();
    // serverless.yaml is not here: moto 5.2.5 answers its ExecuteChangeSet
    // with HTTP 400 and an empty body (the same template deploys with
    // CreateStack in deploy_emulator.rs).
    for file in ["ecs.yaml"] {
        for (target, defs) in example_stacks(file) {
            let region = defs[0].region.clone();
            let cfn = client(&emu, &region, &counter);
            let p = plan(&defs, &cfn, &fast_plan(), &ignore_events)
                .await
                .unwrap_or_else(|e| panic!("{file} {target}: plan: {e}"));
            assert!(
                p.stacks
                    .iter()
                    .all(|s| s.action == ActionKind::Create && !s.changes.is_empty()),
                "{file} {target}: {}",
                p.render_diff(false)
            );
            let report = apply(&p, &cfn, &fast_apply(), &ignore_events)
                .await
                .unwrap_or_else(|e| panic!("{file} {target}: apply: {e}"));
            assert!(
                report.succeeded(),
                "{file} {target}: {report:?}\n{}",
                emu.output()
                    .lines()
                    .rev()
                    .take(60)
                    .collect::<Vec<_>>()
                    .join("\n")
            );
            counter.reset();
            let again = plan(&defs, &cfn, &fast_plan(), &ignore_events)
                .await
                .unwrap_or_else(|e| panic!("{file} {target}: replan: {e}"));
            assert!(
                again.is_noop(),
                "{file} {target}: {}",
                again.render_diff(false)
            );
            assert_eq!(counter.change_set_calls(), 0);
            seen.extend(defs.iter().map(|d| d.name.clone()));
        }
    }
    assert!(!seen.is_empty(), "{seen:?}");
}
