import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { describe, it } from 'node:test';

import {
  ANNOTATION_MANAGED_BY,
  SCHEMA_DIR,
  formatValidationErrors,
  harmonixRelations,
  isHarmonixEntity,
  schemaVariantFor,
  schemas,
  validateHarmonixEntity,
} from '../src/index.mjs';

/** Every example of a schema file is valid against it. */
function examples(kind, variant) {
  return schemas[kind][variant].schema.examples;
}

describe('schemas', () => {
  it('are files in SCHEMA_DIR, each example valid under its own variant', () => {
    for (const [kind, variants] of Object.entries(schemas)) {
      for (const [variant, { file }] of Object.entries(variants)) {
        assert.ok(existsSync(join(SCHEMA_DIR, file)), file);
        const ex = examples(kind, variant);
        assert.ok(ex.length > 0, `${file} has examples`);
        for (const e of ex) {
          assert.equal(schemaVariantFor(e), variant, file);
          assert.deepEqual(validateHarmonixEntity(e), [], file);
        }
      }
    }
  });
});

describe('validateHarmonixEntity', () => {
  const provider = structuredClone(examples('AWSEnvironmentProvider', 'harmonix')[0]);

  it('reports each bad field with its path and the schema file', () => {
    const bad = structuredClone(provider);
    bad.metadata.awsAccount = '12345';
    delete bad.metadata.stackName;
    const errors = validateHarmonixEntity(bad);
    assert.deepEqual(
      errors.map((e) => e.path).sort(),
      ['/metadata/awsAccount', '/metadata/stackName'],
    );
    assert.ok(errors.every((e) => e.schema === 'AWSEnvironmentProvider.v1alpha.schema.json'));
    assert.match(formatValidationErrors(errors), /^AWSEnvironmentProvider\.v1alpha\.schema\.json: .*\/metadata\/awsAccount must match pattern "\^\[0-9\]\{12\}\$"/);
  });

  it('an entity annotated as ours does not fall back to the awslabs shape', () => {
    const e = structuredClone(examples('AWSEnvironmentProvider', 'awslabs')[0]);
    assert.deepEqual(validateHarmonixEntity(e), []);
    e.metadata.annotations = { [ANNOTATION_MANAGED_BY]: 'harmonix' };
    assert.ok(validateHarmonixEntity(e).some((x) => x.path === '/metadata/stackName'));
  });

  it('the awslabs shape still needs spec.owner', () => {
    const e = structuredClone(examples('AWSEnvironment', 'awslabs')[0]);
    delete e.spec.owner;
    const errors = validateHarmonixEntity(e);
    assert.deepEqual(errors.map((x) => [x.path, x.schema]), [['/spec/owner', 'AWSEnvironment.awslabs.schema.json']]);
  });

  it('a foreign kind or apiVersion is not ours', () => {
    assert.equal(isHarmonixEntity({ apiVersion: 'backstage.io/v1alpha1', kind: 'AWSEnvironment' }), false);
    assert.equal(isHarmonixEntity({ apiVersion: 'aws.backstage.io/v1alpha', kind: 'Component' }), false);
    const [err] = validateHarmonixEntity({ apiVersion: 'aws.backstage.io/v1alpha', kind: 'Component' });
    assert.equal(err.path, '/kind');
  });
});

describe('harmonixRelations', () => {
  it('owner, system and providers, each with its inverse; bare names get the default kinds', () => {
    const env = {
      apiVersion: 'aws.backstage.io/v1alpha',
      kind: 'AWSEnvironment',
      metadata: { name: 'dev', namespace: 'default' },
      spec: { type: 'environment', lifecycle: 'x', owner: 'platform', system: 'shop', dependsOn: ['ecs-dev'] },
    };
    const rel = harmonixRelations(env).map((r) => `${r.source.kind}:${r.source.name} ${r.type} ${r.target.kind}:${r.target.name}`);
    assert.deepEqual(rel, [
      'AWSEnvironment:dev ownedBy Group:platform',
      'Group:platform ownerOf AWSEnvironment:dev',
      'AWSEnvironment:dev partOf System:shop',
      'System:shop hasPart AWSEnvironment:dev',
      'AWSEnvironment:dev dependsOn AWSEnvironmentProvider:ecs-dev',
      'AWSEnvironmentProvider:ecs-dev dependencyOf AWSEnvironment:dev',
    ]);
  });
});
