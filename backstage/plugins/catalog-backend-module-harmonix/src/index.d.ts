import type { BackendFeature } from '@backstage/backend-plugin-api';
import type { Entity } from '@backstage/catalog-model';
import type { CatalogProcessor, CatalogProcessorEmit, LocationSpec } from '@backstage/plugin-catalog-node';

/** The catalog module: `backend.add(import('@harmonix/backstage-plugin-catalog-backend-module-harmonix'))`. */
declare const catalogModuleHarmonix: BackendFeature;
export default catalogModuleHarmonix;
export { catalogModuleHarmonix };

/** Validates the Harmonix kinds against their schemas and emits their relations. */
export declare class HarmonixEntitiesProcessor implements CatalogProcessor {
  constructor(options?: { acceptAwslabsEntities?: boolean });
  readonly acceptAwslabsEntities: boolean;
  getProcessorName(): string;
  validateEntityKind(entity: Entity): Promise<boolean>;
  postProcessEntity(entity: Entity, location: LocationSpec, emit: CatalogProcessorEmit): Promise<Entity>;
}
