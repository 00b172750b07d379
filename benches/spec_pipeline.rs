//! Micro-benchmarks of the pure parts, over 1,000 specs: parsing,
//! validation and rendering (together and each), the plan decision for
//! 1,000 stacks from an already fetched state, and merging a 1,000-document
//! catalog.
//!
//! Run: `cargo bench -p harmonix-benches --bench spec_pipeline` (release
//! build). Prints the median and minimum of several rounds, and each goal
//! met or missed: parse + validate + render of 1,000 specs under 50 ms,
//! plan decision for 1,000 stacks under 10 ms (2-core machine). Uses
//! mimalloc, as the `harmonix` binary and the bindings do.

/// The allocator of the `harmonix` binary and the bindings.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

use std::hint::black_box;
use std::time::{Duration, Instant};

use harmonix_core::catalog;
use harmonix_core::engine::plan::{ActionKind, decisions};
use harmonix_core::engine::state::{StackState, StateMap};
use harmonix_core::provider::{Registry, StackOutputs};
use harmonix_core::{render, spec};

const SPECS: usize = 1_000;
const ROUNDS: usize = 7;

/// 1,000 distinct spec texts: the examples with numbered names.
fn corpus() -> Vec<String> {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../examples/specs");
    let mut examples: Vec<(String, String)> = std::fs::read_dir(&dir)
        .expect("examples/specs")
        .filter_map(Result::ok)
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|x| x == "yaml"))
        .map(|p| {
            let text = std::fs::read_to_string(&p).expect("read example");
            let valid = spec::parse_str(&text, "example").expect("example parses");
            let names: Vec<String> = valid.providers.iter().map(|p| p.name.clone()).collect();
            (text, names.join(","))
        })
        .collect();
    examples.sort();
    (0..SPECS)
        .map(|i| {
            let (text, names) = &examples[i % examples.len()];
            let mut t = text.clone();
            for n in names.split(',') {
                t = t.replace(&format!("name: {n}\n"), &format!("name: {n}-{i}\n"));
                t = t.replace(&format!("{n},"), &format!("{n}-{i},"));
                t = t.replace(&format!("{n}]"), &format!("{n}-{i}]"));
            }
            t
        })
        .collect()
}

fn measure(label: &str, f: impl FnMut()) -> Duration {
    measure_n(label, SPECS, "specs", f)
}

fn measure_n(label: &str, n: usize, what: &str, mut f: impl FnMut()) -> Duration {
    let mut times: Vec<Duration> = (0..ROUNDS)
        .map(|_| {
            let start = Instant::now();
            f();
            start.elapsed()
        })
        .collect();
    times.sort();
    println!(
        "{label:<42} median {:>8.2} ms   min {:>8.2} ms   ({n} {what}, {ROUNDS} rounds)",
        times[ROUNDS / 2].as_secs_f64() * 1e3,
        times[0].as_secs_f64() * 1e3
    );
    times[ROUNDS / 2]
}

fn goal(label: &str, got: Duration, limit: Duration) {
    let verdict = if got <= limit { "met" } else { "MISSED" };
    println!(
        "goal: {label} under {} ms: {verdict} ({:.2} ms)",
        limit.as_millis(),
        got.as_secs_f64() * 1e3
    );
}

fn main() {
    let registry = Registry::builtin();
    let texts = corpus();
    let files: Vec<_> = texts
        .iter()
        .map(|t| spec::parse_str(t, "bench").expect("parses"))
        .collect();
    let valid: Vec<_> = files
        .iter()
        .map(|f| spec::validate(f.clone(), &registry, "bench").expect("valid"))
        .collect();
    let stacks: usize = valid
        .iter()
        .map(|v| render::stacks(v, &registry).expect("renders").len())
        .sum();
    println!("corpus: {SPECS} specs, {stacks} stacks");

    measure("parse", || {
        for t in &texts {
            black_box(spec::parse_str(t, "bench").expect("parses"));
        }
    });
    measure("validate", || {
        for f in &files {
            black_box(spec::validate(f.clone(), &registry, "bench").expect("valid"));
        }
    });
    measure("render (stacks + template JSON)", || {
        for v in &valid {
            for s in render::stacks(v, &registry).expect("renders") {
                black_box(s.template.to_json());
            }
        }
    });
    let rendered: Vec<_> = valid
        .iter()
        .flat_map(|v| render::stacks(v, &registry).expect("renders"))
        .collect();
    measure("render (stacks only, no JSON)", || {
        for v in &valid {
            black_box(render::stacks(v, &registry).expect("renders"));
        }
    });
    measure_n("template JSON only", rendered.len(), "stacks", || {
        for s in &rendered {
            black_box(s.template.to_json());
        }
    });
    measure_n("content hash only", rendered.len(), "stacks", || {
        for s in &rendered {
            black_box(s.content_hash());
        }
    });
    let pvr = measure("parse + validate + render", || {
        for t in &texts {
            let f = spec::parse_str(t, "bench").expect("parses");
            let v = spec::validate(f, &registry, "bench").expect("valid");
            for s in render::stacks(&v, &registry).expect("renders") {
                black_box(s.template.to_json());
            }
        }
    });

    // The plan decision from an already fetched state: every stack deployed
    // and in sync (the no-op plan of a pipeline run).
    let defs: Vec<_> = rendered.iter().take(1_000).cloned().collect();
    let state: StateMap = defs
        .iter()
        .map(|d| {
            (
                d.name.clone(),
                StackState {
                    name: d.name.clone(),
                    stack_id: format!(
                        "arn:aws:cloudformation:us-east-1:123456789012:stack/{}/1",
                        d.name
                    ),
                    status: "CREATE_COMPLETE".to_owned(),
                    status_reason: None,
                    hash: Some(d.content_hash()),
                    last_updated: Some("2026-01-01T00:00:00Z".to_owned()),
                    outputs: std::collections::BTreeMap::default(),
                },
            )
        })
        .collect();
    let decide = measure_n(
        "plan decision (state already read)",
        defs.len(),
        "stacks",
        || {
            let d = decisions(&defs, &state).expect("decisions");
            assert!(d.iter().all(|a| *a == ActionKind::NoOp));
            black_box(d);
        },
    );

    // Merging into a 1,000-document catalog-info.yaml.
    let entities: Vec<_> = valid
        .iter()
        .flat_map(|v| catalog::entities(v, &registry, &StackOutputs::new()).expect("entities"))
        .take(1_000)
        .collect();
    let existing = catalog::merge("", &entities).expect("merge");
    let mut changed = entities.clone();
    for e in changed.iter_mut().step_by(10) {
        e.metadata.insert("description".into(), "changed".into());
    }
    measure_n(
        "catalog merge (1,000 documents)",
        entities.len(),
        "entities",
        || {
            black_box(catalog::merge(&existing, &changed).expect("merge"));
        },
    );

    goal(
        "parse + validate + render of 1,000 specs",
        pvr,
        Duration::from_millis(50),
    );
    goal(
        "plan decision for 1,000 stacks",
        decide,
        Duration::from_millis(10),
    );
}
