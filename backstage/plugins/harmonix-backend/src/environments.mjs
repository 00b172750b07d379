// Which Harmonix spec describes a catalog entity, and the engine calls that
// read its stacks, outputs and audit records.
//
// The entities carry the account, region, prefix, stack and audit table of
// a deployment, but not its spec, and "does the stack match its spec" needs
// the spec: the router reads the platform team's spec files named in
// app-config (`harmonix.specs`), the same files `harmonix apply` deploys,
// and finds the one that defines the entity (a provider of that name for an
// `AWSEnvironmentProvider`, an environment for an `AWSEnvironment`).
import harmonix from '@harmonix/node';

/** `apiVersion` of the Harmonix kinds. */
export const HARMONIX_API_VERSION = 'aws.backstage.io/v1alpha';
export const KIND_PROVIDER = 'AWSEnvironmentProvider';
export const KIND_ENVIRONMENT = 'AWSEnvironment';

/**
 * @typedef {object} SpecFile
 * @property {string} path
 * @property {import('@harmonix/node').Specs} specs
 * @property {import('@harmonix/node').Entity[]} entities the entities it describes (before deployment)
 * @property {import('@harmonix/node').Stack[]} stacks
 */

/**
 * @typedef {object} Resolved
 * @property {string} path the spec file
 * @property {import('@harmonix/node').Specs} specs
 * @property {Set<string>} providers the providers the entity stands for
 * @property {Set<string>} stacks their stacks
 */

/**
 * Load and validate every spec file (a bad file fails the plugin's start,
 * with the file and field path, rather than every request).
 * @param {string[]} paths
 * @returns {SpecFile[]}
 */
export function loadSpecFiles(paths) {
  return paths.map((path) => {
    const specs = harmonix.loadSpecs(path);
    return { path, specs, entities: specs.entities(), stacks: specs.stacks() };
  });
}

/**
 * The spec file and providers behind `entity`; undefined when no
 * configured spec defines it.
 * @param {SpecFile[]} files
 * @param {import('@backstage/catalog-model').Entity} entity
 * @returns {Resolved | undefined}
 */
export function resolveEntity(files, entity) {
  if (entity.apiVersion !== HARMONIX_API_VERSION) return undefined;
  const name = entity.metadata.name;
  const namespace = entity.metadata.namespace ?? 'default';
  if (namespace !== 'default') return undefined; // Harmonix writes every entity to `default`
  for (const f of files) {
    /** @type {string[]} */
    let providers = [];
    if (entity.kind === KIND_PROVIDER) {
      const e = f.entities.find((x) => x.kind === KIND_PROVIDER && x.metadata.name === name);
      // Same name, other account or region: another deployment, not this spec's.
      if (e && sameTarget(e, entity)) providers = [name];
    } else if (entity.kind === KIND_ENVIRONMENT) {
      const e = f.entities.find((x) => x.kind === KIND_ENVIRONMENT && x.metadata.name === name);
      const deps = /** @type {string[]} */ (e?.spec?.dependsOn ?? []);
      providers = deps.map((ref) => ref.slice(ref.indexOf('/') + 1));
    }
    if (providers.length > 0) {
      const set = new Set(providers);
      return {
        path: f.path,
        specs: f.specs,
        providers: set,
        stacks: new Set(f.stacks.filter((s) => set.has(s.provider)).map((s) => s.name)),
      };
    }
  }
  return undefined;
}

/**
 * @param {import('@harmonix/node').Entity} fromSpec
 * @param {import('@backstage/catalog-model').Entity} inCatalog
 */
function sameTarget(fromSpec, inCatalog) {
  const a = /** @type {Record<string, unknown>} */ (fromSpec.metadata);
  const b = /** @type {Record<string, unknown>} */ (inCatalog.metadata);
  return ['awsAccount', 'awsRegion'].every((k) => b[k] === undefined || b[k] === a[k]);
}

/**
 * The entity's stacks: CloudFormation status and whether each matches its
 * spec (`drift`: `inSync`, `drifted` or `missing`).
 * @param {import('@harmonix/node').Engine} engine
 * @param {Resolved} r
 */
export async function stacksOf(engine, r) {
  const targets = await engine.status(r.specs);
  const byName = new Map(
    r.specs
      .stacks()
      .filter((s) => r.stacks.has(s.name))
      .map((s) => [s.name, s]),
  );
  return targets.flatMap((t) =>
    t.stacks
      .filter((s) => byName.has(s.name))
      .map((s) => ({
        name: s.name,
        provider: byName.get(s.name)?.provider ?? '',
        account: t.account,
        region: t.region,
        status: s.state?.status ?? null,
        statusReason: s.state?.statusReason ?? null,
        stackId: s.state?.stackId ?? null,
        lastUpdated: s.lastUpdated ?? s.state?.lastUpdated ?? null,
        drift: s.drift,
        inSync: s.drift === 'inSync',
      })),
  );
}

/**
 * The entity's stack outputs.
 * @param {import('@harmonix/node').Engine} engine
 * @param {Resolved} r
 */
export async function outputsOf(engine, r) {
  const all = await engine.outputs(r.specs);
  return all.filter((s) => r.stacks.has(s.name));
}

/**
 * The newest `limit` audit records of the entity's providers, newest first.
 * @param {import('@harmonix/node').Engine} engine
 * @param {Resolved} r
 * @param {number} limit
 */
export async function auditOf(engine, r, limit) {
  const all = (await engine.auditItems(r.specs, { limit })).filter((p) => r.providers.has(p.provider));
  const items = all
    .flatMap((p) => p.items)
    .sort((a, b) => (a.createdAt < b.createdAt ? 1 : a.createdAt > b.createdAt ? -1 : 0))
    .slice(0, limit);
  return {
    tables: all.map((p) => ({
      provider: p.provider,
      account: p.account,
      region: p.region,
      table: p.table,
      found: p.tableFound,
    })),
    items,
  };
}
