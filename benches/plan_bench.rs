//! `harmonix-plan-bench`: time loading and planning spec files from Rust,
//! the baseline the bindings' benchmark (`benches/bindings_plan.py`)
//! compares Python and Node against, on the same emulator.
//!
//! ```text
//! harmonix-plan-bench --endpoint URL --iterations N FILE...
//! ```
//!
//! One engine (one client pool, credentials cached) for every iteration, as
//! the bindings do; each iteration loads the files and plans them. Prints
//! one JSON object: every iteration's milliseconds (after one warm-up), the
//! median, the number of stacks and whether the plan was a no-op.

/// mimalloc: the engine allocates many small JSON values while rendering;
/// it renders about 2.5× faster than with the system allocator.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

use std::path::PathBuf;
use std::time::Instant;

use harmonix_core::aws::{ApiBudget, AwsOptions, ClientPool};
use harmonix_core::engine::events::ignore_events;
use harmonix_core::engine::{Engine, EngineOptions};
use harmonix_core::provider::Registry;
use harmonix_core::spec::SpecSet;

fn main() {
    let mut endpoint = None;
    let mut iterations = 10usize;
    let mut files = Vec::new();
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        match a.as_str() {
            "--endpoint" => endpoint = args.next(),
            "--iterations" => {
                iterations = args.next().and_then(|n| n.parse().ok()).unwrap_or(10);
            }
            _ => files.push(PathBuf::from(a)),
        }
    }
    if files.is_empty() {
        eprintln!("usage: harmonix-plan-bench --endpoint URL --iterations N FILE...");
        std::process::exit(2);
    }
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap_or_else(|e| fail(&format!("runtime: {e}")));
    let result = rt.block_on(async {
        let aws = AwsOptions {
            endpoint_url: endpoint,
            caller: Some("bench".to_owned()),
            api_budget: ApiBudget {
                rate: 10_000.0,
                burst: 10_000,
            },
            ..AwsOptions::default()
        };
        let pool = ClientPool::load(aws).await.map_err(|e| e.to_string())?;
        let registry = Registry::builtin();
        let engine = Engine::new(pool, registry.clone(), EngineOptions::default());
        let mut times = Vec::with_capacity(iterations);
        let mut stacks = 0;
        let mut noop = true;
        for i in 0..=iterations {
            let start = Instant::now();
            let specs = SpecSet::load(&files, &registry).map_err(|e| e.to_string())?;
            let plan = engine
                .plan(&specs, &ignore_events)
                .await
                .map_err(|e| e.to_string())?;
            let ms = start.elapsed().as_secs_f64() * 1000.0;
            stacks = plan.stacks().count();
            noop &= plan.is_noop();
            if i > 0 {
                times.push(ms);
            }
        }
        Ok::<_, String>((times, stacks, noop))
    });
    let (times, stacks, noop) = result.unwrap_or_else(|e| fail(&e));
    let mut sorted = times.clone();
    sorted.sort_by(f64::total_cmp);
    let median = sorted.get(sorted.len() / 2).copied().unwrap_or(0.0);
    println!(
        "{}",
        serde_json::json!({ "iterations_ms": times, "median_ms": median, "stacks": stacks, "noop": noop })
    );
}

fn fail(msg: &str) -> ! {
    eprintln!("harmonix-plan-bench: {msg}");
    std::process::exit(1)
}
