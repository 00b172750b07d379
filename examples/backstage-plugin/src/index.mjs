// Package entry point. The default export is the backend feature, so
// `backend.add(import('<this package>'))` works in a Backstage backend.
export { default } from './module.mjs';
export {
  createHarmonixScaffolderModule,
  engineOptionsFromConfig,
  lazyEngine,
  scaffolderModuleHarmonix,
} from './module.mjs';
export { createHarmonixActions, logEvents, PLAN_ACTION_ID, PROVISION_ACTION_ID } from './actions.mjs';
export { formSchema, specJsonSchema, specZod } from './schema.mjs';
