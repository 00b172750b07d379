import type { CompoundEntityRef, Entity } from '@backstage/catalog-model';

export declare const HARMONIX_API_VERSION: 'aws.backstage.io/v1alpha';
export declare const KIND_AWS_ENVIRONMENT: 'AWSEnvironment';
export declare const KIND_AWS_ENVIRONMENT_PROVIDER: 'AWSEnvironmentProvider';
export declare const HARMONIX_KINDS: readonly ['AWSEnvironmentProvider', 'AWSEnvironment'];
/** The annotation Harmonix puts on every entity it writes (value `harmonix`). */
export declare const ANNOTATION_MANAGED_BY: 'harmonix.dev/managed-by';
/** Absolute path of the folder holding the schema files, with a trailing slash. */
export declare const SCHEMA_DIR: string;

export type HarmonixKind = 'AWSEnvironmentProvider' | 'AWSEnvironment';
/** `harmonix`: what Harmonix writes; `awslabs`: what the original Harmonix (awslabs/harmonix) writes. */
export type SchemaVariant = 'harmonix' | 'awslabs';

export interface SchemaFile {
  /** File name inside {@link SCHEMA_DIR}. */
  file: string;
  /** The JSON schema (draft-07, `allOf: [{$ref: Entity}, ...]` as Backstage's kind schemas). */
  schema: Record<string, unknown>;
}
export declare const schemas: Readonly<Record<HarmonixKind, Readonly<Record<SchemaVariant, SchemaFile>>>>;

export interface HarmonixValidationError {
  /** JSON pointer of the field, e.g. `/metadata/awsAccount`, or `<root>`. */
  path: string;
  /** The path, what is wrong and what is allowed. */
  message: string;
  /** The JSON-schema keyword that failed (`envelope` for Backstage's entity envelope). */
  keyword: string;
  /** The schema file that applied; null when the entity is not of our kinds. */
  schema: string | null;
}

export interface HarmonixRelation {
  source: CompoundEntityRef;
  /** A Backstage relation type: ownedBy, ownerOf, partOf, hasPart, dependsOn, dependencyOf. */
  type: string;
  target: CompoundEntityRef;
}

/** Our apiVersion and one of our kinds. */
export declare function isHarmonixEntity(entity: { apiVersion?: unknown; kind?: unknown } | null | undefined): boolean;
/** The entity carries `harmonix.dev/managed-by: harmonix`. */
export declare function isManagedByHarmonix(entity: unknown): boolean;
export declare function schemaVariantFor(entity: unknown): SchemaVariant | null;
/** Every error of the entity against its kind's schema; empty when valid. */
export declare function validateHarmonixEntity(entity: unknown): HarmonixValidationError[];
/** `<schema file>: <message>; <message>...` */
export declare function formatValidationErrors(errors: HarmonixValidationError[]): string;
/** The relations (each with its inverse) an entity of our kinds implies; [] for other entities. */
export declare function harmonixRelations(entity: Entity): HarmonixRelation[];
