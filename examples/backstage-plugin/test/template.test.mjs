// Validates templates/harmonix-environment.yaml the way Backstage would:
// catalog entity policies + the scaffolder's Template kind validator, the form
// pages as JSON Schema, and the rendered step inputs against the actions'
// input schemas.
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { readFile } from 'node:fs/promises';
import { parse } from 'yaml';
import Ajv from 'ajv';
import { validate } from 'jsonschema';
import {
  DefaultNamespaceEntityPolicy,
  EntityPolicies,
  FieldFormatEntityPolicy,
  NoForeignRootFieldsEntityPolicy,
  SchemaValidEntityPolicy,
} from '@backstage/catalog-model';
import { templateEntityV1beta3Validator } from '@backstage/plugin-scaffolder-common';
import harmonix from '@harmonix/node';

import { createHarmonixActions } from '../src/actions.mjs';
import { templateYaml } from '../src/template.mjs';

const templateUrl = new URL('../templates/harmonix-environment.yaml', import.meta.url);
const loadTemplate = async () => parse(await readFile(templateUrl, 'utf8'));

/** Sample form values, as the frontend would submit them. */
const formValues = {
  provider: {
    kind: 'ecs',
    name: 'payments-dev',
    owner: 'group:default/payments',
    account: '123456789012',
    region: 'us-east-1',
    environmentRole: 'arn:aws:iam::123456789012:role/opa-envprovisioning-role',
    platformRole: 'arn:aws:iam::111111111111:role/opa-platform-role',
    pipelineRole: 'arn:aws:iam::111111111111:role/opa-pipeline-role',
    vpc: { mode: 'new', cidr: '10.0.0.0/24' },
    ecs: { containerInsights: true },
  },
};

/** An engine that must not be used: these tests never run a handler. */
const noEngine = () => Promise.reject(new Error('not used'));

/**
 * Strip `ui:*` keys the way @backstage/plugin-scaffolder-react's
 * extractSchemaFromStep does before handing the schema to rjsf.
 * @param {any} node
 * @returns {any}
 */
function stripUi(node) {
  if (Array.isArray(node)) return node.map(stripUi);
  if (node === null || typeof node !== 'object') return node;
  return Object.fromEntries(
    Object.entries(node)
      .filter(([k]) => !k.startsWith('ui:'))
      .map(([k, v]) => [k, stripUi(v)]),
  );
}

/**
 * Minimal stand-in for the scaffolder's `${{ parameters.x }}` rendering: a value
 * that is exactly one expression keeps its type (the runner renders with
 * nunjitsu `coercion: 'json'`); anything else is string interpolation.
 * @param {any} value
 * @param {Record<string, unknown>} parameters
 * @returns {any}
 */
function render(value, parameters) {
  if (Array.isArray(value)) return value.map((v) => render(v, parameters));
  if (value !== null && typeof value === 'object') {
    return Object.fromEntries(Object.entries(value).map(([k, v]) => [k, render(v, parameters)]));
  }
  if (typeof value !== 'string') return value;
  const whole = value.match(/^\$\{\{\s*parameters\.(\w+)\s*\}\}$/);
  if (whole) return parameters[whole[1]];
  return value.replace(/\$\{\{\s*parameters\.(\w+)\s*\}\}/g, (_, k) => String(parameters[k]));
}

describe('templates/harmonix-environment.yaml', () => {
  it('is generated from the Harmonix spec schema (npm run generate)', async () => {
    assert.equal(await readFile(templateUrl, 'utf8'), templateYaml());
    const { spec } = await loadTemplate();
    const provider = spec.parameters[0].properties.provider;
    const schema = harmonix.schema();
    const providerSpec = /** @type {any} */ (schema).$defs.ProviderSpec;
    for (const field of ['kind', 'name', 'owner', 'account', 'region', 'environmentRole', 'vpc', 'tags']) {
      assert.ok(provider.properties[field], `form has ${field}`);
      assert.equal(provider.properties[field].description, providerSpec.properties[field].description);
    }
    const sections = provider.dependencies.kind.oneOf.map((/** @type {any} */ o) => Object.keys(o.properties));
    assert.deepEqual(sections, [
      ['kind', 'ecs'],
      ['kind', 'ecs'],
      ['kind', 'eks'],
      ['kind', 'serverless'],
      ['kind', 'platform'],
      ['kind', 'vmImage'],
    ]);
  });

  it('passes the catalog entity policies and the Template v1beta3 kind validator', async () => {
    const entity = await loadTemplate();
    const policies = EntityPolicies.allOf([
      new SchemaValidEntityPolicy(),
      new DefaultNamespaceEntityPolicy(),
      new NoForeignRootFieldsEntityPolicy(),
      new FieldFormatEntityPolicy(),
    ]);
    const checked = await policies.enforce(entity);
    assert.ok(checked);
    assert.equal(await templateEntityV1beta3Validator.check(/** @type {any} */ (checked)), true);
  });

  it('the Template kind validator rejects a template without steps', async () => {
    const entity = await loadTemplate();
    delete entity.spec.steps;
    await assert.rejects(templateEntityV1beta3Validator.check(entity), /steps/);
    // ...and ignores entities of other kinds (returns false instead of throwing).
    assert.equal(
      await templateEntityV1beta3Validator.check({
        apiVersion: 'backstage.io/v1alpha1',
        kind: 'Component',
        metadata: { name: 'x' },
        spec: {},
      }),
      false,
    );
  });

  it('each parameters page is a JSON Schema object once ui:* keys are extracted', async () => {
    const { spec } = await loadTemplate();
    assert.ok(Array.isArray(spec.parameters));
    const ajv = new Ajv({ strict: true, allErrors: true, strictTypes: false });
    for (const page of spec.parameters) {
      assert.equal(typeof page.title, 'string');
      assert.ok(Array.isArray(page.required));
      const validatePage = ajv.compile({ type: 'object', ...stripUi(page) });
      // The scaffolder backend validates the whole form value object against
      // every visible page (jsonschema.validate(values, page)).
      assert.equal(validatePage(formValues), true, JSON.stringify(validatePage.errors));
      assert.equal(validate(formValues, page).valid, true);
    }
    const noAccount = { provider: { ...formValues.provider } };
    delete (/** @type {any} */ (noAccount.provider)).account;
    assert.equal(validate(noAccount, spec.parameters[0]).valid, false);
  });

  it('rendered step inputs are valid Harmonix specs and satisfy the actions input schemas', async () => {
    const { spec } = await loadTemplate();
    const actions = new Map(createHarmonixActions({ engine: noEngine }).map((a) => [a.id, a]));
    assert.deepEqual(
      spec.steps.map((/** @type {any} */ s) => s.action),
      ['harmonix:environment:plan', 'harmonix:environment:provision'],
    );
    for (const step of spec.steps) {
      const action = actions.get(step.action);
      assert.ok(action, `unknown action ${step.action}`);
      const input = render(step.input, formValues);
      assert.equal(input.spec.providers[0].account, '123456789012');
      const result = validate(input, /** @type {any} */ (action.schema).input);
      assert.equal(result.valid, true, result.errors.join(', '));
      // ...and the core itself accepts the spec the form produces.
      assert.deepEqual(harmonix.validate(input.spec), []);
    }
  });
});
