// The Harmonix actions run by the scaffolder's mock context against the
// local AWS emulator, through the real @harmonix/node addon: a real
// provision of the example ECS spec whose catalog entity Backstage's own
// model validates.
import '../test-support/jest-shim.mjs'; // must come before any Backstage test utility
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { validate } from 'jsonschema';
import { createMockActionContext } from '@backstage/plugin-scaffolder-node-test-utils';

import { createHarmonixActions, PLAN_ACTION_ID, PROVISION_ACTION_ID } from '../src/actions.mjs';
import { lazyEngine } from '../src/module.mjs';
import { captureLogger, exampleSpec, messages, outputsOf, tempWorkspace, validateCatalog } from '../test-support/helpers.mjs';
import { startEmulator, useDummyCredentials } from '../../../harmonix-node/test-support/emulator.mjs';

useDummyCredentials();

/** @param {any[]} actions @param {string} id */
function byId(actions, id) {
  const action = actions.find((a) => a.id === id);
  assert.ok(action, `action ${id} exists`);
  return action;
}

/** @type {{ url: string, stop: () => Promise<unknown> }} */
let emu;
/** @type {any[]} */
let actions;
before(async () => {
  emu = await startEmulator();
  const engine = lazyEngine({ endpointUrl: emu.url, caller: 'backstage-test', pollIntervalSeconds: [0.02, 0.2] });
  actions = createHarmonixActions({ engine });
});
after(async () => {
  await emu.stop();
});

describe('action schemas', () => {
  it('are derived from the Harmonix spec schema and accept the examples', () => {
    for (const action of actions) {
      assert.equal(action.supportsDryRun, true);
      const spec = action.schema.input.properties.spec;
      assert.deepEqual(spec.properties.providers.items.properties.kind.enum, ['ecs', 'ecs-ec2', 'eks', 'serverless', 'backstage-platform', 'vm-image']);
      for (const name of ['ecs.yaml', 'eks-existing.yaml', 'multi.yaml', 'serverless.yaml']) {
        const result = validate({ spec: exampleSpec(name) }, action.schema.input);
        assert.equal(result.valid, true, `${name}: ${result.errors.join(', ')}`);
      }
      // What the scaffolder runner checks before calling the handler.
      assert.equal(validate({}, action.schema.input).valid, false);
      const bad = exampleSpec('ecs.yaml');
      bad.providers[0].kind = 'lambda';
      assert.equal(validate({ spec: bad }, action.schema.input).valid, false);
      bad.providers[0].kind = 'ecs';
      bad.providers[0].colour = 'blue';
      assert.equal(validate({ spec: bad }, action.schema.input).valid, false, 'unknown fields are refused');
    }
  });
});

describe('harmonix:environment:provision and plan on the emulator', () => {
  it('provisions the example ECS spec and writes a valid catalog entity', async () => {
    const ws = await tempWorkspace();
    try {
      const logger = captureLogger();
      const ctx = createMockActionContext({ input: { spec: exampleSpec('ecs.yaml') }, workspacePath: ws.dir, logger });
      await byId(actions, PROVISION_ACTION_ID).handler(ctx);
      const out = outputsOf(ctx);
      assert.equal(out.entityRef, 'awsenvironmentprovider:default/payments-dev');
      assert.deepEqual(out.entityRefs, ['awsenvironmentprovider:default/payments-dev']);
      assert.equal(out.catalogPath, 'catalog-info.yaml');
      assert.ok(out.outputs['opa-payments-dev-environment'], JSON.stringify(out.outputs));
      const logs = messages(logger.info);
      assert.ok(logs.some((m) => m.includes('+ Vpc (AWS::EC2::VPC) create')), logs.join('\n'));
      assert.ok(logs.includes('✓ opa-payments-dev-environment CREATE_COMPLETE'), logs.join('\n'));
      assert.ok(logs.some((m) => m.startsWith('catalog ') && m.endsWith(' created')), logs.join('\n'));

      const file = join(ws.dir, 'catalog-info.yaml');
      const { code, verdicts, stderr } = validateCatalog(file);
      assert.equal(code, 0, `${stderr}\n${JSON.stringify(verdicts, null, 2)}`);
      assert.deepEqual(
        verdicts.map((v) => [v.kind, v.name, v.ok]),
        [['AWSEnvironmentProvider', 'payments-dev', true]],
      );

      // Planning it again: no changes.
      const planLogger = captureLogger();
      const planCtx = createMockActionContext({ input: { spec: exampleSpec('ecs.yaml') }, workspacePath: ws.dir, logger: planLogger });
      await byId(actions, PLAN_ACTION_ID).handler(planCtx);
      const planned = outputsOf(planCtx);
      assert.equal(planned.noChanges, true);
      assert.match(planned.diff, /No changes\./);
      assert.deepEqual(planned.summary, { add: 0, change: 0, destroy: 0, stacksToChange: 0 });
    } finally {
      await ws.cleanup();
    }
  });

  it('a dry run only plans', async () => {
    const ws = await tempWorkspace();
    try {
      const spec = exampleSpec('serverless.yaml', { existingVpc: true });
      const base = createMockActionContext({ input: { spec }, workspacePath: ws.dir, logger: captureLogger() });
      const ctx = { ...base, isDryRun: true };
      await byId(actions, PROVISION_ACTION_ID).handler(ctx);
      assert.equal(outputsOf(ctx).entityRef, 'awsenvironmentprovider:default/orders-dev');
      assert.equal(existsSync(join(ws.dir, 'catalog-info.yaml')), false);
      // Nothing was deployed, and the plan's change sets were discarded.
      const planCtx = createMockActionContext({ input: { spec }, workspacePath: ws.dir, logger: captureLogger() });
      await byId(actions, PLAN_ACTION_ID).handler(planCtx);
      assert.equal(outputsOf(planCtx).noChanges, false);
      assert.equal(outputsOf(planCtx).summary.stacksToChange, 1);
    } finally {
      await ws.cleanup();
    }
  });

  it('an invalid spec fails the task with every field path', async () => {
    const ws = await tempWorkspace();
    try {
      const spec = exampleSpec('ecs.yaml');
      spec.providers[0].vpc.cidr = '10.0.0.0/8';
      spec.providers[0].region = 'us-east-9';
      const ctx = createMockActionContext({ input: { spec }, workspacePath: ws.dir, logger: captureLogger() });
      await assert.rejects(byId(actions, PROVISION_ACTION_ID).handler(ctx), (e) => {
        assert.equal(e.code, 'HARMONIX_VALIDATION');
        assert.match(e.message, /providers\[0\]\.vpc\.cidr = "10\.0\.0\.0\/8"/);
        assert.match(e.message, /providers\[0\]\.region = "us-east-9"/);
        return true;
      });
    } finally {
      await ws.cleanup();
    }
  });

  it('refuses a catalog path outside the workspace', async () => {
    const ws = await tempWorkspace();
    try {
      const ctx = createMockActionContext({
        input: { spec: exampleSpec('ecs.yaml'), catalogPath: '../escape.yaml' },
        workspacePath: ws.dir,
        logger: captureLogger(),
      });
      await assert.rejects(byId(actions, PROVISION_ACTION_ID).handler(ctx), /leaves the workspace/);
    } finally {
      await ws.cleanup();
    }
  });
});
