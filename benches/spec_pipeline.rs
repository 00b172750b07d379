//! Parse + validate + render of 1,000 specs, and the same split by stage.
//!
//! Run: `cargo bench -p harmonix-benches` (release build). Prints the
//! median and minimum of several rounds; the goal (issue 7) is parse +
//! validate + render of 1,000 specs under 50 ms on a 2-core machine.

use std::hint::black_box;
use std::time::{Duration, Instant};

use harmonix_core::provider::Registry;
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

fn measure(label: &str, mut f: impl FnMut()) {
    let mut times: Vec<Duration> = (0..ROUNDS)
        .map(|_| {
            let start = Instant::now();
            f();
            start.elapsed()
        })
        .collect();
    times.sort();
    println!(
        "{label:<42} median {:>8.2} ms   min {:>8.2} ms   ({SPECS} specs, {ROUNDS} rounds)",
        times[ROUNDS / 2].as_secs_f64() * 1e3,
        times[0].as_secs_f64() * 1e3
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
    measure("parse + validate + render", || {
        for t in &texts {
            let f = spec::parse_str(t, "bench").expect("parses");
            let v = spec::validate(f, &registry, "bench").expect("valid");
            for s in render::stacks(&v, &registry).expect("renders") {
                black_box(s.template.to_json());
            }
        }
    });
}
