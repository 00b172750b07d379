// The module inside a running Backstage catalog: startTestBackend with the
// real @backstage/plugin-catalog-backend on PostgreSQL, fed the
// catalog-info.yaml a real `harmonix apply` wrote on the emulator, read
// back through the catalog's REST API.
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { copyFileSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { fileURLToPath } from 'node:url';

import { databaseServiceFactory } from '@backstage/backend-defaults/database';
import { mockServices, startTestBackend } from '@backstage/backend-test-utils';
import { parseAllDocuments, stringify } from 'yaml';

import { startEmulator } from '../../../../harmonix-node/test-support/emulator.mjs';
import { startPostgres } from '../../../test-support/postgres.mjs';
import catalogModuleHarmonix from '../src/index.mjs';

const REPO = fileURLToPath(new URL('../../../../', import.meta.url));
const FIXTURES = fileURLToPath(new URL('./fixtures/', import.meta.url));
const HARMONIX = process.env.HARMONIX_BIN ?? join(REPO, 'target', 'debug', 'harmonix');

// Two serverless providers in one environment of a system: every relation
// kind the module emits, on the quickest stacks the emulator deploys.
const SPEC = `
providers:
  - kind: serverless
    name: orders-dev-api
    description: Orders API
    owner: group:orders
    account: "123456789012"
    region: us-east-1
    environmentRole: arn:aws:iam::123456789012:role/opa-envprovisioning-role
    platformRole: arn:aws:iam::111111111111:role/opa-platform-role
    pipelineRole: arn:aws:iam::111111111111:role/opa-pipeline-role
    vpc: { cidr: 10.4.0.0/24 }
    serverless: { stageName: dev }
  - kind: serverless
    name: orders-dev-jobs
    owner: group:orders
    account: "123456789012"
    region: us-east-1
    environmentRole: arn:aws:iam::123456789012:role/opa-envprovisioning-role
    platformRole: arn:aws:iam::111111111111:role/opa-platform-role
    pipelineRole: arn:aws:iam::111111111111:role/opa-pipeline-role
    vpc: { cidr: 10.5.0.0/24 }
    serverless: { stageName: dev }
environments:
  - name: orders-dev
    shortName: dev
    description: Orders development stage
    owner: group:orders
    system: orders
    category: aws
    classification: internal
    level: 1
    deploymentRequiresApproval: false
    providers: [orders-dev-api, orders-dev-jobs]
`;

/** @param {string} file */
function entitiesOf(file) {
  return parseAllDocuments(readFileSync(file, 'utf8'))
    .map((d) => d.toJS())
    .filter(Boolean);
}

/** @param {{kind: string, metadata: {name: string, namespace?: string}}} e */
const refOf = (e) => `${e.kind.toLowerCase()}:${e.metadata.namespace ?? 'default'}/${e.metadata.name}`;

/**
 * @param {() => Promise<T | undefined>} probe resolves to a value when done
 * @param {string} what
 * @template T
 * @returns {Promise<T>}
 */
async function waitFor(probe, what, ms = 60_000) {
  const deadline = Date.now() + ms;
  let last;
  for (;;) {
    try {
      const v = await probe();
      if (v !== undefined) return v;
    } catch (e) {
      last = e;
    }
    if (Date.now() > deadline) throw new Error(`timed out after ${ms} ms waiting for ${what}${last ? `: ${last}` : ''}`);
    await new Promise((r) => setTimeout(r, 250));
  }
}

let pg;
let emu;
let work;
let applied;
let seq = 0;
/** @type {Array<{ stop: () => Promise<void> }>} */
const backends = [];

/**
 * A catalog backend on its own PostgreSQL database (a fresh prefix), the
 * given file locations registered through `catalog.locations`.
 * @param {{ module: boolean, files: string[] }} options
 */
async function startCatalog({ module, files }) {
  seq += 1;
  const backend = await startTestBackend({
    features: [
      databaseServiceFactory,
      mockServices.rootConfig.factory({
        data: {
          backend: { database: { client: 'pg', connection: pg.connection, prefix: `harmonix_catalog_${seq}_` } },
          catalog: {
            processingInterval: { seconds: 1 },
            rules: [{ allow: ['Component', 'System', 'Group', 'Location', 'AWSEnvironmentProvider', 'AWSEnvironment'] }],
            locations: files.map((target) => ({ type: 'file', target })),
          },
        },
      }),
      import('@backstage/plugin-catalog-backend'),
      ...(module ? [catalogModuleHarmonix] : []),
    ],
  });
  backends.push(backend);
  const base = `http://localhost:${backend.server.port()}/api/catalog`;
  /** @param {string} ref */
  const byRef = async (ref) => {
    const [kind, rest] = ref.split(':');
    const [namespace, name] = rest.split('/');
    const r = await fetch(`${base}/entities/by-name/${kind}/${namespace}/${name}`);
    if (r.status === 404) return undefined;
    assert.equal(r.status, 200, `GET ${ref}: ${r.status}`);
    return r.json();
  };
  return { base, byRef };
}

/** @param {any} entity */
const relationsOf = (entity) => (entity.relations ?? []).map((/** @type {any} */ r) => `${r.type} ${r.targetRef}`).sort();

before(async () => {
  pg = await startPostgres();
  emu = await startEmulator();
  work = mkdtempSync(join(tmpdir(), 'harmonix-catalog-'));
  writeFileSync(join(work, 'orders.yaml'), SPEC);
  const r = spawnSync(HARMONIX, ['apply', 'orders.yaml', '--yes'], {
    cwd: work,
    encoding: 'utf8',
    timeout: 180_000,
    env: {
      ...process.env,
      AWS_ACCESS_KEY_ID: 'test',
      AWS_SECRET_ACCESS_KEY: 'test',
      AWS_REGION: 'us-east-1',
      HARMONIX_ENDPOINT_URL: emu.url,
      HARMONIX_CALLER: 'catalog-module-test',
    },
  });
  assert.equal(r.status, 0, `harmonix apply failed (${r.error ?? r.status}):\n${r.stdout}\n${r.stderr}`);
  applied = join(work, 'catalog-info.yaml');
});

after(async () => {
  for (const b of backends) await b.stop();
  await emu?.stop();
  await pg?.stop();
  if (work) rmSync(work, { recursive: true, force: true });
});

describe('with the Harmonix catalog module', () => {
  let catalog;
  let mutable;
  const legacy = join(FIXTURES, 'awslabs-catalog-info.yaml');

  before(async () => {
    // One entity of the applied file under another name, in a file of its
    // own that the rejection test rewrites.
    const [provider] = entitiesOf(applied);
    provider.metadata.name = 'orders-dev-edited';
    mutable = join(work, 'edited.yaml');
    writeFileSync(mutable, stringify(provider));
    catalog = await startCatalog({ module: true, files: [applied, legacy, mutable] });
  });

  it('ingests every entity of the catalog-info.yaml a real harmonix apply wrote, with metadata and relations', async () => {
    const entities = entitiesOf(applied);
    assert.deepEqual(
      entities.map((e) => e.kind).sort(),
      ['AWSEnvironment', 'AWSEnvironmentProvider', 'AWSEnvironmentProvider'],
    );
    const expected = {
      'awsenvironmentprovider:default/orders-dev-api': [
        'dependencyOf awsenvironment:default/orders-dev',
        'ownedBy group:default/orders',
      ],
      'awsenvironmentprovider:default/orders-dev-jobs': [
        'dependencyOf awsenvironment:default/orders-dev',
        'ownedBy group:default/orders',
      ],
      'awsenvironment:default/orders-dev': [
        'dependsOn awsenvironmentprovider:default/orders-dev-api',
        'dependsOn awsenvironmentprovider:default/orders-dev-jobs',
        'ownedBy group:default/orders',
        'partOf system:default/orders',
      ],
    };
    for (const written of entities) {
      const ref = refOf(written);
      const want = expected[/** @type {keyof typeof expected} */ (ref)];
      assert.ok(want, `unexpected entity ${ref} in the applied file`);
      const got = await waitFor(async () => {
        const e = await catalog.byRef(ref);
        return e && JSON.stringify(relationsOf(e)) === JSON.stringify(want) ? e : undefined;
      }, `${ref} with relations ${want.join(', ')}`);
      // Every Harmonix metadata field comes through as written.
      for (const [k, v] of Object.entries(written.metadata)) {
        if (k === 'annotations') {
          for (const [ak, av] of Object.entries(v)) assert.equal(got.metadata.annotations[ak], av, `${ref} annotation ${ak}`);
        } else {
          assert.deepEqual(got.metadata[k], v, `${ref} metadata.${k}`);
        }
      }
      assert.deepEqual(got.spec, written.spec, `${ref} spec`);
    }
  });

  it('accepts the original awslabs Harmonix entities, with their relations', async () => {
    const expected = {
      'awsenvironmentprovider:default/legacy-ecs-dev': [
        'dependencyOf awsenvironment:default/legacy-dev',
        'ownedBy group:default/legacy-platform',
      ],
      'awsenvironmentprovider:default/legacy-eks-dev': ['ownedBy group:default/legacy-platform'],
      'awsenvironment:default/legacy-dev': [
        'dependsOn awsenvironmentprovider:default/legacy-ecs-dev',
        'ownedBy group:default/legacy-platform',
        'partOf system:default/legacy',
      ],
    };
    const written = entitiesOf(legacy);
    assert.deepEqual(written.map(refOf).sort(), Object.keys(expected).sort());
    for (const w of written) {
      const ref = refOf(w);
      const want = expected[/** @type {keyof typeof expected} */ (ref)];
      const got = await waitFor(async () => {
        const e = await catalog.byRef(ref);
        return e && JSON.stringify(relationsOf(e)) === JSON.stringify(want) ? e : undefined;
      }, `${ref} with relations ${want.join(', ')}`);
      if (w.kind === 'AWSEnvironmentProvider') assert.equal(got.metadata.iacType, 'cdk');
      else assert.equal(got.metadata.repoUrl, w.metadata.repoUrl);
      assert.deepEqual(got.spec, w.spec);
    }
  });

  it('rejects an invalid Harmonix entity with the schema message naming the field', async () => {
    const ref = 'awsenvironmentprovider:default/orders-dev-edited';
    await waitFor(() => catalog.byRef(ref), ref);
    const [bad] = entitiesOf(mutable);
    bad.metadata.awsAccount = '12345';
    delete bad.metadata.stackName;
    writeFileSync(mutable, stringify(bad));
    const refresh = await fetch(`${catalog.base}/refresh`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ entityRef: ref }),
    });
    assert.equal(refresh.status, 200);
    // The catalog keeps the last valid version and shows the error in its status.
    const entity = await waitFor(async () => {
      const e = await catalog.byRef(ref);
      return e?.status?.items?.length ? e : undefined;
    }, `a processing error on ${ref}`);
    const status = JSON.stringify(entity.status.items);
    assert.match(status, /AWSEnvironmentProvider\.v1alpha\.schema\.json: /);
    assert.match(status, /\/metadata\/awsAccount must match pattern \\"\^\[0-9\]\{12\}\$\\"/);
    assert.match(status, /\/metadata must have required property 'stackName'/);
    assert.equal(entity.metadata.awsAccount, '123456789012', 'the last valid version stays');

    // The catalog's validate endpoint gives the same verdict on a new entity.
    bad.metadata.name = 'never-seen';
    const v = await fetch(`${catalog.base}/validate-entity`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ entity: bad, location: 'url:https://git.example.com/envs/catalog-info.yaml' }),
    });
    assert.equal(v.status, 400);
    assert.match(JSON.stringify(await v.json()), /\/metadata\/awsAccount must match pattern/);
    assert.equal(await catalog.byRef('awsenvironmentprovider:default/never-seen'), undefined);
  });
});

describe('without the module (control)', () => {
  it('the same file ingests none of its Harmonix entities', async () => {
    // A plain Component in a second location shows processing has run.
    const marker = join(work, 'marker.yaml');
    copyFileSync(join(FIXTURES, 'component.yaml'), marker);
    const catalog = await startCatalog({ module: false, files: [applied, marker] });
    await waitFor(() => catalog.byRef('component:default/processing-marker'), 'the marker component');
    const generated = await waitFor(async () => {
      const r = await fetch(`${catalog.base}/entities?filter=kind=location`);
      const list = await r.json();
      return list.length >= 2 ? list : undefined;
    }, 'both locations');
    assert.ok(generated.length >= 2);
    for (const e of entitiesOf(applied)) {
      assert.equal(await catalog.byRef(refOf(e)), undefined, `${refOf(e)} without the module`);
      const v = await fetch(`${catalog.base}/validate-entity`, {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: JSON.stringify({ entity: e, location: 'url:https://git.example.com/envs/catalog-info.yaml' }),
      });
      assert.equal(v.status, 400);
      assert.match(JSON.stringify(await v.json()), /No processor recognized the entity/);
    }
  });
});
