// Harmonix scaffolder actions: plan and provision an environment through
// the Harmonix Node addon (@harmonix/node), in-process, with the engine's
// progress events in the task log.
//
//   harmonix:environment:plan       plan the spec; the diff and summary
//   harmonix:environment:provision  plan and apply it, write the catalog
//                                   entities into the workspace
import { resolve, sep } from 'node:path';

import harmonix from '@harmonix/node';
import { createTemplateAction } from '@backstage/plugin-scaffolder-node';

import { specZod } from './schema.mjs';

/** @typedef {import('@harmonix/node').Engine} Engine */
/** @typedef {import('@harmonix/node').HarmonixEvent} HarmonixEvent */

/**
 * @typedef {object} HarmonixActionDeps
 * @property {() => Promise<Engine>} engine  The engine (made once, shared by every task).
 */

export const PLAN_ACTION_ID = 'harmonix:environment:plan';
export const PROVISION_ACTION_ID = 'harmonix:environment:provision';

/**
 * Write an engine event to the task log.
 * @param {{ info(m: string): void; warn(m: string): void; error(m: string): void }} logger
 * @returns {(e: HarmonixEvent) => void}
 */
export function logEvents(logger) {
  return (e) => {
    switch (e.event) {
      case 'planned':
        logger.info(`planned ${e.stack}: ${e.action} (${e.changes} resource change(s))`);
        break;
      case 'waiting':
        logger.info(`waiting for ${e.stack} (${e.status}) to finish its running operation`);
        break;
      case 'locked':
        logger.info(`locked ${e.lock}`);
        break;
      case 'started':
        logger.info(`${e.stack}: ${e.action} started`);
        break;
      case 'resourceProgress':
        logger.info(`${e.stack}: ${e.logicalId} (${e.resourceType}) ${e.status}${e.reason ? `: ${e.reason}` : ''}`);
        break;
      case 'stackDone':
        logger.info(`✓ ${e.stack} ${e.status}`);
        break;
      case 'stackFailed':
        logger.error(`✗ ${e.stack} ${e.status ?? 'failed'}: ${e.reason}`);
        break;
      case 'skipped':
        logger.warn(`${e.stack} skipped: ${e.because}`);
        break;
      case 'catalogWritten':
        logger.info(`catalog ${e.path} ${e.outcome}`);
        break;
      case 'warning':
        logger.warn(e.message);
        break;
      case 'finished':
        logger.info(`finished: ${e.succeeded} succeeded, ${e.failed} failed, ${e.skipped} skipped`);
        break;
      default:
        break;
    }
  };
}

/**
 * The Harmonix specs of an action input (validated by the core, with
 * field paths in the error).
 * @param {unknown} spec
 */
function specsOf(spec) {
  try {
    return harmonix.specsFromObject(/** @type {object} */ (spec), 'scaffolder input');
  } catch (e) {
    throw readable(e);
  }
}

/**
 * A task error that names the Harmonix code and every field problem.
 * @param {unknown} e
 */
function readable(e) {
  if (e instanceof harmonix.HarmonixError) {
    const issues = e.issues.map((i) => `\n  ${i.path}${i.value ? ` = ${JSON.stringify(i.value)}` : ''}: ${i.message}`);
    const err = new Error(`${e.code}: ${e.message}${issues.join('')}`);
    Object.assign(err, { code: e.code, cause: e });
    return err;
  }
  return e;
}

/**
 * The catalog file inside the workspace (refusing paths that leave it).
 * @param {string} workspace
 * @param {string} relative
 */
function inWorkspace(workspace, relative) {
  const root = resolve(workspace);
  const path = resolve(root, relative);
  if (path !== root && !path.startsWith(root + sep)) {
    throw new Error(`catalogPath ${JSON.stringify(relative)} leaves the workspace`);
  }
  return path;
}

/**
 * Build the Harmonix scaffolder actions.
 * @param {HarmonixActionDeps} deps
 */
export function createHarmonixActions(deps) {
  const plan = createTemplateAction({
    id: PLAN_ACTION_ID,
    description: 'Plans a Harmonix environment: which CloudFormation stacks and resources would change',
    supportsDryRun: true,
    examples: [
      {
        description: 'Plan the environment described by the form',
        example: [
          'steps:',
          '  - id: plan',
          '    action: harmonix:environment:plan',
          '    input:',
          '      spec:',
          '        providers:',
          "          - ${{ parameters.provider }}",
        ].join('\n'),
      },
    ],
    schema: {
      input: { spec: (z) => specZod(z) },
      output: {
        diff: (z) => z.string().describe('Terraform-like diff of the plan'),
        noChanges: (z) => z.boolean().describe('Whether nothing would change'),
        summary: (z) =>
          z
            .object({ add: z.number(), change: z.number(), destroy: z.number(), stacksToChange: z.number() })
            .describe('Resource and stack counts'),
      },
    },
    async handler(ctx) {
      const specs = specsOf(ctx.input.spec);
      const engine = await deps.engine();
      try {
        const reviewed = await engine.plan(specs, { onEvent: logEvents(ctx.logger) });
        for (const line of reviewed.diff().trimEnd().split('\n')) ctx.logger.info(line);
        const s = reviewed.summary;
        ctx.output('diff', reviewed.diff());
        ctx.output('noChanges', reviewed.isNoop);
        ctx.output('summary', { add: s.add, change: s.change, destroy: s.destroy, stacksToChange: s.stacksToChange });
        // Only shown: its change sets are not kept.
        await engine.discard(reviewed);
      } catch (e) {
        throw readable(e);
      }
    },
  });

  const provision = createTemplateAction({
    id: PROVISION_ACTION_ID,
    description: 'Provisions a Harmonix environment (plan and apply) and writes its catalog entities into the workspace',
    // A dry run only plans.
    supportsDryRun: true,
    schema: {
      input: {
        spec: (z) => specZod(z),
        catalogPath: (z) =>
          z
            .string()
            .optional()
            .describe('Catalog file, relative to the workspace (default catalog-info.yaml)'),
      },
      output: {
        entityRef: (z) => z.string().describe('Ref of the first environment provider'),
        entityRefs: (z) => z.array(z.string()).describe('Refs of every entity written'),
        outputs: (z) =>
          z.record(z.string(), z.record(z.string(), z.string())).describe('Stack outputs, by stack'),
        catalogPath: (z) => z.string().describe('The catalog file written'),
      },
    },
    async handler(ctx) {
      const specs = specsOf(ctx.input.spec);
      const engine = await deps.engine();
      const onEvent = logEvents(ctx.logger);
      const relative = ctx.input.catalogPath ?? 'catalog-info.yaml';
      const catalogPath = inWorkspace(ctx.workspacePath, relative);
      try {
        const reviewed = await engine.plan(specs, { onEvent });
        for (const line of reviewed.diff().trimEnd().split('\n')) ctx.logger.info(line);
        if (ctx.isDryRun) {
          ctx.logger.info('dry run: planned only');
          await engine.discard(reviewed);
          const refs = specs.entities().map(ref);
          ctx.output('entityRef', refs[0] ?? '');
          ctx.output('entityRefs', refs);
          ctx.output('outputs', {});
          ctx.output('catalogPath', relative);
          return;
        }
        const report = await engine.apply(reviewed, { catalogPath, onEvent, signal: ctx.signal });
        const refs = report.entities.map(ref);
        ctx.output('entityRef', refs[0] ?? '');
        ctx.output('entityRefs', refs);
        ctx.output('outputs', report.outputs);
        ctx.output('catalogPath', relative);
      } catch (e) {
        throw readable(e);
      }
    },
  });

  return [plan, provision];
}

/**
 * The entity ref of an entity (`kind:namespace/name`, kind lowercase).
 * @param {import('@harmonix/node').Entity} e
 */
function ref(e) {
  const ns = typeof e.metadata.namespace === 'string' ? e.metadata.namespace : 'default';
  return `${e.kind.toLowerCase()}:${ns}/${e.metadata.name}`;
}
