// Shared test helpers: a fake Harmonix engine, a capturing logger and a temp workspace.
import { mock } from 'node:test';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

export const ecsSpec = {
  providers: [
    {
      kind: 'ecs',
      name: 'payments-dev',
      owner: 'group:payments',
      account: '123456789012',
      region: 'us-east-1',
    },
  ],
};

/** A fake engine whose plan/apply record their calls. */
export function fakeEngine() {
  return {
    plan: mock.fn(async (/** @type {any} */ spec) => ({
      entityRef: `awsenvironmentprovider:default/${spec.providers[0].name}`,
      changes: [
        { stack: `opa-${spec.providers[0].name}-environment`, action: /** @type {const} */ ('create') },
        { stack: 'opa-unchanged-environment', action: /** @type {const} */ ('none') },
      ],
    })),
    apply: mock.fn(async (/** @type {any} */ spec) => ({
      entityRef: `awsenvironmentprovider:default/${spec.providers[0].name}`,
      outputs: { ClusterName: `opa-${spec.providers[0].name}-cluster`, VpcId: 'vpc-0123456789abcdef0' },
    })),
  };
}

/**
 * A LoggerService-shaped logger whose methods are node:test mocks. Passing it
 * as `logger` to createMockActionContext lets tests read `ctx.logger.info`
 * calls directly (the default ctx.logger is a winston logger wrapping a mock
 * that the test cannot reach).
 */
export function captureLogger() {
  /** @type {any} */
  const logger = {
    info: mock.fn(),
    warn: mock.fn(),
    error: mock.fn(),
    debug: mock.fn(),
    child: mock.fn(() => logger),
  };
  return logger;
}

/** Messages passed to a mocked logger method. */
export function messages(/** @type {any} */ loggerFn) {
  return loggerFn.mock.calls.map((/** @type {any} */ c) => c.arguments[0]);
}

/** Outputs recorded by ctx.output (a jest-shim mock) as an object. */
export function outputsOf(/** @type {any} */ ctx) {
  return Object.fromEntries(ctx.output.mock.calls.map((/** @type {any} */ c) => c.arguments));
}

export async function tempWorkspace() {
  const dir = await mkdtemp(join(tmpdir(), 'harmonix-scaffolder-test-'));
  return { dir, cleanup: () => rm(dir, { recursive: true, force: true }) };
}
