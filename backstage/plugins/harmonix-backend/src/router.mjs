// The read-only REST API of one Backstage backend (mounted at
// /api/harmonix):
//
//   GET /environments/:namespace/:kind/:name/stacks   stacks, status, drift from the spec
//   GET /environments/:namespace/:kind/:name/outputs  stack outputs
//   GET /environments/:namespace/:kind/:name/audit?limit=N  latest audit records
//
// Every call: the caller's credentials (user or service), the entity from
// the catalog (404 when unknown), then `catalog.entity.read` on that entity
// through the permission framework (403 when denied).
import { stringifyEntityRef } from '@backstage/catalog-model';
import { InputError, NotAllowedError, NotFoundError } from '@backstage/errors';
import { catalogEntityReadPermission } from '@backstage/plugin-catalog-common/alpha';
import { AuthorizeResult } from '@backstage/plugin-permission-common';
import express from 'express';

import { auditOf, outputsOf, resolveEntity, stacksOf } from './environments.mjs';

/** Default and largest `limit` of the audit endpoint. */
export const DEFAULT_AUDIT_LIMIT = 20;
export const MAX_AUDIT_LIMIT = 1000;

/**
 * @typedef {object} RouterOptions
 * @property {import('@backstage/backend-plugin-api').HttpAuthService} httpAuth
 * @property {import('@backstage/backend-plugin-api').AuthService} auth
 * @property {import('@backstage/backend-plugin-api').PermissionsService} permissions
 * @property {import('@backstage/plugin-catalog-node').CatalogService} catalog
 * @property {import('@backstage/backend-plugin-api').LoggerService} logger
 * @property {() => Promise<import('@harmonix/node').Engine>} engine
 * @property {() => import('./environments.mjs').SpecFile[]} specFiles
 */

/**
 * @param {string | undefined} text
 * @returns {number}
 */
export function auditLimit(text) {
  if (text === undefined || text === '') return DEFAULT_AUDIT_LIMIT;
  const n = Number(text);
  if (!/^\d+$/.test(text) || n < 1 || n > MAX_AUDIT_LIMIT) {
    throw new InputError(`limit=${text}: an integer from 1 to ${MAX_AUDIT_LIMIT}`);
  }
  return n;
}

/**
 * The router.
 * @param {RouterOptions} o
 * @returns {import('express').Router}
 */
export function createRouter(o) {
  const router = express.Router();

  /**
   * The checked entity and what the spec says about it.
   * @param {import('express').Request} req
   */
  async function environment(req) {
    const credentials = await o.httpAuth.credentials(req, { allow: ['user', 'service'] });
    const { namespace, kind, name } = req.params;
    const ref = stringifyEntityRef({ kind, namespace, name });
    // Looked up as this plugin, so that "unknown" (404) and "not allowed"
    // (403) stay apart; the caller's own permission is checked next.
    const entity = await o.catalog.getEntityByRef(ref, {
      credentials: await o.auth.getOwnServiceCredentials(),
    });
    if (!entity) throw new NotFoundError(`no entity ${ref} in the catalog`);
    const entityRef = stringifyEntityRef(entity);
    const [decision] = await o.permissions.authorize(
      [{ permission: catalogEntityReadPermission, resourceRef: entityRef }],
      { credentials },
    );
    if (decision.result !== AuthorizeResult.ALLOW) {
      throw new NotAllowedError(`not allowed to read ${entityRef}`);
    }
    const resolved = resolveEntity(o.specFiles(), entity);
    if (!resolved) {
      throw new NotFoundError(
        `${entityRef} is not defined by a Harmonix spec of this backend (app-config harmonix.specs)`,
      );
    }
    return { entityRef, resolved };
  }

  /**
   * @param {(req: import('express').Request) => Promise<unknown>} handler
   * @returns {import('express').RequestHandler}
   */
  const json = (handler) => (req, res, next) => {
    handler(req).then((body) => res.json(body), next);
  };

  const base = '/environments/:namespace/:kind/:name';
  router.get(
    `${base}/stacks`,
    json(async (req) => {
      const { entityRef, resolved } = await environment(req);
      return { entityRef, spec: resolved.path, stacks: await stacksOf(await o.engine(), resolved) };
    }),
  );
  router.get(
    `${base}/outputs`,
    json(async (req) => {
      const { entityRef, resolved } = await environment(req);
      return { entityRef, stacks: await outputsOf(await o.engine(), resolved) };
    }),
  );
  router.get(
    `${base}/audit`,
    json(async (req) => {
      const limit = auditLimit(typeof req.query.limit === 'string' ? req.query.limit : undefined);
      const { entityRef, resolved } = await environment(req);
      return { entityRef, limit, ...(await auditOf(await o.engine(), resolved, limit)) };
    }),
  );
  return router;
}
