// Backstage backend module that adds the Harmonix actions to the scaffolder.
//
// In a Backstage backend (packages/backend/src/index.ts):
//   backend.add(import('@harmonix/backstage-plugin-scaffolder-backend-module-harmonix'));
import { coreServices, createBackendModule } from '@backstage/backend-plugin-api';
import { scaffolderActionsExtensionPoint } from '@backstage/plugin-scaffolder-node';
import { createHarmonixActions } from './actions.mjs';

/** @typedef {import('./actions.mjs').HarmonixEngine} HarmonixEngine */

/**
 * Placeholder until the Harmonix Node addon exists: every call fails clearly.
 * @type {HarmonixEngine}
 */
export const unimplementedEngine = {
  async plan() {
    throw new Error('Harmonix engine not available yet (Node addon pending)');
  },
  async apply() {
    throw new Error('Harmonix engine not available yet (Node addon pending)');
  },
};

/**
 * Create the scaffolder module with a given engine (tests inject a fake one).
 *
 * @param {{ engine: HarmonixEngine }} deps
 */
export function createHarmonixScaffolderModule(deps) {
  return createBackendModule({
    pluginId: 'scaffolder',
    moduleId: 'harmonix',
    register(env) {
      env.registerInit({
        deps: {
          scaffolder: scaffolderActionsExtensionPoint,
          logger: coreServices.logger,
        },
        async init({ scaffolder, logger }) {
          const actions = createHarmonixActions(deps);
          scaffolder.addActions(...actions);
          logger.info(`Registered Harmonix actions: ${actions.map((a) => a.id).join(', ')}`);
        },
      });
    },
  });
}

/** The module as installed in a backend: `backend.add(scaffolderModuleHarmonix)`. */
export const scaffolderModuleHarmonix = createHarmonixScaffolderModule({
  engine: unimplementedEngine,
});

export default scaffolderModuleHarmonix;
