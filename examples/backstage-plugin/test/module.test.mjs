// Starts a test backend with the module and checks that it registers the actions
// on the scaffolder actions extension point.
import '../test-support/jest-shim.mjs'; // must come before any Backstage test utility
import { describe, it, mock } from 'node:test';
import assert from 'node:assert/strict';
import { startTestBackend } from '@backstage/backend-test-utils';
import { scaffolderActionsExtensionPoint } from '@backstage/plugin-scaffolder-node';
import defaultFeature, {
  createHarmonixScaffolderModule,
  scaffolderModuleHarmonix,
  unimplementedEngine,
} from '../src/index.mjs';
import { PLAN_ACTION_ID, PROVISION_ACTION_ID } from '../src/actions.mjs';
import { fakeEngine } from '../test-support/helpers.mjs';

describe('scaffolder module harmonix', () => {
  it('is a backend feature and the package default export', () => {
    assert.equal(defaultFeature, scaffolderModuleHarmonix);
    assert.equal(/** @type {any} */ (scaffolderModuleHarmonix).$$type, '@backstage/BackendFeature');
  });

  it('adds both actions to the scaffolder extension point', async () => {
    const addActions = mock.fn();
    const backend = await startTestBackend({
      extensionPoints: [[scaffolderActionsExtensionPoint, { addActions }]],
      features: [createHarmonixScaffolderModule({ engine: fakeEngine() })],
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

  it('the default engine fails clearly until the Node addon exists', async () => {
    await assert.rejects(unimplementedEngine.plan({}), /not available yet/);
    await assert.rejects(unimplementedEngine.apply({}), /not available yet/);
  });
});
