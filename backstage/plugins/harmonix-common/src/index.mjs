// The Harmonix catalog kinds, shared by the Backstage packages and the
// project's own checks: the JSON schemas (schemas/, their one source: the
// Rust tests validate the catalog files the core writes against the same
// files), validation with field paths, and the relations the entities imply.
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';

import {
  RELATION_DEPENDENCY_OF,
  RELATION_DEPENDS_ON,
  RELATION_HAS_PART,
  RELATION_OWNED_BY,
  RELATION_OWNER_OF,
  RELATION_PART_OF,
  entitySchemaValidator,
  getCompoundEntityRef,
  parseEntityRef,
} from '@backstage/catalog-model';
import { Ajv } from 'ajv';

export const HARMONIX_API_VERSION = 'aws.backstage.io/v1alpha';
export const KIND_AWS_ENVIRONMENT = 'AWSEnvironment';
export const KIND_AWS_ENVIRONMENT_PROVIDER = 'AWSEnvironmentProvider';
export const HARMONIX_KINDS = Object.freeze([KIND_AWS_ENVIRONMENT_PROVIDER, KIND_AWS_ENVIRONMENT]);
/** The annotation Harmonix puts on every entity it writes. */
export const ANNOTATION_MANAGED_BY = 'harmonix.dev/managed-by';

/** The folder holding the schema files (for tools outside Node). */
export const SCHEMA_DIR = fileURLToPath(new URL('../schemas/', import.meta.url));

/** @param {string} file */
function load(file) {
  return JSON.parse(readFileSync(new URL(`../schemas/${file}`, import.meta.url), 'utf8'));
}

/**
 * Two schemas per kind: `harmonix` for what Harmonix writes (strict: every
 * field its stacks fill in), `awslabs` for what the original Harmonix
 * (awslabs/harmonix) writes, whose templates leave most metadata empty
 * until a pipeline fills it in. Which applies is decided by the
 * `harmonix.dev/managed-by: harmonix` annotation, so an entity claiming to
 * be ours cannot fall back to the looser shape.
 */
export const schemas = Object.freeze({
  [KIND_AWS_ENVIRONMENT_PROVIDER]: Object.freeze({
    harmonix: { file: 'AWSEnvironmentProvider.v1alpha.schema.json', schema: load('AWSEnvironmentProvider.v1alpha.schema.json') },
    awslabs: { file: 'AWSEnvironmentProvider.awslabs.schema.json', schema: load('AWSEnvironmentProvider.awslabs.schema.json') },
  }),
  [KIND_AWS_ENVIRONMENT]: Object.freeze({
    harmonix: { file: 'AWSEnvironment.v1alpha.schema.json', schema: load('AWSEnvironment.v1alpha.schema.json') },
    awslabs: { file: 'AWSEnvironment.awslabs.schema.json', schema: load('AWSEnvironment.awslabs.schema.json') },
  }),
});

/**
 * The kind part of a schema: the envelope (`$ref: Entity`, Backstage's own
 * entity schema) is checked by @backstage/catalog-model's validator first,
 * so every error below it can be reported, not only the first one.
 * @param {any} schema
 */
function kindPart(schema) {
  const { allOf, ...rest } = schema;
  return { ...rest, allOf: allOf.filter((/** @type {any} */ s) => s.$ref !== 'Entity') };
}

// The options @backstage/catalog-model compiles kind schemas with.
const ajv = new Ajv({ allowUnionTypes: true, allErrors: true });
/** @type {Map<string, import('ajv').ValidateFunction>} */
const compiled = new Map();
for (const [kind, variants] of Object.entries(schemas)) {
  for (const [variant, { schema }] of Object.entries(variants)) {
    compiled.set(`${kind}/${variant}`, ajv.compile(kindPart(schema)));
  }
}
const envelope = entitySchemaValidator();

/**
 * True for an entity of one of our kinds and our apiVersion: what the
 * catalog processor claims.
 * @param {{ apiVersion?: unknown, kind?: unknown }} entity
 */
export function isHarmonixEntity(entity) {
  return (
    entity?.apiVersion === HARMONIX_API_VERSION &&
    typeof entity.kind === 'string' &&
    HARMONIX_KINDS.includes(entity.kind)
  );
}

/**
 * True when Harmonix wrote the entity (its `harmonix.dev/managed-by` annotation).
 * @param {any} entity
 */
export function isManagedByHarmonix(entity) {
  return entity?.metadata?.annotations?.[ANNOTATION_MANAGED_BY] === 'harmonix';
}

/**
 * Which schema applies to an entity: `harmonix`, `awslabs`, or null when it
 * is not of our kinds.
 * @param {any} entity
 * @returns {'harmonix' | 'awslabs' | null}
 */
export function schemaVariantFor(entity) {
  if (!isHarmonixEntity(entity)) return null;
  return isManagedByHarmonix(entity) ? 'harmonix' : 'awslabs';
}

/**
 * @param {import('ajv').ErrorObject} e
 * @param {string} file
 * @returns {import('./index.d.ts').HarmonixValidationError}
 */
function fromAjv(e, file) {
  // A missing field is reported at its own path, not its parent's.
  const missing = e.keyword === 'required' ? `/${e.params.missingProperty}` : '';
  const path = `${e.instancePath}${missing}` || '<root>';
  const params = Object.entries(e.params ?? {})
    .map(([k, v]) => `${k}: ${Array.isArray(v) ? v.join(', ') : v}`)
    .join(', ');
  return {
    path,
    message: `${e.instancePath || '<root>'} ${e.message}${params ? ` - ${params}` : ''}`,
    keyword: e.keyword,
    schema: file,
  };
}

/**
 * Validate an entity against the schema of its kind. Returns every error
 * (empty when valid), each with the JSON pointer of the field and a message
 * naming it; `schema` is the file that applied.
 * @param {unknown} entity
 * @returns {import('./index.d.ts').HarmonixValidationError[]}
 */
export function validateHarmonixEntity(entity) {
  const e = /** @type {any} */ (entity);
  if (!isHarmonixEntity(e)) {
    const path = e?.apiVersion === HARMONIX_API_VERSION ? '/kind' : '/apiVersion';
    const value = path === '/kind' ? e?.kind : e?.apiVersion;
    return [
      {
        path,
        message: `${path} ${JSON.stringify(value)} is not a Harmonix entity: expected apiVersion ${HARMONIX_API_VERSION} and kind ${HARMONIX_KINDS.join(' or ')}`,
        keyword: 'enum',
        schema: null,
      },
    ];
  }
  const variant = isManagedByHarmonix(e) ? 'harmonix' : 'awslabs';
  const { file } = schemas[/** @type {'AWSEnvironment'} */ (e.kind)][variant];
  try {
    envelope(e);
  } catch (err) {
    const text = err instanceof Error ? err.message : String(err);
    return [{ path: text.split(' ')[0] || '<root>', message: text, keyword: 'envelope', schema: file }];
  }
  const validate = /** @type {import('ajv').ValidateFunction} */ (compiled.get(`${e.kind}/${variant}`));
  if (validate(e)) return [];
  // `if`/`then` adds a summary error beside the field's own; the field's says more.
  const errors = (validate.errors ?? []).filter((x) => x.keyword !== 'if');
  return errors.map((x) => fromAjv(x, file));
}

/**
 * The error the catalog shows for an invalid entity: the schema file and
 * every field error.
 * @param {import('./index.d.ts').HarmonixValidationError[]} errors
 */
export function formatValidationErrors(errors) {
  const schema = errors.find((e) => e.schema)?.schema;
  const list = errors.map((e) => e.message).join('; ');
  return schema ? `${schema}: ${list}` : list;
}

/**
 * @param {import('@backstage/catalog-model').CompoundEntityRef} source
 * @param {string} forward
 * @param {string} backward
 * @param {import('@backstage/catalog-model').CompoundEntityRef} target
 * @returns {import('./index.d.ts').HarmonixRelation[]}
 */
function pair(source, forward, backward, target) {
  return [
    { source, type: forward, target },
    { source: target, type: backward, target: source },
  ];
}

/**
 * The relations an entity of our kinds implies, each with its inverse:
 * owner (ownedBy/ownerOf; a bare name is a Group), system (partOf/hasPart;
 * a bare name is a System) and spec.dependsOn (dependsOn/dependencyOf; on
 * an AWSEnvironment a bare name is an AWSEnvironmentProvider, as the
 * original Harmonix reads it). Throws on a reference that does not parse.
 * @param {import('@backstage/catalog-model').Entity} entity
 * @returns {import('./index.d.ts').HarmonixRelation[]}
 */
export function harmonixRelations(entity) {
  if (!isHarmonixEntity(entity)) return [];
  const self = getCompoundEntityRef(entity);
  const spec = /** @type {Record<string, unknown>} */ (entity.spec ?? {});
  const ref = (/** @type {string} */ r, /** @type {string | undefined} */ defaultKind) => {
    const p = parseEntityRef(r, { defaultKind, defaultNamespace: self.namespace });
    return { kind: p.kind, namespace: p.namespace, name: p.name };
  };
  /** @type {import('./index.d.ts').HarmonixRelation[]} */
  const out = [];
  if (typeof spec.owner === 'string') {
    out.push(...pair(self, RELATION_OWNED_BY, RELATION_OWNER_OF, ref(spec.owner, 'Group')));
  }
  if (typeof spec.system === 'string') {
    out.push(...pair(self, RELATION_PART_OF, RELATION_HAS_PART, ref(spec.system, 'System')));
  }
  if (Array.isArray(spec.dependsOn)) {
    const defaultKind = entity.kind === KIND_AWS_ENVIRONMENT ? KIND_AWS_ENVIRONMENT_PROVIDER : undefined;
    for (const d of spec.dependsOn) {
      if (typeof d === 'string') out.push(...pair(self, RELATION_DEPENDS_ON, RELATION_DEPENDENCY_OF, ref(d, defaultKind)));
    }
  }
  return out;
}
