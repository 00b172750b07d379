// Time loading and planning spec files through @harmonix/node, for
// benches/bindings_plan.py (which compares it with Rust on one emulator).
//
//   node bench/plan.mjs ENDPOINT ITERATIONS FILE...
//
// One engine for every iteration; each iteration loads the files and plans
// them. Prints one JSON object: per-iteration ms (after a warm-up), median,
// stacks, no-op.
import harmonix from '../dist/index.js';

const [endpoint, iterations, ...files] = process.argv.slice(2);
const n = Number(iterations ?? 10);
const engine = await harmonix.Engine.create({ endpointUrl: endpoint, caller: 'bench', apiRate: 10000, apiBurst: 10000 });
const times = [];
let stacks = 0;
let noop = true;
for (let i = 0; i <= n; i++) {
  const start = process.hrtime.bigint();
  const plan = await engine.plan(harmonix.loadSpecs(...files));
  const ms = Number(process.hrtime.bigint() - start) / 1e6;
  stacks = plan.stacks.length;
  noop = noop && plan.isNoop;
  if (i > 0) times.push(ms);
}
const sorted = [...times].sort((a, b) => a - b);
console.log(JSON.stringify({ iterations_ms: times, median_ms: sorted[Math.floor(sorted.length / 2)], stacks, noop }));
