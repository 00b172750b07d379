//! Faults on the wire: 20 environments applied through the proxy while it
//! injects throttling, server errors, dropped connections and slow answers
//! (seeded, so every run injects the same faults). Every profile must
//! converge (all stacks created, each exactly once), keep the request rate
//! within the API budget, and report success; when retries give up, the
//! error names the call and the reason.

use std::collections::BTreeMap;
use std::time::Duration;

use aws_config::{BehaviorVersion, Region, SdkConfig};
use aws_sdk_sts::config::{Credentials, SharedCredentialsProvider};
use harmonix_core::aws::{ApiBudget, AwsOptions, ClientPool};
use harmonix_core::engine::apply::Outcome;
use harmonix_core::engine::events::ignore_events;
use harmonix_core::engine::plan::Backoff;
use harmonix_core::engine::{Engine, EngineOptions};
use harmonix_core::provider::Registry;
use harmonix_core::spec::SpecSet;
use harmonix_core::{Error, engine::error::EngineError};
use harmonix_tests::emulator::Emulator;
use harmonix_tests::proxy::{Config, Proxy};
use harmonix_tests::repo_root;

const ENVIRONMENTS: usize = 20;
const RATE: u64 = 40;
const BUDGET: ApiBudget = ApiBudget {
    rate: 40.0,
    burst: 10,
};

fn engine(endpoint: &str, max_attempts: u32) -> Engine {
    let base = SdkConfig::builder()
        .behavior_version(BehaviorVersion::latest())
        .region(Region::new("us-east-1"))
        .credentials_provider(SharedCredentialsProvider::new(Credentials::new(
            "testing", "testing", None, None, "static",
        )))
        .build();
    let aws = AwsOptions {
        endpoint_url: Some(endpoint.to_owned()),
        caller: Some("faults".to_owned()),
        max_attempts: Some(max_attempts),
        api_budget: BUDGET,
        ..AwsOptions::default()
    };
    let pool = ClientPool::from_sdk_config(base, aws).expect("options");
    let mut opts = EngineOptions {
        concurrency: 8,
        ..EngineOptions::default()
    };
    let poll = Backoff {
        initial: Duration::from_millis(20),
        max: Duration::from_millis(300),
    };
    opts.plan.poll = poll;
    opts.apply.poll = poll;
    opts.apply.timeout = Duration::from_mins(3);
    opts.lock.lease = Duration::from_secs(30);
    Engine::new(pool, Registry::builtin(), opts)
}

/// 20 serverless environments in an existing VPC (small stacks).
fn specs(dir: &std::path::Path) -> SpecSet {
    let base = std::fs::read_to_string(repo_root().join("examples/specs/serverless.yaml"))
        .expect("example")
        .replace(
            "    vpc:\n      cidr: 10.4.0.0/24\n",
            "    vpc:\n      mode: existing\n      id: vpc-0123456789abcdef0\n",
        );
    let mut set = SpecSet::new();
    for i in 0..ENVIRONMENTS {
        let p = dir.join(format!("f{i:02}.yaml"));
        std::fs::write(
            &p,
            base.replace("name: orders-dev\n", &format!("name: f{i:02}\n")),
        )
        .expect("write");
        set.push(
            p.display().to_string(),
            harmonix_core::spec::load(&p, &Registry::builtin()).expect("valid"),
        );
    }
    set
}

/// Live stacks by name as the emulator itself lists them (not through the
/// proxy): every name once, none left in review.
async fn live_stacks(emu: &Emulator) -> BTreeMap<String, Vec<String>> {
    let sdk = SdkConfig::builder()
        .behavior_version(BehaviorVersion::latest())
        .region(Region::new("us-east-1"))
        .endpoint_url(emu.endpoint_url())
        .credentials_provider(SharedCredentialsProvider::new(Credentials::new(
            "testing", "testing", None, None, "static",
        )))
        .build();
    let cfn = aws_sdk_cloudformation::Client::new(&sdk);
    let mut out: BTreeMap<String, Vec<String>> = BTreeMap::new();
    let mut token = None;
    loop {
        let r = cfn
            .describe_stacks()
            .set_next_token(token)
            .send()
            .await
            .expect("DescribeStacks");
        for s in r.stacks() {
            let status = s
                .stack_status()
                .map(|x| x.as_str().to_owned())
                .unwrap_or_default();
            if status != "DELETE_COMPLETE" {
                out.entry(s.stack_name().unwrap_or_default().to_owned())
                    .or_default()
                    .push(status);
            }
        }
        match r.next_token() {
            Some(t) if !t.is_empty() => token = Some(t.to_owned()),
            _ => break,
        }
    }
    out
}

async fn run_profile(name: &str, config: Config) {
    let emu = Emulator::start();
    let proxy = Proxy::start_with(emu.port(), config, 0);
    let engine = engine(&proxy.endpoint_url(), 10);
    let dir = tempfile::tempdir().expect("tmp");
    let specs = specs(dir.path());

    let report = engine
        .deploy(&specs, None, &ignore_events)
        .await
        .unwrap_or_else(|e| panic!("{name}: {}", harmonix_core::error_chain(&e)));
    assert!(report.succeeded(), "{name}: {report:#?}");
    assert_eq!(report.stacks().count(), ENVIRONMENTS);
    assert!(
        report.stacks().all(|s| s.outcome == Outcome::Created),
        "{name}"
    );

    let counts = proxy.snapshot();
    let injected: u64 = counts.faults.values().sum();
    assert!(injected > 0, "{name}: no fault was injected: {counts:?}");
    // Token bucket: at most burst + rate requests in any one second.
    let ceiling = u64::from(BUDGET.burst) + RATE;
    assert!(
        counts.max_rate_per_second <= ceiling,
        "{name}: {} requests in one second, budget allows {ceiling}",
        counts.max_rate_per_second
    );

    // Converged, each stack exactly once.
    let live = live_stacks(&emu).await;
    let ours: Vec<_> = live
        .iter()
        .filter(|(n, _)| n.starts_with("opa-f"))
        .collect();
    assert_eq!(ours.len(), ENVIRONMENTS, "{name}: {live:?}");
    for (stack, statuses) in &ours {
        assert_eq!(
            statuses.as_slice(),
            ["CREATE_COMPLETE"],
            "{name}: {stack} is {statuses:?}"
        );
    }
    // A second run finds nothing to do.
    let again = engine.plan(&specs, &ignore_events).await.expect("replan");
    assert!(again.is_noop(), "{name}: {}", again.render_diff(false));
    eprintln!(
        "{name}: {injected} faults injected {:?}, {} requests, max {} req/s, {ENVIRONMENTS} stacks converged",
        counts.faults, counts.total, counts.max_rate_per_second
    );
}

#[tokio::test]
async fn thirty_percent_throttling() {
    run_profile(
        "throttling 30%",
        Config {
            throttle: 0.30,
            seed: 11,
            ..Config::default()
        },
    )
    .await;
}

#[tokio::test]
async fn five_percent_server_errors() {
    run_profile(
        "HTTP 500/503 5%",
        Config {
            server_error: 0.05,
            seed: 12,
            ..Config::default()
        },
    )
    .await;
}

#[tokio::test]
async fn dropped_connections() {
    run_profile(
        "dropped connections 5%",
        Config {
            drop: 0.05,
            seed: 13,
            ..Config::default()
        },
    )
    .await;
}

#[tokio::test]
async fn slow_answers() {
    run_profile(
        "slow answers 10% (+1.5 s)",
        Config {
            slow: 0.10,
            slow_ms: 1_500,
            seed: 14,
            ..Config::default()
        },
    )
    .await;
}

#[tokio::test]
async fn when_retries_give_up_the_error_names_the_call_and_why() {
    let emu = Emulator::start();
    let proxy = Proxy::start_with(
        emu.port(),
        Config {
            throttle: 1.0,
            fault_operations: vec!["CreateChangeSet".to_owned()],
            ..Config::default()
        },
        0,
    );
    let engine = engine(&proxy.endpoint_url(), 2);
    let dir = tempfile::tempdir().expect("tmp");
    let specs = specs(dir.path());
    let err = engine
        .plan(&specs, &ignore_events)
        .await
        .expect_err("every CreateChangeSet is throttled");
    match &err {
        Error::Engine(EngineError::Aws {
            operation,
            code,
            stack,
            ..
        }) => {
            assert_eq!(*operation, "CreateChangeSet");
            assert_eq!(code, "Throttling");
            assert!(stack.as_deref().is_some_and(|s| s.starts_with("opa-f")));
        }
        other => panic!("unexpected error {other:?}"),
    }
    let msg = err.to_string();
    assert!(
        msg.contains("CreateChangeSet") && msg.contains("Throttling"),
        "{msg}"
    );
    assert_eq!(err.code(), "HARMONIX_AWS");
    // Two attempts per change set, nothing more.
    assert!(proxy.count("CreateChangeSet") >= 2, "{:?}", proxy.counts());
}

/// Two applies on different environments of one account, from one engine
/// (one client pool): they run at the same time and together stay within
/// the account's one API budget.
#[tokio::test]
async fn two_applies_on_different_environments_share_one_budget() {
    use std::sync::Mutex;
    use std::time::Instant;

    use harmonix_core::engine::events::Event;

    let emu = Emulator::start();
    let proxy = Proxy::start_with(emu.port(), Config::aws_model(), 0);
    let engine = engine(&proxy.endpoint_url(), 5);
    let dir = tempfile::tempdir().expect("tmp");
    let all = specs(dir.path());
    let (left, right): (Vec<_>, Vec<_>) = all
        .iter()
        .take(8)
        .enumerate()
        .partition(|(i, _)| i % 2 == 0);
    let set = |v: Vec<(usize, (&str, &harmonix_core::spec::ValidSpec))>| {
        v.into_iter()
            .map(|(_, (o, s))| (o.to_owned(), s.clone()))
            .collect::<SpecSet>()
    };
    let (a, b) = (set(left), set(right));
    let started = Instant::now();
    let spans = Mutex::new(BTreeMap::<String, (Duration, Duration)>::new());
    let sink = |e: &Event| {
        let now = started.elapsed();
        let mut m = spans.lock().expect("spans");
        match e {
            Event::Started { stack, .. } => {
                m.insert(stack.clone(), (now, Duration::MAX));
            }
            Event::StackDone { stack, .. } => {
                if let Some(span) = m.get_mut(stack) {
                    span.1 = now;
                }
            }
            _ => {}
        }
    };
    let (ra, rb) = tokio::join!(
        engine.deploy(&a, None, &sink),
        engine.deploy(&b, None, &sink)
    );
    let (ra, rb) = (ra.expect("left"), rb.expect("right"));
    assert!(ra.succeeded() && rb.succeeded());
    // Some stack of one apply ran while a stack of the other did.
    let m = spans.into_inner().expect("spans");
    let of = |r: &harmonix_core::engine::DeployReport| {
        r.stacks().map(|s| m[&s.name]).collect::<Vec<_>>()
    };
    let (sa, sb) = (of(&ra), of(&rb));
    let overlap = sa.iter().any(|x| sb.iter().any(|y| x.0 < y.1 && y.0 < x.1));
    assert!(
        overlap,
        "the two applies did not run in parallel: {sa:?} {sb:?}"
    );
    let counts = proxy.snapshot();
    let ceiling = u64::from(BUDGET.burst) + RATE;
    assert!(counts.max_rate_per_second <= ceiling, "{counts:?}");
    // One bucket for the account/region: both applies' requests in it.
    let bucket = engine.pool().budget("123456789012", "us-east-1");
    assert!(
        bucket.total_requests()
            >= counts
                .by_action
                .get("ExecuteChangeSet")
                .copied()
                .unwrap_or(0)
    );
}
