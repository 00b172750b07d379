/**
 * Provision the example environments with @harmonix/node and print their
 * catalog entities. Type-checked with `tsc --strict` in CI
 * (`npm run typecheck:example` in harmonix-node/).
 *
 *   HARMONIX_ENDPOINT_URL=http://127.0.0.1:5000 node examples/node/provision.js
 */
import { Engine, HarmonixError, loadSpecs, type HarmonixEvent, type Specs } from '@harmonix/node';

async function main(paths: string[]): Promise<number> {
  let specs: Specs;
  try {
    specs = loadSpecs(...(paths.length ? paths : ['examples/specs/ecs.yaml', 'examples/specs/serverless.yaml']));
  } catch (e) {
    if (e instanceof HarmonixError && e.code === 'HARMONIX_VALIDATION') {
      for (const issue of e.issues) console.error(`${issue.path} = ${issue.value ?? ''}: ${issue.message}`);
      return 1;
    }
    throw e;
  }
  const engine = await Engine.create({
    endpointUrl: process.env.HARMONIX_ENDPOINT_URL,
    caller: 'node-example',
    concurrency: 4,
  });
  const plan = await engine.plan(specs);
  console.log(plan.diff());

  const controller = new AbortController();
  process.once('SIGINT', () => controller.abort());
  const onEvent = (e: HarmonixEvent): void => {
    if (e.event === 'stackDone') console.error(`✓ ${e.stack} ${e.status}`);
    if (e.event === 'stackFailed') console.error(`✗ ${e.stack}: ${e.reason}`);
  };
  try {
    const report = await engine.apply(plan, { catalogPath: 'catalog-info.yaml', onEvent, signal: controller.signal });
    for (const entity of report.entities) {
      console.log(`${entity.kind} ${entity.metadata.name}: vpc ${String(entity.metadata['vpc'])}`);
    }
    return 0;
  } catch (e) {
    if (e instanceof HarmonixError) {
      console.error(`${e.code}: ${e.message}${e.stackName ? ` (stack ${e.stackName})` : ''}`);
      return 1;
    }
    throw e;
  }
}

main(process.argv.slice(2)).then((code) => process.exit(code));
