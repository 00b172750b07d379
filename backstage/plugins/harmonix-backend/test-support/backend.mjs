// The test backend: the real catalog and permission backends and this
// plugin, on PostgreSQL, with a permission policy that lets one user read
// catalog entities and denies another.
import { createBackendModule } from '@backstage/backend-plugin-api';
import { permissionsServiceFactory } from '@backstage/backend-defaults/permissions';
import { mockServices, startTestBackend } from '@backstage/backend-test-utils';
// CommonJS packages: their default export is `module.exports.default`.
import catalogBackend from '@backstage/plugin-catalog-backend';
import permissionBackend from '@backstage/plugin-permission-backend';
import { catalogProcessingExtensionPoint } from '@backstage/plugin-catalog-node';
import { AuthorizeResult } from '@backstage/plugin-permission-common';
import { policyExtensionPoint } from '@backstage/plugin-permission-node/alpha';

import harmonixPlugin, { HARMONIX_API_VERSION, KIND_ENVIRONMENT, KIND_PROVIDER } from '../src/index.mjs';

export const ALLOWED_USER = 'user:default/alice';
export const DENIED_USER = 'user:default/bob';

/** Allows `catalog.entity.read` to {@link ALLOWED_USER} only. */
const policyModule = createBackendModule({
  pluginId: 'permission',
  moduleId: 'harmonix-test-policy',
  register(env) {
    env.registerInit({
      deps: { policy: policyExtensionPoint },
      async init({ policy }) {
        policy.setPolicy({
          async handle(request, user) {
            if (request.permission.name !== 'catalog.entity.read') return { result: AuthorizeResult.ALLOW };
            return {
              result: user?.info.userEntityRef === ALLOWED_USER ? AuthorizeResult.ALLOW : AuthorizeResult.DENY,
            };
          },
        });
      },
    });
  },
});

/** Stands in for the Harmonix catalog module (another package of this
 * repository, built in parallel): a running catalog rejects every kind no
 * processor claims. It only claims the two kinds. */
const kindsModule = createBackendModule({
  pluginId: 'catalog',
  moduleId: 'harmonix-test-kinds',
  register(env) {
    env.registerInit({
      deps: { catalog: catalogProcessingExtensionPoint },
      async init({ catalog }) {
        catalog.addProcessor({
          getProcessorName: () => 'HarmonixTestKindsProcessor',
          async validateEntityKind(entity) {
            return entity.apiVersion === HARMONIX_API_VERSION && [KIND_PROVIDER, KIND_ENVIRONMENT].includes(entity.kind);
          },
        });
      },
    });
  },
});

/**
 * @param {{ connection: object, catalogPath: string, specs: string[], endpointUrl: string }} o
 */
export async function startBackend(o) {
  return startTestBackend({
    features: [
      mockServices.rootConfig.factory({
        data: {
          backend: { database: { client: 'pg', connection: o.connection } },
          permission: { enabled: true },
          catalog: {
            rules: [{ allow: ['Location', KIND_PROVIDER, KIND_ENVIRONMENT] }],
            locations: [{ type: 'file', target: o.catalogPath }],
            processingInterval: { seconds: 1 },
          },
          harmonix: { specs: o.specs, endpointUrl: o.endpointUrl, apiRate: 500, apiBurst: 100 },
        },
      }),
      permissionsServiceFactory,
      catalogBackend.default,
      kindsModule,
      permissionBackend.default,
      policyModule,
      harmonixPlugin,
    ],
  });
}
