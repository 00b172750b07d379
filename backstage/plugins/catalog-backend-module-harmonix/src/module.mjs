// Backstage catalog backend module for the Harmonix kinds.
//
// In a Backstage backend (packages/backend/src/index.ts):
//   backend.add(import('@backstage/plugin-catalog-backend'));
//   backend.add(import('@harmonix/backstage-plugin-catalog-backend-module-harmonix'));
//
// Optional app-config.yaml:
//   harmonix:
//     catalog:
//       acceptAwslabsEntities: true   # default; false refuses the original awslabs Harmonix's entities
import { coreServices, createBackendModule } from '@backstage/backend-plugin-api';
import { catalogProcessingExtensionPoint } from '@backstage/plugin-catalog-node';

import { HarmonixEntitiesProcessor } from './processor.mjs';

export const catalogModuleHarmonix = createBackendModule({
  pluginId: 'catalog',
  moduleId: 'harmonix',
  register(env) {
    env.registerInit({
      deps: {
        catalog: catalogProcessingExtensionPoint,
        config: coreServices.rootConfig,
        logger: coreServices.logger,
      },
      async init({ catalog, config, logger }) {
        const acceptAwslabsEntities = config.getOptionalBoolean('harmonix.catalog.acceptAwslabsEntities') ?? true;
        catalog.addProcessor(new HarmonixEntitiesProcessor({ acceptAwslabsEntities }));
        logger.info(
          `Harmonix kinds AWSEnvironmentProvider and AWSEnvironment are validated${acceptAwslabsEntities ? ' (also in the original awslabs shape)' : ''}`,
        );
      },
    });
  },
});

export default catalogModuleHarmonix;
