// Minimal `jest` global for running Backstage test utilities under `node --test`.
//
// @backstage/plugin-scaffolder-node-test-utils (createMockActionContext) and
// @backstage/backend-test-utils (mockServices.*.mock(), startTestBackend) call
// `jest.fn()`, `jest.fn(impl)`, `.mockImplementation(impl)` (and use its
// return value, so it must return the mock itself) and
// `.mockResolvedValue(value)` (createTemporaryDirectory when workspacePath is
// given). This maps them onto node:test's mock.fn().
//
// Import this module BEFORE any Backstage test utility:
//   import '../test-support/jest-shim.mjs';
//   import { createMockActionContext } from '@backstage/plugin-scaffolder-node-test-utils';
//
// Recorded calls use node:test's shape: `fn.mock.calls[i].arguments`
// (jest's would be `fn.mock.calls[i]`).
import { mock } from 'node:test';

/**
 * @param {(...args: any[]) => any} [impl]
 */
function fn(impl) {
  const f = /** @type {any} */ (mock.fn(impl));
  f.mockImplementation = (/** @type {(...args: any[]) => any} */ i) => {
    f.mock.mockImplementation(i);
    return f;
  };
  f.mockImplementationOnce = (/** @type {(...args: any[]) => any} */ i) => {
    f.mock.mockImplementationOnce(i);
    return f;
  };
  f.mockReturnValue = (/** @type {unknown} */ v) => f.mockImplementation(() => v);
  f.mockResolvedValue = (/** @type {unknown} */ v) => f.mockImplementation(async () => v);
  f.mockRejectedValue = (/** @type {unknown} */ e) =>
    f.mockImplementation(async () => {
      throw e;
    });
  return f;
}

if (!('jest' in globalThis)) {
  Object.defineProperty(globalThis, 'jest', { value: { fn }, configurable: true, writable: true });
}
