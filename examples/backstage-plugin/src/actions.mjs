// Harmonix scaffolder actions (proof of concept).
//
// The handlers talk to an injected `engine` so the same actions can later be
// backed by the Harmonix Node addon (or the `harmonix` CLI) without changing
// them. For now tests inject a fake engine.
import { createTemplateAction } from '@backstage/plugin-scaffolder-node';

/**
 * @typedef {Record<string, unknown>} HarmonixSpec
 *   A Harmonix spec (`providers`, optional `environments`), as in examples/specs/*.yaml.
 *
 * @typedef {{ stack: string, action: 'create' | 'update' | 'delete' | 'none' }} HarmonixChange
 *
 * @typedef {object} HarmonixPlan
 * @property {string} entityRef   Backstage ref of the main entity, e.g. `awsenvironmentprovider:default/payments-dev`.
 * @property {HarmonixChange[]} changes
 *
 * @typedef {object} HarmonixApplyResult
 * @property {string} entityRef
 * @property {Record<string, string>} outputs   Stack outputs (flattened).
 *
 * @typedef {object} HarmonixEngine
 * @property {(spec: HarmonixSpec) => Promise<HarmonixPlan>} plan
 * @property {(spec: HarmonixSpec) => Promise<HarmonixApplyResult>} apply
 *
 * @typedef {object} HarmonixActionDeps
 * @property {HarmonixEngine} engine
 */

export const PLAN_ACTION_ID = 'harmonix:environment:plan';
export const PROVISION_ACTION_ID = 'harmonix:environment:provision';

// Input/output schemas use the zod *factory* style that
// @backstage/plugin-scaffolder-node 0.13.x / 1.x requires: each key maps to
// `(z) => zodType`, where `z` is the `zod/v3` API passed in by Backstage.
// createTemplateAction converts them to JSON Schema (action.schema.input),
// which the scaffolder runner validates step input against before calling the
// handler. A plain JSON Schema object here would be silently dropped.
/** @typedef {typeof import('zod/v3').z} Z  the zod API handed to schema factories */

const inputSchema = {
  spec: (/** @type {Z} */ z) =>
    z
      .object({
        providers: z
          .array(
            z
              .object({
                kind: z.enum(['ecs', 'ecs-ec2', 'eks', 'serverless']),
                name: z.string().regex(/^[a-z0-9-]+$/),
              })
              .passthrough(),
          )
          .min(1),
        environments: z.array(z.object({ name: z.string() }).passthrough()).optional(),
      })
      .passthrough()
      .describe('Harmonix spec: providers and optional environments'),
};

/**
 * @param {HarmonixSpec} spec
 * @returns {string}
 */
function providerNames(spec) {
  const providers = /** @type {Array<{name?: unknown}>} */ (
    Array.isArray(spec.providers) ? spec.providers : []
  );
  return providers.map((p) => String(p.name)).join(', ');
}

/**
 * Build the Harmonix scaffolder actions.
 *
 * @param {HarmonixActionDeps} deps
 */
export function createHarmonixActions(deps) {
  const { engine } = deps;

  const plan = createTemplateAction({
    id: PLAN_ACTION_ID,
    description: 'Plans a Harmonix environment: which CloudFormation stacks would change',
    supportsDryRun: true,
    examples: [
      {
        description: 'Plan the environment described by the form input',
        example: [
          'steps:',
          '  - id: plan',
          '    action: harmonix:environment:plan',
          '    input:',
          '      spec:',
          '        providers:',
          '          - kind: ecs',
          '            name: ${{ parameters.name }}',
        ].join('\n'),
      },
    ],
    schema: {
      input: inputSchema,
      output: {
        entityRef: (z) => z.string().describe('Entity ref of the environment provider'),
        outputs: (z) =>
          z.object({ changes: z.number(), summary: z.string() }).describe('Plan summary'),
      },
    },
    async handler(ctx) {
      const spec = /** @type {HarmonixSpec} */ (ctx.input.spec);
      ctx.logger.info(`Planning Harmonix environment providers: ${providerNames(spec)}`);
      const result = await engine.plan(spec);
      const pending = result.changes.filter((c) => c.action !== 'none');
      for (const change of pending) {
        ctx.logger.info(`${change.action} ${change.stack}`);
      }
      const summary = pending.length === 0 ? 'No changes' : `${pending.length} stack(s) to change`;
      ctx.logger.info(summary);
      ctx.output('entityRef', result.entityRef);
      ctx.output('outputs', { changes: pending.length, summary });
    },
  });

  const provision = createTemplateAction({
    id: PROVISION_ACTION_ID,
    description: 'Provisions (plans and applies) a Harmonix environment',
    // In a dry run the handler only plans, so the action is safe to dry-run.
    supportsDryRun: true,
    schema: {
      input: inputSchema,
      output: {
        entityRef: (z) => z.string().describe('Entity ref of the environment provider'),
        outputs: (z) => z.record(z.string(), z.string()).describe('CloudFormation stack outputs'),
      },
    },
    async handler(ctx) {
      const spec = /** @type {HarmonixSpec} */ (ctx.input.spec);
      if (ctx.isDryRun) {
        ctx.logger.info(`Dry run: planning only for ${providerNames(spec)}`);
        const result = await engine.plan(spec);
        ctx.output('entityRef', result.entityRef);
        ctx.output('outputs', {});
        return;
      }
      ctx.logger.info(`Provisioning Harmonix environment providers: ${providerNames(spec)}`);
      const result = await engine.apply(spec);
      ctx.logger.info(`Provisioned ${result.entityRef}`);
      ctx.output('entityRef', result.entityRef);
      ctx.output('outputs', { ...result.outputs });
    },
  });

  return [plan, provision];
}
