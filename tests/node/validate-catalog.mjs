#!/usr/bin/env node
// Validate Backstage catalog files the way the Backstage catalog does.
//
//   node validate-catalog.mjs FILE...
//
// Every YAML document of every FILE is parsed with `yaml` (as the catalog's
// YAML processor does) and checked with @backstage/catalog-model:
//   - the envelope policies the catalog applies to every entity
//     (SchemaValidEntityPolicy, DefaultNamespaceEntityPolicy,
//     NoForeignRootFieldsEntityPolicy, FieldFormatEntityPolicy);
//   - the kind schema: the built-in validators for the core kinds
//     (Component, API, Resource, ...), and for the Harmonix kinds
//     AWSEnvironmentProvider and AWSEnvironment the JSON schemas of
//     backstage/plugins/harmonix-common/schemas (their one source, which
//     the catalog module validates with too), through
//     entityKindSchemaValidator.
//
// Prints one JSON line per document: {file, index, kind, name, ok, error,
// schema} (index: 0-based position of the document in its file; schema:
// the kind schema applied, or null). Empty documents are skipped.
// Exit status: 0 when every entity is valid, 1 when any is not (or a file
// cannot be read or parsed), 2 on wrong usage.

import { readFileSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import { parseAllDocuments } from 'yaml';
import {
  DefaultNamespaceEntityPolicy,
  EntityPolicies,
  FieldFormatEntityPolicy,
  NoForeignRootFieldsEntityPolicy,
  SchemaValidEntityPolicy,
  apiEntityV1alpha1Validator,
  componentEntityV1alpha1Validator,
  domainEntityV1alpha1Validator,
  entityKindSchemaValidator,
  groupEntityV1alpha1Validator,
  locationEntityV1alpha1Validator,
  resourceEntityV1alpha1Validator,
  systemEntityV1alpha1Validator,
  userEntityV1alpha1Validator,
} from '@backstage/catalog-model';

const policies = EntityPolicies.allOf([
  new SchemaValidEntityPolicy(),
  new DefaultNamespaceEntityPolicy(),
  new NoForeignRootFieldsEntityPolicy(),
  new FieldFormatEntityPolicy(),
]);

function loadSchema(file) {
  const url = new URL(`../../backstage/plugins/harmonix-common/schemas/${file}`, import.meta.url);
  return JSON.parse(readFileSync(url, 'utf8'));
}

// Harmonix kinds: validator functions returning the entity, `false` when
// the kind/apiVersion is not the schema's, or throwing on invalid data.
const harmonixKinds = {
  AWSEnvironmentProvider: {
    schema: 'AWSEnvironmentProvider.v1alpha.schema.json',
    validate: entityKindSchemaValidator(loadSchema('AWSEnvironmentProvider.v1alpha.schema.json')),
  },
  AWSEnvironment: {
    schema: 'AWSEnvironment.v1alpha.schema.json',
    validate: entityKindSchemaValidator(loadSchema('AWSEnvironment.v1alpha.schema.json')),
  },
};

// Core kinds: `check` resolves true when valid, false when not this kind,
// and rejects when invalid.
const coreKinds = {
  API: apiEntityV1alpha1Validator,
  Component: componentEntityV1alpha1Validator,
  Domain: domainEntityV1alpha1Validator,
  Group: groupEntityV1alpha1Validator,
  Location: locationEntityV1alpha1Validator,
  Resource: resourceEntityV1alpha1Validator,
  System: systemEntityV1alpha1Validator,
  User: userEntityV1alpha1Validator,
};

function message(e) {
  return e instanceof Error ? e.message : String(e);
}

async function validateEntity(entity) {
  if (entity === null || typeof entity !== 'object' || Array.isArray(entity)) {
    throw new Error(`expected a mapping at the document root, found ${Array.isArray(entity) ? 'a sequence' : typeof entity}`);
  }
  const enforced = await policies.enforce(structuredClone(entity));
  const kind = String(enforced.kind);
  const lower = kind.toLowerCase();
  const ours = Object.entries(harmonixKinds).find(([k]) => k.toLowerCase() === lower);
  if (ours) {
    const [expected, { schema, validate }] = ours;
    if (validate(enforced) === false) {
      throw new Error(
        `${schema}: apiVersion/kind ${enforced.apiVersion}/${kind} is not accepted; expected aws.backstage.io/v1alpha/${expected}`,
      );
    }
    return schema;
  }
  const core = Object.entries(coreKinds).find(([k]) => k.toLowerCase() === lower);
  if (core) {
    const [expected, validator] = core;
    if (!(await validator.check(enforced))) {
      throw new Error(`apiVersion/kind ${enforced.apiVersion}/${kind} is not accepted by the ${expected} kind validator`);
    }
    return `${expected} (built-in)`;
  }
  return null;
}

async function validateFile(file) {
  const lines = [];
  let text;
  try {
    text = await readFile(file, 'utf8');
  } catch (e) {
    return [{ file, index: null, kind: null, name: null, ok: false, error: `cannot read: ${message(e)}`, schema: null }];
  }
  const docs = parseAllDocuments(text);
  if (!Array.isArray(docs)) {
    // An empty stream (no documents at all).
    return lines;
  }
  for (const [index, doc] of docs.entries()) {
    const line = { file, index, kind: null, name: null, ok: false, error: null, schema: null };
    if (doc.errors.length > 0) {
      line.error = `YAML: ${doc.errors.map((e) => e.message).join('; ')}`;
      lines.push(line);
      continue;
    }
    if (doc.contents === null) {
      continue;
    }
    let entity;
    try {
      entity = doc.toJS();
    } catch (e) {
      line.error = `YAML: ${message(e)}`;
      lines.push(line);
      continue;
    }
    if (entity === null || entity === undefined) {
      continue;
    }
    if (typeof entity === 'object' && !Array.isArray(entity)) {
      line.kind = typeof entity.kind === 'string' ? entity.kind : null;
      line.name = typeof entity.metadata?.name === 'string' ? entity.metadata.name : null;
    }
    try {
      line.schema = await validateEntity(entity);
      line.ok = true;
    } catch (e) {
      line.error = message(e);
    }
    lines.push(line);
  }
  return lines;
}

async function main(files) {
  if (files.length === 0 || files.some((f) => f === '-h' || f === '--help')) {
    process.stderr.write('usage: node validate-catalog.mjs FILE...\n');
    return 2;
  }
  let failed = false;
  for (const file of files) {
    for (const line of await validateFile(file)) {
      failed ||= !line.ok;
      process.stdout.write(`${JSON.stringify(line)}\n`);
    }
  }
  return failed ? 1 : 0;
}

process.exitCode = await main(process.argv.slice(2));
