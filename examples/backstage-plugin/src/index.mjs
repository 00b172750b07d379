// Package entry point. The default export is the backend feature, so
// `backend.add(import('<this package>'))` works in a Backstage backend.
export { default } from './module.mjs';
export {
  createHarmonixScaffolderModule,
  scaffolderModuleHarmonix,
  unimplementedEngine,
} from './module.mjs';
export { createHarmonixActions, PLAN_ACTION_ID, PROVISION_ACTION_ID } from './actions.mjs';
