// Runs the Harmonix action handlers with createMockActionContext under node:test.
import '../test-support/jest-shim.mjs'; // must come before any Backstage test utility
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { validate } from 'jsonschema';
import { createMockActionContext } from '@backstage/plugin-scaffolder-node-test-utils';
import { createHarmonixActions, PLAN_ACTION_ID, PROVISION_ACTION_ID } from '../src/actions.mjs';
import { captureLogger, ecsSpec, fakeEngine, messages, outputsOf, tempWorkspace } from '../test-support/helpers.mjs';

/** @type {{ dir: string, cleanup: () => Promise<void> }} */
let ws;
before(async () => {
  ws = await tempWorkspace();
});
after(async () => {
  await ws.cleanup();
});

/** @param {any[]} actions @param {string} id */
function byId(actions, id) {
  const action = actions.find((a) => a.id === id);
  assert.ok(action, `action ${id} exists`);
  return action;
}

describe('createHarmonixActions', () => {
  it('returns the plan and provision actions with JSON Schemas built from zod', () => {
    const actions = createHarmonixActions({ engine: fakeEngine() });
    assert.deepEqual(
      actions.map((a) => a.id),
      [PLAN_ACTION_ID, PROVISION_ACTION_ID],
    );
    for (const action of actions) {
      assert.equal(typeof action.handler, 'function');
      assert.equal(action.supportsDryRun, true);
      // createTemplateAction replaced the zod factories by JSON Schema.
      assert.equal(action.schema.input.type, 'object');
      assert.deepEqual(action.schema.input.required, ['spec']);
      assert.equal(action.schema.input.properties.spec.type, 'object');
      assert.deepEqual(action.schema.input.properties.spec.properties.providers.items.properties.kind.enum, [
        'ecs',
        'ecs-ec2',
        'eks',
        'serverless',
      ]);
      assert.deepEqual(Object.keys(action.schema.output.properties).sort(), ['entityRef', 'outputs']);
    }
  });

  it('input schema accepts a spec and rejects bad input (what the scaffolder runner checks)', () => {
    const [plan] = createHarmonixActions({ engine: fakeEngine() });
    // NunjucksWorkflowRunner validates rendered step input with
    // jsonschema.validate(input, action.schema.input) before calling the handler.
    assert.equal(validate({ spec: ecsSpec }, plan.schema.input).valid, true);
    assert.equal(validate({}, plan.schema.input).valid, false);
    assert.equal(validate({ spec: { providers: [] } }, plan.schema.input).valid, false);
    assert.equal(
      validate({ spec: { providers: [{ kind: 'lambda', name: 'x' }] } }, plan.schema.input).valid,
      false,
    );
  });
});

describe(PLAN_ACTION_ID, () => {
  it('plans through the engine, logs each change and sets outputs', async () => {
    const engine = fakeEngine();
    const [plan] = createHarmonixActions({ engine });
    const logger = captureLogger();
    const ctx = createMockActionContext({
      input: { spec: ecsSpec },
      workspacePath: ws.dir,
      logger,
    });

    await plan.handler(ctx);

    assert.equal(engine.plan.mock.callCount(), 1);
    assert.deepEqual(engine.plan.mock.calls[0].arguments, [ecsSpec]);
    assert.equal(engine.apply.mock.callCount(), 0);
    assert.deepEqual(messages(logger.info), [
      'Planning Harmonix environment providers: payments-dev',
      'create opa-payments-dev-environment',
      '1 stack(s) to change',
    ]);
    assert.deepEqual(outputsOf(ctx), {
      entityRef: 'awsenvironmentprovider:default/payments-dev',
      outputs: { changes: 1, summary: '1 stack(s) to change' },
    });
  });

  it('works with the default (winston) ctx.logger of createMockActionContext', async () => {
    const [plan] = createHarmonixActions({ engine: fakeEngine() });
    const ctx = createMockActionContext({ input: { spec: ecsSpec }, workspacePath: ws.dir });
    await plan.handler(ctx);
    assert.equal(ctx.output.mock.callCount(), 2);
    // The mock context's other fields behave as documented.
    assert.equal(ctx.workspacePath, ws.dir);
    assert.equal(await ctx.createTemporaryDirectory(), ws.dir); // jest.fn().mockResolvedValue
    assert.equal(ctx.task.id, 'mock-task-id');
    assert.equal(await ctx.checkpoint({ key: 'k', fn: async () => 42 }), 42);
  });
});

describe(PROVISION_ACTION_ID, () => {
  it('applies through the engine and outputs entityRef and stack outputs', async () => {
    const engine = fakeEngine();
    const [, provision] = createHarmonixActions({ engine });
    const logger = captureLogger();
    const ctx = createMockActionContext({
      input: { spec: ecsSpec },
      workspacePath: ws.dir,
      logger,
    });

    await provision.handler(ctx);

    assert.equal(engine.apply.mock.callCount(), 1);
    assert.deepEqual(engine.apply.mock.calls[0].arguments, [ecsSpec]);
    assert.equal(engine.plan.mock.callCount(), 0);
    assert.deepEqual(messages(logger.info), [
      'Provisioning Harmonix environment providers: payments-dev',
      'Provisioned awsenvironmentprovider:default/payments-dev',
    ]);
    assert.deepEqual(outputsOf(ctx), {
      entityRef: 'awsenvironmentprovider:default/payments-dev',
      outputs: { ClusterName: 'opa-payments-dev-cluster', VpcId: 'vpc-0123456789abcdef0' },
    });
  });

  it('only plans in a dry run', async () => {
    const engine = fakeEngine();
    const [, provision] = createHarmonixActions({ engine });
    const logger = captureLogger();
    // createMockActionContext does not take isDryRun: set it on the result.
    const ctx = {
      ...createMockActionContext({ input: { spec: ecsSpec }, workspacePath: ws.dir, logger }),
      isDryRun: true,
    };

    await provision.handler(ctx);

    assert.equal(engine.apply.mock.callCount(), 0);
    assert.equal(engine.plan.mock.callCount(), 1);
    assert.deepEqual(messages(logger.info), ['Dry run: planning only for payments-dev']);
    assert.deepEqual(outputsOf(ctx), {
      entityRef: 'awsenvironmentprovider:default/payments-dev',
      outputs: {},
    });
  });

  it('handler does not validate input itself and propagates engine errors', async () => {
    const engine = fakeEngine();
    engine.apply.mock.mockImplementation(async () => {
      throw new Error('stack rollback');
    });
    const [, provision] = createHarmonixActions({ engine });
    // Input that violates the schema still reaches the handler when called
    // directly: validation is the runner's job, not createTemplateAction's.
    const ctx = createMockActionContext({
      input: { spec: { providers: [{ kind: 'lambda', name: 'Bad_Name' }] } },
      workspacePath: ws.dir,
      logger: captureLogger(),
    });
    await assert.rejects(provision.handler(ctx), /stack rollback/);
    assert.equal(engine.apply.mock.callCount(), 1);
    assert.equal(ctx.output.mock.callCount(), 0);
  });
});
