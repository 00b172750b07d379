// @harmonix/backstage-plugin-harmonix-backend: read-only, permission-checked
// REST endpoints for Harmonix environments.
export { default, createHarmonixBackendPlugin, engineOptionsFromConfig, harmonixPlugin } from './plugin.mjs';
export { createRouter, auditLimit, DEFAULT_AUDIT_LIMIT, MAX_AUDIT_LIMIT } from './router.mjs';
export { loadSpecFiles, resolveEntity, HARMONIX_API_VERSION, KIND_ENVIRONMENT, KIND_PROVIDER } from './environments.mjs';
