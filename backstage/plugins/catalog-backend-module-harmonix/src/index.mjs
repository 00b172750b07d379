// Package entry point. The default export is the backend feature, so
// `backend.add(import('<this package>'))` works in a Backstage backend.
export { default, catalogModuleHarmonix } from './module.mjs';
export { HarmonixEntitiesProcessor } from './processor.mjs';
