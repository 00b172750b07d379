// Which spec and providers a catalog entity stands for, and the audit
// limit parameter; no AWS, no backend.
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { describe, test } from 'node:test';

import { EXAMPLES } from '../../../../harmonix-node/test-support/emulator.mjs';
import { auditLimit, loadSpecFiles, resolveEntity } from '../src/index.mjs';

const files = loadSpecFiles([join(EXAMPLES, 'ecs.yaml'), join(EXAMPLES, 'multi.yaml')]);

/**
 * @param {string} kind
 * @param {string} name
 * @param {Record<string, unknown>} [extra]
 * @returns {import('@backstage/catalog-model').Entity}
 */
const entity = (kind, name, extra = {}) => ({
  apiVersion: 'aws.backstage.io/v1alpha',
  kind,
  metadata: { name, namespace: 'default', ...extra },
});

describe('resolveEntity', () => {
  test('a provider entity: its spec file, the provider and its stacks', () => {
    const r = resolveEntity(files, entity('AWSEnvironmentProvider', 'shop-dev-api', { awsAccount: '123456789012' }));
    assert.ok(r);
    assert.equal(r.path, join(EXAMPLES, 'multi.yaml'));
    assert.deepEqual([...r.providers], ['shop-dev-api']);
    assert.deepEqual([...r.stacks], ['opa-shop-dev-api-environment']);
  });

  test('an environment entity: the providers it depends on', () => {
    const r = resolveEntity(files, entity('AWSEnvironment', 'shop-dev'));
    assert.ok(r);
    assert.deepEqual([...r.providers], ['shop-dev-ecs']);
    assert.deepEqual([...r.stacks], ['opa-shop-dev-ecs-environment']);
  });

  test('same name in another account, another namespace, kind or apiVersion: not this spec', () => {
    assert.equal(resolveEntity(files, entity('AWSEnvironmentProvider', 'shop-prod-ecs', { awsAccount: '123456789012' })), undefined);
    assert.ok(resolveEntity(files, entity('AWSEnvironmentProvider', 'shop-prod-ecs', { awsAccount: '210987654321' })));
    assert.equal(resolveEntity(files, entity('AWSEnvironmentProvider', 'payments-dev', { namespace: 'other' })), undefined);
    assert.equal(resolveEntity(files, entity('Component', 'payments-dev')), undefined);
    assert.equal(resolveEntity(files, { ...entity('AWSEnvironmentProvider', 'payments-dev'), apiVersion: 'backstage.io/v1alpha1' }), undefined);
    assert.ok(resolveEntity(files, entity('AWSEnvironmentProvider', 'payments-dev')));
  });
});

test('auditLimit: default 20, 1 to 1000, anything else refused with the value', () => {
  assert.equal(auditLimit(undefined), 20);
  assert.equal(auditLimit('1'), 1);
  assert.equal(auditLimit('1000'), 1000);
  for (const bad of ['0', '1001', '-1', '2.5', 'ten', '1e2']) {
    assert.throws(() => auditLimit(bad), (e) => e instanceof Error && e.name === 'InputError' && e.message.startsWith(`limit=${bad}:`));
  }
});
