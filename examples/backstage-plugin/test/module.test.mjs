// Starts a test backend with the module and checks that it registers the actions
// on the scaffolder actions extension point.
import '../test-support/jest-shim.mjs'; // must come before any Backstage test utility
import { describe, it, mock } from 'node:test';
import assert from 'node:assert/strict';
import { startTestBackend } from '@backstage/backend-test-utils';
import { scaffolderActionsExtensionPoint } from '@backstage/plugin-scaffolder-node';
import defaultFeature, {
  createHarmonixScaffolderModule,
  engineOptionsFromConfig,
  scaffolderModuleHarmonix,
} from '../src/index.mjs';
import { PLAN_ACTION_ID, PROVISION_ACTION_ID } from '../src/actions.mjs';

describe('scaffolder module harmonix', () => {
  it('is a backend feature and the package default export', () => {
    assert.equal(defaultFeature, scaffolderModuleHarmonix);
    assert.equal(/** @type {any} */ (scaffolderModuleHarmonix).$$type, '@backstage/BackendFeature');
  });

  it('adds both actions to the scaffolder extension point', async () => {
    const addActions = mock.fn();
    const backend = await startTestBackend({
      extensionPoints: [[scaffolderActionsExtensionPoint, { addActions }]],
      features: [createHarmonixScaffolderModule()],
    });
    try {
      assert.equal(addActions.mock.callCount(), 1);
      const actions = addActions.mock.calls[0].arguments;
      assert.deepEqual(
        actions.map((/** @type {any} */ a) => a.id),
        [PLAN_ACTION_ID, PROVISION_ACTION_ID],
      );
    } finally {
      await backend.stop();
    }
  });

  it('reads the engine options from app-config (harmonix section)', () => {
    /** @type {any} */
    const config = {
      getOptionalConfig: (/** @type {string} */ key) =>
        key === 'harmonix'
          ? {
              getOptionalString: (/** @type {string} */ k) =>
                ({ endpointUrl: 'http://127.0.0.1:5000', region: 'eu-west-1' })[k],
              getOptionalNumber: (/** @type {string} */ k) => ({ concurrency: 2 })[k],
              getOptionalBoolean: () => undefined,
            }
          : undefined,
    };
    const o = engineOptionsFromConfig(config);
    assert.equal(o.endpointUrl, 'http://127.0.0.1:5000');
    assert.equal(o.region, 'eu-west-1');
    assert.equal(o.concurrency, 2);
    assert.equal(o.caller, 'backstage');
  });
});
