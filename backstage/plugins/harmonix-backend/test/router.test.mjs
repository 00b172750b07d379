// The router in a running Backstage backend: real catalog and permission
// backends on PostgreSQL, environments applied on the emulator, endpoints
// called as an allowed user, a denied user, and nobody.
import './../test-support/jest-shim.mjs'; // before any Backstage test utility
import assert from 'node:assert/strict';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';

import { mockCredentials } from '@backstage/backend-test-utils';
import harmonix from '@harmonix/node';

import { exampleText, startEmulator, useDummyCredentials } from '../../../../harmonix-node/test-support/emulator.mjs';
import { startPostgres } from '../../../test-support/postgres.mjs';
import { ALLOWED_USER, DENIED_USER, startBackend } from '../test-support/backend.mjs';

useDummyCredentials();

const PAYMENTS = 'awsenvironmentprovider/default/payments-dev';
const ORDERS = 'awsenvironmentprovider/default/orders-dev';
/** Another backend plugin calling (services are not subject to the user policy). */
const SERVICE = 'service';

describe('harmonix router in a running backend', { timeout: 240_000 }, () => {
  /** @type {{ url: string, stop: () => Promise<void> }} */
  let emulator;
  /** @type {Awaited<ReturnType<typeof startPostgres>>} */
  let pg;
  /** @type {Awaited<ReturnType<typeof startBackend>>} */
  let backend;
  let base = '';

  before(async () => {
    emulator = await startEmulator();
    pg = await startPostgres();
    const dir = mkdtempSync(join(tmpdir(), 'harmonix-router-'));
    const payments = join(dir, 'payments.yaml');
    const orders = join(dir, 'orders.yaml');
    const ordersChanged = join(dir, 'orders-changed.yaml');
    const catalogPath = join(dir, 'catalog-info.yaml');
    writeFileSync(payments, exampleText('ecs.yaml', true));
    const ordersText = exampleText('serverless.yaml', true);
    writeFileSync(orders, ordersText);
    // What the platform team's repository says now: a throttling change not applied yet.
    const changed = ordersText.replace('throttlingRateLimit: 100', 'throttlingRateLimit: 150');
    assert.notEqual(changed, ordersText);
    writeFileSync(ordersChanged, changed);

    const engine = await harmonix.Engine.create({
      endpointUrl: emulator.url,
      caller: 'router-test',
      apiRate: 500,
      apiBurst: 100,
      pollIntervalSeconds: [0.02, 0.2],
    });
    const specs = harmonix.loadSpecs(payments, orders);
    const report = await engine.apply(specs, { catalogPath });
    assert.equal(report.succeeded, true);

    backend = await startBackend({
      connection: pg.connection,
      catalogPath,
      specs: [payments, ordersChanged],
      endpointUrl: emulator.url,
    });
    const address = /** @type {import('node:net').AddressInfo} */ (backend.server.address());
    base = `http://127.0.0.1:${address.port}/api`;
    // Wait for the catalog to ingest the applied entities.
    const deadline = Date.now() + 20_000;
    for (;;) {
      const [a, b] = await Promise.all(
        [PAYMENTS, ORDERS].map((ref) => get(`/catalog/entities/by-name/${ref}`, SERVICE)),
      );
      if (a.status === 200 && b.status === 200) break;
      if (Date.now() > deadline) throw new Error(`catalog did not ingest the entities: ${a.status} ${JSON.stringify(a.body)}`);
      await new Promise((r) => setTimeout(r, 500));
    }
  });

  after(async () => {
    await backend?.stop();
    await pg?.stop();
    await emulator?.stop();
  });

  /**
   * @param {string} path
   * @param {string | null} user
   */
  async function get(path, user) {
    const headers =
      user === SERVICE
        ? { authorization: mockCredentials.service.header() }
        : user
          ? { authorization: mockCredentials.user.header(user) }
          : undefined;
    const r = await fetch(`${base}${path}`, { headers });
    const text = await r.text();
    /** @type {any} */
    let body = text;
    try {
      body = JSON.parse(text);
    } catch {
      // not JSON
    }
    return { status: r.status, body };
  }

  /** The router's path of a catalog `kind/namespace/name`: `namespace/kind/name`. */
  const env = (/** @type {string} */ ref, /** @type {string} */ what) => {
    const [kind, namespace, name] = ref.split('/');
    return `/harmonix/environments/${namespace}/${kind}/${name}/${what}`;
  };

  test('stacks: CloudFormation status and whether each matches the spec', async () => {
    const p = await get(env(PAYMENTS, 'stacks'), ALLOWED_USER);
    assert.equal(p.status, 200, JSON.stringify(p.body));
    assert.equal(p.body.entityRef, 'awsenvironmentprovider:default/payments-dev');
    assert.deepEqual(
      p.body.stacks.map((/** @type {any} */ s) => [s.name, s.provider, s.status, s.drift, s.inSync]),
      [['opa-payments-dev-environment', 'payments-dev', 'CREATE_COMPLETE', 'inSync', true]],
    );
    assert.equal(p.body.stacks[0].account, '123456789012');
    // Applied with throttlingRateLimit 100; the spec now says 150.
    const o = await get(env(ORDERS, 'stacks'), ALLOWED_USER);
    assert.equal(o.status, 200, JSON.stringify(o.body));
    assert.deepEqual(
      o.body.stacks.map((/** @type {any} */ s) => [s.name, s.status, s.drift, s.inSync]),
      [['opa-orders-dev-environment', 'CREATE_COMPLETE', 'drifted', false]],
    );
  });

  test('outputs: the stacks outputs', async () => {
    const r = await get(env(PAYMENTS, 'outputs'), ALLOWED_USER);
    assert.equal(r.status, 200, JSON.stringify(r.body));
    assert.equal(r.body.stacks.length, 1);
    const s = r.body.stacks[0];
    assert.equal(s.name, 'opa-payments-dev-environment');
    assert.equal(s.deployed, true);
    assert.equal(s.outputs.AuditTableName, 'opa-payments-dev-audit');
    assert.match(s.outputs.AuditTableArn, /^arn:aws:dynamodb:us-east-1:123456789012:table\/opa-payments-dev-audit$/);
  });

  test('audit: the latest records of the apply, newest first', async () => {
    const r = await get(env(PAYMENTS, 'audit'), ALLOWED_USER);
    assert.equal(r.status, 200, JSON.stringify(r.body));
    assert.deepEqual(r.body.tables, [
      { provider: 'payments-dev', account: '123456789012', region: 'us-east-1', table: 'opa-payments-dev-audit', found: true },
    ]);
    const items = r.body.items;
    assert.ok(items.length >= 1, JSON.stringify(r.body));
    const done = items.find((/** @type {any} */ i) => i.actionType === 'apply' && i.status === 'SUCCESS');
    assert.ok(done, JSON.stringify(items));
    assert.equal(done.providerName, 'payments-dev');
    assert.equal(done.targetAccount, '123456789012');
    assert.equal(done.origin, 'harmonix');
    assert.equal(done.initiatedBy, 'router-test');
    const times = items.map((/** @type {any} */ i) => i.createdAt);
    assert.deepEqual(times, [...times].sort().reverse());
    assert.ok(items.every((/** @type {any} */ i) => i.providerName === 'payments-dev'));
    const one = await get(`${env(PAYMENTS, 'audit')}?limit=1`, ALLOWED_USER);
    assert.equal(one.status, 200);
    assert.equal(one.body.items.length, 1);
    assert.equal(one.body.items[0].createdAt, times[0]);
    const bad = await get(`${env(PAYMENTS, 'audit')}?limit=0`, ALLOWED_USER);
    assert.equal(bad.status, 400);
    assert.match(bad.body.error.message, /limit=0: an integer from 1 to 1000/);
  });

  test('a user the permission policy denies gets 403 on every endpoint', async () => {
    for (const what of ['stacks', 'outputs', 'audit']) {
      const r = await get(env(PAYMENTS, what), DENIED_USER);
      assert.equal(r.status, 403, `${what}: ${JSON.stringify(r.body)}`);
      assert.equal(r.body.error.name, 'NotAllowedError');
      assert.match(r.body.error.message, /not allowed to read awsenvironmentprovider:default\/payments-dev/);
    }
  });

  test('an unknown entity is 404, for a caller allowed or not', async () => {
    for (const user of [ALLOWED_USER, DENIED_USER]) {
      const r = await get(env('awsenvironmentprovider/default/nope', 'stacks'), user);
      assert.equal(r.status, 404, JSON.stringify(r.body));
      assert.match(r.body.error.message, /no entity awsenvironmentprovider:default\/nope in the catalog/);
    }
  });

  test('a catalog entity no configured spec defines is 404, saying so', async () => {
    const locations = await get('/catalog/entities?filter=kind=location', SERVICE);
    assert.equal(locations.status, 200);
    const name = locations.body[0].metadata.name;
    const r = await get(env(`location/default/${name}`, 'stacks'), ALLOWED_USER);
    assert.equal(r.status, 404, JSON.stringify(r.body));
    assert.match(r.body.error.message, /is not defined by a Harmonix spec of this backend \(app-config harmonix.specs\)/);
  });
});
