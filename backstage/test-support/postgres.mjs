// A throwaway PostgreSQL server for the Backstage backend tests: Debian's
// `postgresql` server binaries (scripts/setup installs them), a new data
// directory in a temp folder, listening only on a free loopback port.
// Backstage's production database, as the backstage-platform provider
// deploys it (Aurora PostgreSQL).
import { spawn, spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import net from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

/** The directory of `initdb`/`postgres`: `HARMONIX_PG_BIN`, else the newest
 * `/usr/lib/postgresql/<version>/bin`. */
export function postgresBin() {
  if (process.env.HARMONIX_PG_BIN) return process.env.HARMONIX_PG_BIN;
  const root = '/usr/lib/postgresql';
  const versions = existsSync(root)
    ? readdirSync(root).filter((v) => existsSync(join(root, v, 'bin', 'postgres'))).sort((a, b) => Number(b) - Number(a))
    : [];
  if (versions.length === 0) {
    throw new Error('PostgreSQL server not found under /usr/lib/postgresql: run scripts/setup (apt-get install postgresql)');
  }
  return join(root, versions[0], 'bin');
}

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

function canConnect(port) {
  return new Promise((ok) => {
    const s = net.connect({ host: '127.0.0.1', port }, () => {
      s.end();
      ok(true);
    });
    s.on('error', () => ok(false));
  });
}

/**
 * Start PostgreSQL; resolves to `{ host, port, user, password, connection, stop }`.
 * `connection` is Backstage's `backend.database.connection` object. Runs as
 * the current user, or as `postgres` when that is root (PostgreSQL refuses
 * to run as root).
 */
export async function startPostgres() {
  const bin = postgresBin();
  const dir = mkdtempSync(join(tmpdir(), 'harmonix-pg-'));
  const data = join(dir, 'data');
  const asRoot = process.getuid?.() === 0;
  const wrap = (cmd, args) => (asRoot ? ['runuser', ['-u', 'postgres', '--', cmd, ...args]] : [cmd, args]);
  if (asRoot) spawnSync('chown', ['postgres', dir]);
  const password = 'harmonix-test';
  const pwfile = join(dir, 'pw');
  writeFileSync(pwfile, password, { mode: 0o644 });
  if (asRoot) spawnSync('chown', ['postgres', pwfile]);
  const [initCmd, initArgs] = wrap(join(bin, 'initdb'), [
    '-D', data, '-U', 'backstage', '--pwfile', pwfile, '-A', 'scram-sha-256', '--no-sync', '-E', 'UTF8',
  ]);
  const init = spawnSync(initCmd, initArgs, { encoding: 'utf8' });
  if (init.status !== 0) throw new Error(`initdb failed: ${init.stderr || init.stdout}`);
  const port = await freePort();
  const [cmd, args] = wrap(join(bin, 'postgres'), [
    '-D', data, '-h', '127.0.0.1', '-p', String(port), '-k', dir, '-c', 'fsync=off', '-c', 'max_connections=200',
  ]);
  const child = spawn(cmd, args, { stdio: ['ignore', 'ignore', 'pipe'] });
  let log = '';
  child.stderr.on('data', (c) => {
    log += c.toString();
  });
  const deadline = Date.now() + 30_000;
  while (!(await canConnect(port))) {
    if (child.exitCode !== null) throw new Error(`postgres exited with ${child.exitCode}: ${log}`);
    if (Date.now() > deadline) {
      child.kill();
      throw new Error(`postgres did not listen within 30 s: ${log}`);
    }
    await new Promise((r) => setTimeout(r, 100));
  }
  const connection = { host: '127.0.0.1', port, user: 'backstage', password };
  return {
    ...connection,
    connection,
    log: () => log,
    stop: () =>
      new Promise((ok) => {
        const done = () => {
          rmSync(dir, { recursive: true, force: true });
          ok();
        };
        if (child.exitCode !== null) return done();
        child.once('exit', done);
        // Fast shutdown through pg_ctl: signals do not pass runuser.
        const [stopCmd, stopArgs] = wrap(join(bin, 'pg_ctl'), ['stop', '-D', data, '-m', 'fast', '-w']);
        const r = spawnSync(stopCmd, stopArgs, { encoding: 'utf8' });
        if (r.status !== 0) child.kill('SIGKILL');
      }),
  };
}
