// @harmonix/node against the local emulator: validation with codes and
// paths, plan/apply/no-op/destroy, events, abort, error codes.
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, existsSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';

import harmonix from '../dist/index.js';
import { EXAMPLES, exampleText, startEmulator, useDummyCredentials } from '../test-support/emulator.mjs';

const { Engine, HarmonixError, Plan, loadSpecs, parseSpecs, specsFromObject, validate, schema } = harmonix;

useDummyCredentials();

function tmp() {
  return mkdtempSync(join(tmpdir(), 'harmonix-node-'));
}

async function engine(url, extra = {}) {
  return Engine.create({
    endpointUrl: url,
    caller: 'node-test',
    apiRate: 500,
    apiBurst: 100,
    pollIntervalSeconds: [0.02, 0.2],
    ...extra,
  });
}

const orders = () => parseSpecs(exampleText('serverless.yaml', true), 'orders.yaml');
const payments = () => parseSpecs(exampleText('ecs.yaml', true), 'ecs.yaml');

describe('specs without AWS', () => {
  test('examples load; problems carry paths, values and messages', () => {
    const specs = loadSpecs(join(EXAMPLES, 'multi.yaml'));
    assert.equal(specs.length, 1);
    assert.deepEqual(
      specs.stacks().map((s) => s.name),
      ['opa-shop-dev-ecs-environment', 'opa-shop-dev-api-environment', 'shop-shop-prod-ecs-environment'],
    );
    const bad = exampleText('ecs.yaml').replace('cidr: 10.0.0.0/24', 'cidr: 10.0.0.0/8');
    const issues = validate(bad);
    assert.deepEqual(issues.map((i) => [i.path, i.value]), [['providers[0].vpc.cidr', '10.0.0.0/8']]);
    assert.throws(
      () => parseSpecs(bad, 'bad.yaml'),
      (e) =>
        e instanceof HarmonixError &&
        e.code === 'HARMONIX_VALIDATION' &&
        e.issues[0].path === 'providers[0].vpc.cidr' &&
        e.message.includes('bad.yaml'),
    );
    assert.deepEqual(validate({ providers: [{ kind: 'ecs', name: 'x', colour: 1 }] }).map((i) => i.path).includes('providers[0].colour'), true);
    assert.throws(() => specsFromObject({ providers: 'nope' }), { code: 'HARMONIX_VALIDATION' });
    assert.throws(() => loadSpecs('/nonexistent.yaml'), { code: 'HARMONIX_IO' });
    assert.ok(schema().properties.providers);
  });

  test('render is deterministic; entities before deployment', async () => {
    const specs = orders().concat(payments());
    const a = await specs.render(join(tmp(), 'a'));
    const b = await specs.render(join(tmp(), 'b'));
    assert.equal(a.length, b.length);
    for (let i = 0; i < a.length; i++) {
      assert.equal(readFileSync(a[i], 'utf8'), readFileSync(b[i], 'utf8'));
    }
    assert.deepEqual(specs.entities().map((e) => e.metadata.name), ['orders-dev', 'payments-dev']);
  });

  test('bad options are clear errors', async () => {
    await assert.rejects(Engine.create({ apiRate: 0 }), (e) => e.code === 'HARMONIX_INVALID_INPUT' && /api_budget\.rate/.test(e.message));
    await assert.rejects(Engine.create({ externalId: 'SEKRIT!' }), (e) => !e.message.includes('SEKRIT'));
  });
});

/** Delete what a destroy kept, as a user does before creating the
 * environment again (its names are fixed): the audit table (deletion
 * protection off first) and the log groups; keys have no fixed name. */
async function deleteKept(url, kept) {
  const call = async (service, target, body) => {
    const r = await fetch(url, {
      method: 'POST',
      headers: {
        'content-type': 'application/x-amz-json-1.1',
        'x-amz-target': target,
        authorization: `AWS4-HMAC-SHA256 Credential=testing/20260101/us-east-1/${service}/aws4_request, SignedHeaders=host, Signature=x`,
      },
      body: JSON.stringify(body),
    });
    assert.equal(r.status, 200, await r.text());
  };
  for (const k of kept) {
    if (k.resourceType === 'AWS::DynamoDB::Table') {
      await call('dynamodb', 'DynamoDB_20120810.UpdateTable', { TableName: k.physicalId, DeletionProtectionEnabled: false });
      await call('dynamodb', 'DynamoDB_20120810.DeleteTable', { TableName: k.physicalId });
    } else if (k.resourceType === 'AWS::Logs::LogGroup') {
      await call('logs', 'Logs_20140328.DeleteLogGroup', { logGroupName: k.physicalId });
    }
  }
}

describe('engine on the emulator', () => {
  let emu;
  before(async () => {
    emu = await startEmulator();
  });
  after(async () => {
    await emu.stop();
  });

  test('plan, apply, no-op, status, catalog, stale plan, destroy', async () => {
    const e = await engine(emu.url);
    const specs = orders();
    const planned = [];
    const plan = await e.plan(specs, { onEvent: (ev) => planned.push(ev) });
    assert.equal(plan.kind, 'deploy');
    assert.equal(plan.isNoop, false);
    assert.equal(plan.stacks[0].action, 'create');
    assert.ok(plan.stacks[0].changes.some((c) => c.logicalId === 'Api'));
    assert.match(plan.diff(), /\+ Api \(AWS::ApiGateway::RestApi\) create/);
    assert.equal(plan.summary.add, plan.stacks[0].changes.length);
    assert.equal(planned.at(-1).event, 'planned');
    // The plan file round-trips; a modified one is refused.
    const again = Plan.fromJSON(JSON.stringify(plan));
    assert.equal(again.contentHash, plan.contentHash);
    assert.throws(() => Plan.fromJSON(plan.text.replace('"dev"', '"prod"')), { code: 'HARMONIX_INVALID_PLAN' });

    const dir = tmp();
    const events = [];
    const report = await e.apply(again, { catalogPath: join(dir, 'catalog-info.yaml'), onEvent: (ev) => events.push(ev) });
    assert.equal(report.succeeded, true);
    assert.deepEqual(report.stacks.map((s) => s.outcome), ['created']);
    // First use in this account/region: the bootstrap stack (API Gateway's
    // logging role, an account-level setting) runs before the environment.
    assert.deepEqual(events.map((ev) => ev.event), ['locked', 'started', 'stackDone', 'started', 'stackDone', 'finished', 'catalogWritten']);
    assert.deepEqual(
      events.filter((ev) => ev.event === 'started').map((ev) => ev.stack),
      ['harmonix-bootstrap', 'opa-orders-dev-environment'],
    );
    assert.equal(report.catalog.outcome, 'created');
    assert.equal(report.entities[0].metadata.name, 'orders-dev');
    assert.ok(existsSync(join(dir, 'catalog-info.yaml')));

    const before = e.requestCounts();
    const noop = await e.plan(specs);
    assert.equal(noop.isNoop, true);
    const after = e.requestCounts();
    const delta = Object.fromEntries(Object.entries(after).map(([k, v]) => [k, v - (before[k] ?? 0)]).filter(([, v]) => v));
    assert.deepEqual(delta, { DescribeStacks: 1 });

    const [target] = await e.status(specs);
    assert.deepEqual(target.stacks.map((s) => [s.name, s.drift]), [['opa-orders-dev-environment', 'inSync']]);
    const { entities, catalog } = await e.writeCatalog(specs, join(dir, 'other.yaml'));
    assert.equal(catalog.outcome, 'created');
    assert.deepEqual(entities, report.entities);

    await assert.rejects(e.apply(again), (err) => err.code === 'HARMONIX_PLAN_STALE' && err.stackName === 'opa-orders-dev-environment');

    // Deleting the data of a production environment needs its own flag.
    await assert.rejects(
      e.destroy(loadSpecs(join(EXAMPLES, 'multi.yaml')), { deleteData: true }),
      (err) => err.code === 'HARMONIX_INVALID_INPUT' && err.message.includes('shop-prod-ecs'),
    );

    const gone = await e.destroy(specs);
    assert.deepEqual(gone.stacks.map((s) => s.outcome), ['deleted']);
    assert.deepEqual(gone.kept.map((k) => k.logicalId).sort(), ['AuditTable', 'EnvironmentKey', 'EnvironmentLogGroup']);
    assert.equal((await e.status(specs))[0].stacks[0].drift, 'missing');
    // A new create would collide with the kept names: refused until they go.
    await assert.rejects(e.plan(specs), (err) => err.code === 'HARMONIX_STACK_NOT_READY' && err.message.includes('opa-orders-dev-audit'));
    await deleteKept(emu.url, gone.kept);
    const fresh = await e.plan(specs);
    assert.equal(fresh.stacks[0].action, 'create');
    await e.discard(fresh);
  });

  test('a failed stack rejects with HARMONIX_STACK_FAILED and the report', async () => {
    // The emulator cannot create EKS clusters through CloudFormation.
    const e = await engine(emu.url);
    const specs = loadSpecs(join(EXAMPLES, 'eks-public.yaml'));
    await assert.rejects(e.apply(specs), (err) => {
      assert.equal(err.code, 'HARMONIX_STACK_FAILED');
      assert.equal(err.stackName, 'opa-web-dev-environment');
      assert.match(err.reason, /ExecuteChangeSet/);
      assert.equal(err.report.succeeded, false);
      return true;
    });
    // Without rejecting: the same facts in the report (another environment:
    // the emulator leaves the failed one reviewable, and its change set
    // then executes).
    const qa = parseSpecs(
      readFileSync(join(EXAMPLES, 'eks-public.yaml'), 'utf8').replace('name: web-dev', 'name: web-qa'),
      'eks-qa.yaml',
    );
    const report = await e.apply(qa, { rejectOnFailure: false });
    assert.deepEqual(report.stacks.map((s) => s.outcome), ['failed']);
    assert.equal(report.succeeded, false);
  });

  test('abort stops starting new stacks; the event loop stays free', async () => {
    const e = await engine(emu.url, { concurrency: 1 });
    // Another name than the first test's: its destroy kept that
    // environment's audit table, key and log group (retained data), so
    // creating it again under the same names is refused.
    const abortOrders = parseSpecs(
      exampleText('serverless.yaml', true).replace('name: orders-dev', 'name: orders-abort'),
      'orders-abort.yaml',
    );
    const specs = abortOrders.concat(payments());
    await e.bootstrap(specs); // the account-level stack first, as an admin would
    const plan = await e.plan(specs);
    const controller = new AbortController();
    let ticks = 0;
    const timer = setInterval(() => ticks++, 1);
    const started = [];
    await assert.rejects(
      e.apply(plan, {
        signal: controller.signal,
        onEvent: (ev) => {
          if (ev.event === 'started') {
            started.push(ev.stack);
            controller.abort();
          }
        },
      }),
      (err) => err.code === 'HARMONIX_CANCELLED' && err.report.stacks.some((s) => s.outcome === 'cancelled'),
    );
    clearInterval(timer);
    assert.equal(started.length, 1);
    assert.ok(ticks > 0, 'timers ran while the engine worked');
    const drifts = (await e.status(specs))[0].stacks.map((s) => s.drift).sort();
    assert.deepEqual(drifts, ['inSync', 'missing']);
    // Re-running converges; locks were released.
    const report = await e.apply(specs);
    assert.deepEqual(report.stacks.map((s) => s.outcome).sort(), ['created', 'unchanged']);
    const gone = await e.destroy(specs);
    await deleteKept(emu.url, gone.kept);
  });

  test('a held lock names its holder', async () => {
    const e = await engine(emu.url);
    // A name no earlier test used (a destroyed one keeps its data).
    const specs = parseSpecs(
      exampleText('serverless.yaml', true).replace('name: orders-dev', 'name: orders-locked'),
      'orders-locked.yaml',
    );
    await e.bootstrap(specs);
    const now = Date.now();
    const item = {
      lockId: { S: '123456789012/us-east-1/opa-orders-locked' },
      holderId: { S: 'someone-else' },
      host: { S: 'runner-9' },
      pid: { N: '777' },
      user: { S: 'gitlab-runner' },
      command: { S: 'harmonix apply orders.yaml' },
      acquiredAt: { N: String(now) },
      expiresAt: { N: String(now + 600_000) },
    };
    // Written the way another harmonix run writes it (DynamoDB JSON API).
    const r = await fetch(emu.url, {
      method: 'POST',
      headers: {
        'content-type': 'application/x-amz-json-1.0',
        'x-amz-target': 'DynamoDB_20120810.PutItem',
        authorization: 'AWS4-HMAC-SHA256 Credential=testing/20260101/us-east-1/dynamodb/aws4_request, SignedHeaders=host, Signature=x',
      },
      body: JSON.stringify({ TableName: 'harmonix-locks', Item: item }),
    });
    assert.equal(r.status, 200, await r.text());
    await assert.rejects(e.apply(specs), (err) => {
      assert.equal(err.code, 'HARMONIX_LOCK_HELD');
      assert.equal(err.lockId, '123456789012/us-east-1/opa-orders-locked');
      assert.match(err.holder, /gitlab-runner@runner-9 pid 777/);
      return true;
    });
  });
});
