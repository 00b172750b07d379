// Shared test helpers: example specs, the Backstage catalog validator, a
// capturing logger and a temp workspace.
import { mock } from 'node:test';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { spawnSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { join, resolve, dirname } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parse } from 'yaml';

export const REPO = resolve(dirname(fileURLToPath(import.meta.url)), '..', '..', '..');

/**
 * An example spec (examples/specs/NAME) as the object a form produces.
 * @param {string} name
 * @param {{ existingVpc?: boolean }} [opts]
 * @returns {any}
 */
export function exampleSpec(name, { existingVpc = false } = {}) {
  const spec = parse(readFileSync(join(REPO, 'examples', 'specs', name), 'utf8'));
  if (existingVpc) {
    for (const p of spec.providers) p.vpc = { mode: 'existing', id: 'vpc-0123456789abcdef0' };
  }
  return spec;
}

/**
 * Validate catalog files with Backstage's own model (tests/node/validate-catalog.mjs).
 * @param {string} file
 */
export function validateCatalog(file) {
  const dir = join(REPO, 'tests', 'node');
  const out = spawnSync(process.execPath, [join(dir, 'validate-catalog.mjs'), file], { cwd: dir, encoding: 'utf8' });
  const verdicts = out.stdout.trim().split('\n').filter(Boolean).map((l) => JSON.parse(l));
  return { code: out.status, verdicts, stderr: out.stderr };
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
