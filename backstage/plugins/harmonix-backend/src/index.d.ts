import type { BackendFeature, AuthService, HttpAuthService, LoggerService, PermissionsService, RootConfigService } from '@backstage/backend-plugin-api';
import type { Entity as CatalogEntity } from '@backstage/catalog-model';
import type { CatalogService } from '@backstage/plugin-catalog-node';
import type { Engine, EngineOptions, Entity, Specs, Stack } from '@harmonix/node';
import type { Router } from 'express';

/** The `harmonix` backend plugin (`backend.add(import('@harmonix/backstage-plugin-harmonix-backend'))`). */
declare const harmonixPlugin: BackendFeature;
export default harmonixPlugin;
export { harmonixPlugin };

/** The plugin; `engine` overrides the engine made from app-config. */
export function createHarmonixBackendPlugin(deps?: { engine?: () => Promise<Engine> }): BackendFeature;

/** Engine options from the `harmonix` config section (reads only: no lock, no audit). */
export function engineOptionsFromConfig(config: RootConfigService): EngineOptions;

export const DEFAULT_AUDIT_LIMIT: 20;
export const MAX_AUDIT_LIMIT: 1000;
/** The `limit` query parameter; an InputError (400) when not 1 to 1000. */
export function auditLimit(text: string | undefined): number;

/** A loaded spec file. */
export interface SpecFile {
  path: string;
  specs: Specs;
  entities: Entity[];
  stacks: Stack[];
}
/** The spec file and providers behind a catalog entity. */
export interface Resolved {
  path: string;
  specs: Specs;
  providers: Set<string>;
  stacks: Set<string>;
}
export function loadSpecFiles(paths: string[]): SpecFile[];
export function resolveEntity(files: SpecFile[], entity: CatalogEntity): Resolved | undefined;

export const HARMONIX_API_VERSION: 'aws.backstage.io/v1alpha';
export const KIND_PROVIDER: 'AWSEnvironmentProvider';
export const KIND_ENVIRONMENT: 'AWSEnvironment';

/** The router (mounted by the plugin at /api/harmonix). */
export function createRouter(options: {
  httpAuth: HttpAuthService;
  auth: AuthService;
  permissions: PermissionsService;
  catalog: CatalogService;
  logger: LoggerService;
  engine: () => Promise<Engine>;
  specFiles: () => SpecFile[];
}): Router;
