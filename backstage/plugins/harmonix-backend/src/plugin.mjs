// The `harmonix` backend plugin. In a Backstage backend
// (packages/backend/src/index.ts):
//   backend.add(import('@harmonix/backstage-plugin-harmonix-backend'));
//
// app-config.yaml:
//   harmonix:
//     specs:                      # the spec files the environments were applied from
//       - ../../envs/payments.yaml
//     region: us-east-1           # engine options, all optional
//     pipelineRole: arn:aws:iam::111111111111:role/opa-pipeline-role
//     endpointUrl: http://127.0.0.1:5000   # e.g. a local emulator
// AWS credentials: the process's default chain (environment, profile,
// instance or task role); the external id, when needed, from
// HARMONIX_EXTERNAL_ID.
import { coreServices, createBackendPlugin } from '@backstage/backend-plugin-api';
import { catalogServiceRef } from '@backstage/plugin-catalog-node';
import harmonix from '@harmonix/node';

import { loadSpecFiles } from './environments.mjs';
import { createRouter } from './router.mjs';

/**
 * Engine options from the `harmonix` config section.
 * @param {import('@backstage/backend-plugin-api').RootConfigService} config
 * @returns {import('@harmonix/node').EngineOptions}
 */
export function engineOptionsFromConfig(config) {
  const c = config.getOptionalConfig('harmonix');
  return {
    endpointUrl: c?.getOptionalString('endpointUrl'),
    region: c?.getOptionalString('region'),
    pipelineRole: c?.getOptionalString('pipelineRole'),
    apiRate: c?.getOptionalNumber('apiRate'),
    apiBurst: c?.getOptionalNumber('apiBurst'),
    caller: c?.getOptionalString('caller') ?? 'backstage',
    externalId: process.env.HARMONIX_EXTERNAL_ID,
    // Reads only: no lock, no audit record of its own.
    lock: false,
    audit: false,
  };
}

/**
 * The plugin; `engine` overrides the configured engine.
 * @param {{ engine?: () => Promise<import('@harmonix/node').Engine> }} [deps]
 */
export function createHarmonixBackendPlugin(deps = {}) {
  return createBackendPlugin({
    pluginId: 'harmonix',
    register(env) {
      env.registerInit({
        deps: {
          httpRouter: coreServices.httpRouter,
          httpAuth: coreServices.httpAuth,
          auth: coreServices.auth,
          permissions: coreServices.permissions,
          logger: coreServices.logger,
          config: coreServices.rootConfig,
          catalog: catalogServiceRef,
        },
        async init({ httpRouter, httpAuth, auth, permissions, logger, config, catalog }) {
          const paths = config.getOptionalStringArray('harmonix.specs') ?? [];
          const files = loadSpecFiles(paths);
          logger.info(`Harmonix environments from ${files.length} spec file(s): ${paths.join(', ')}`);
          /** @type {Promise<import('@harmonix/node').Engine> | undefined} */
          let made;
          const engine = deps.engine ?? (() => (made ??= harmonix.Engine.create(engineOptionsFromConfig(config))));
          httpRouter.use(
            createRouter({ httpAuth, auth, permissions, catalog, logger, engine, specFiles: () => files }),
          );
        },
      });
    },
  });
}

/** The plugin as installed in a backend. */
export const harmonixPlugin = createHarmonixBackendPlugin();

export default harmonixPlugin;
