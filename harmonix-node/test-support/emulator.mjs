// The local AWS emulator (moto, installed into the repository's .venv by
// scripts/setup) on a free loopback port, for the Node tests.
import { spawn } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import net from 'node:net';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

export const REPO = resolve(dirname(fileURLToPath(import.meta.url)), '..', '..');
export const EXAMPLES = join(REPO, 'examples', 'specs');

function freePort() {
  return new Promise((ok, fail) => {
    const srv = net.createServer();
    srv.on('error', fail);
    srv.listen(0, '127.0.0.1', () => {
      const { port } = srv.address();
      srv.close(() => ok(port));
    });
  });
}

/** Start moto; resolves to `{ url, stop }`. */
export async function startEmulator() {
  const venv = process.env.HARMONIX_VENV ?? join(REPO, '.venv');
  const binary = process.env.HARMONIX_MOTO_SERVER ?? join(venv, 'bin', 'moto_server');
  if (!existsSync(binary)) throw new Error(`${binary} not found: run scripts/setup`);
  const port = await freePort();
  const child = spawn(binary, ['-H', '127.0.0.1', '-p', String(port)], { stdio: 'ignore' });
  const url = `http://127.0.0.1:${port}`;
  const deadline = Date.now() + 30_000;
  for (;;) {
    if (child.exitCode !== null) throw new Error(`moto_server exited with ${child.exitCode}`);
    try {
      const r = await fetch(`${url}/moto-api/data.json`);
      if (r.ok) break;
    } catch {
      // not up yet
    }
    if (Date.now() > deadline) {
      child.kill();
      throw new Error('moto_server did not answer within 30 s');
    }
    await new Promise((r) => setTimeout(r, 100));
  }
  const proxy = await startProxy(port);
  return {
    url: proxy.url,
    stop: async () => {
      await proxy.stop();
      await new Promise((ok) => {
        child.once('exit', ok);
        child.kill();
      });
    },
  };
}

/** `harmonix-proxy` (built by `cargo test`) in front of moto: it refuses
 * what AWS refuses and moto accepts (an inline template over 51,200
 * bytes). Resolves to `{ url, stop }`. */
async function startProxy(upstream) {
  const binary = process.env.HARMONIX_PROXY ?? join(REPO, 'target', 'debug', 'harmonix-proxy');
  if (!existsSync(binary)) {
    throw new Error(`${binary} not found: \`cargo test\` (or cargo build -p harmonix-tests) builds it`);
  }
  const child = spawn(binary, ['--upstream', String(upstream)], { stdio: ['ignore', 'pipe', 'inherit'] });
  const url = await new Promise((ok, fail) => {
    let seen = '';
    const timer = setTimeout(() => fail(new Error(`harmonix-proxy did not start: ${seen}`)), 10_000);
    child.stdout.on('data', (chunk) => {
      seen += chunk.toString();
      const m = /listening on (http:\/\/\S+)/.exec(seen);
      if (m) {
        clearTimeout(timer);
        ok(m[1]);
      }
    });
    child.once('exit', (code) => fail(new Error(`harmonix-proxy exited with ${code}: ${seen}`)));
  });
  return {
    url,
    stop: () =>
      new Promise((ok) => {
        if (child.exitCode !== null) return ok();
        child.once('exit', ok);
        child.kill();
      }),
  };
}

/** Dummy credentials for the emulator. */
export function useDummyCredentials() {
  Object.assign(process.env, {
    AWS_ACCESS_KEY_ID: 'testing',
    AWS_SECRET_ACCESS_KEY: 'testing',
    AWS_REGION: 'us-east-1',
    AWS_MAX_ATTEMPTS: '2',
  });
  delete process.env.AWS_PROFILE;
  delete process.env.AWS_ENDPOINT_URL;
}

/** An example spec's text; `existingVpc` swaps its new VPC for an existing
 * one (the emulator cannot delete VPCs it created). */
export function exampleText(name, existingVpc = false) {
  let text = readFileSync(join(EXAMPLES, name), 'utf8');
  if (existingVpc) {
    text = text.replace(
      /^ {4}vpc:\n(?: {6}.*\n)+/m,
      '    vpc:\n      mode: existing\n      id: vpc-0123456789abcdef0\n',
    );
  }
  return text;
}
