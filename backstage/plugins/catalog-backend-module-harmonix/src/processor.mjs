// The catalog processor of the Harmonix kinds. Without a processor that
// claims them, a Backstage catalog rejects every AWSEnvironmentProvider and
// AWSEnvironment entity ("No processor recognized the entity … as valid"),
// and relations only exist where a processor emits them.
import { processingResult } from '@backstage/plugin-catalog-node';
import {
  formatValidationErrors,
  harmonixRelations,
  isHarmonixEntity,
  schemaVariantFor,
  validateHarmonixEntity,
} from '@harmonix/backstage-plugin-harmonix-common';

/** @typedef {import('@backstage/plugin-catalog-node').CatalogProcessor} CatalogProcessor */

/** @implements {CatalogProcessor} */
export class HarmonixEntitiesProcessor {
  /**
   * @param {{ acceptAwslabsEntities?: boolean }} [options] `acceptAwslabsEntities`
   *   (default true): also accept entities in the shape the original awslabs
   *   Harmonix writes (those without the harmonix.dev/managed-by annotation).
   */
  constructor(options = {}) {
    this.acceptAwslabsEntities = options.acceptAwslabsEntities ?? true;
  }

  getProcessorName() {
    return 'HarmonixEntitiesProcessor';
  }

  /**
   * Claims our kinds and apiVersion; throws (the catalog then records the
   * error on the entity, or refuses a new one) with every field the schema
   * rejects. Any other entity is left to the other processors.
   * @param {import('@backstage/catalog-model').Entity} entity
   */
  async validateEntityKind(entity) {
    if (!isHarmonixEntity(entity)) return false;
    if (!this.acceptAwslabsEntities && schemaVariantFor(entity) === 'awslabs') {
      throw new Error(
        `${entity.kind} ${entity.metadata.name} lacks the harmonix.dev/managed-by: harmonix annotation, and harmonix.catalog.acceptAwslabsEntities is false`,
      );
    }
    const errors = validateHarmonixEntity(entity);
    if (errors.length > 0) throw new Error(formatValidationErrors(errors));
    return true;
  }

  /**
   * Emits the owner, system and provider relations (both directions). The
   * entity is returned as it came, so every Harmonix metadata field stays.
   * @param {import('@backstage/catalog-model').Entity} entity
   * @param {import('@backstage/plugin-catalog-node').LocationSpec} _location
   * @param {import('@backstage/plugin-catalog-node').CatalogProcessorEmit} emit
   */
  async postProcessEntity(entity, _location, emit) {
    for (const r of harmonixRelations(entity)) {
      emit(processingResult.relation(r));
    }
    return entity;
  }
}
