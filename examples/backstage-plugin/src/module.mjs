// Backstage backend module that adds the Harmonix actions to the scaffolder.
//
// In a Backstage backend (packages/backend/src/index.ts):
//   backend.add(import('@harmonix/backstage-plugin-scaffolder-backend-module-harmonix'));
//
// Engine options come from app-config.yaml (all optional):
//   harmonix:
//     endpointUrl: http://localhost:5000     # e.g. a local emulator
//     pipelineRole: arn:aws:iam::111111111111:role/opa-pipeline-role
//     region: us-east-1
//     concurrency: 4
//     apiRate: 10
//     apiBurst: 20
//     lock: true
//     audit: true
// The external id, when needed, comes from HARMONIX_EXTERNAL_ID.
import { coreServices, createBackendModule } from '@backstage/backend-plugin-api';
import { scaffolderActionsExtensionPoint } from '@backstage/plugin-scaffolder-node';
import harmonix from '@harmonix/node';

import { createHarmonixActions } from './actions.mjs';

/**
 * Engine options from the `harmonix` config section.
 * @param {import('@backstage/backend-plugin-api').RootConfigService} config
 * @returns {import('@harmonix/node').EngineOptions}
 */
export function engineOptionsFromConfig(config) {
  const c = config.getOptionalConfig('harmonix');
  if (!c) return { caller: 'backstage', externalId: process.env.HARMONIX_EXTERNAL_ID };
  return {
    endpointUrl: c.getOptionalString('endpointUrl'),
    pipelineRole: c.getOptionalString('pipelineRole'),
    region: c.getOptionalString('region'),
    concurrency: c.getOptionalNumber('concurrency'),
    apiRate: c.getOptionalNumber('apiRate'),
    apiBurst: c.getOptionalNumber('apiBurst'),
    lock: c.getOptionalBoolean('lock'),
    audit: c.getOptionalBoolean('audit'),
    caller: c.getOptionalString('caller') ?? 'backstage',
    externalId: process.env.HARMONIX_EXTERNAL_ID,
  };
}

/**
 * An engine factory that makes the engine once, on first use.
 * @param {import('@harmonix/node').EngineOptions} options
 */
export function lazyEngine(options) {
  /** @type {Promise<import('@harmonix/node').Engine> | undefined} */
  let engine;
  return () => {
    engine ??= harmonix.Engine.create(options);
    return engine;
  };
}

/**
 * The scaffolder module; `engine` overrides the configured engine (tests).
 * @param {{ engine?: () => Promise<import('@harmonix/node').Engine> }} [deps]
 */
export function createHarmonixScaffolderModule(deps = {}) {
  return createBackendModule({
    pluginId: 'scaffolder',
    moduleId: 'harmonix',
    register(env) {
      env.registerInit({
        deps: {
          scaffolder: scaffolderActionsExtensionPoint,
          logger: coreServices.logger,
          config: coreServices.rootConfig,
        },
        async init({ scaffolder, logger, config }) {
          const engine = deps.engine ?? lazyEngine(engineOptionsFromConfig(config));
          const actions = createHarmonixActions({ engine });
          scaffolder.addActions(...actions);
          logger.info(`Registered Harmonix actions: ${actions.map((a) => a.id).join(', ')}`);
        },
      });
    },
  });
}

/** The module as installed in a backend. */
export const scaffolderModuleHarmonix = createHarmonixScaffolderModule();

export default scaffolderModuleHarmonix;
