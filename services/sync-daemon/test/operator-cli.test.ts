// The operator commands as a user meets them: every error path (bad config,
// unreachable NATS, unreadable store, no daemon) is one clear line on stderr
// and a non-zero exit, with a stack trace only under --verbose; --help works
// for every command; `ferry doctor` passes against a healthy stack.
import { execFile } from 'node:child_process';
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  FERRY_BIN,
  ProcessGroup,
  REPO_ROOT,
  makeTempDir,
  startNatsServer,
  type NatsServerHandle,
  type TempDir,
} from '@ferry/testing';
import { spawnApi, spawnDaemon, writeDaemonConfig } from './support/e2e.js';

interface Run {
  readonly code: number | null;
  readonly stdout: string;
  readonly stderr: string;
}

function ferry(args: readonly string[], env: Record<string, string> = {}): Promise<Run> {
  return new Promise((resolve) => {
    execFile(
      process.execPath,
      [FERRY_BIN, ...args],
      { cwd: REPO_ROOT, env: { ...process.env, ...env }, timeout: 60_000 },
      (err, stdout, stderr) => {
        const code = err === null ? 0 : typeof err.code === 'number' ? err.code : null;
        resolve({ code, stdout, stderr });
      },
    );
  });
}

/** A loopback port nothing listens on (bound, then released). */
function closedPort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const srv = createServer();
    srv.once('error', reject);
    srv.listen(0, '127.0.0.1', () => {
      const address = srv.address();
      const port = typeof address === 'object' && address !== null ? address.port : 0;
      srv.close(() => resolve(port));
    });
  });
}

/** The contract of an error path: non-zero, one line naming the command, no stack. */
function expectOneLineError(r: Run, command: string, pattern: RegExp, code?: number): void {
  const lines = r.stderr.trimEnd().split('\n');
  expect(r.code, r.stderr).not.toBe(0);
  if (code !== undefined) expect(r.code).toBe(code);
  expect(lines, r.stderr).toHaveLength(1);
  expect(lines[0]).toMatch(new RegExp(`^ferry ${command}: `));
  expect(lines[0]).toMatch(pattern);
  expect(r.stderr).not.toMatch(/^\s+at /m);
}

let dir: TempDir;
let nats: NatsServerHandle;
let closed: number;
const procs = new ProcessGroup();
const paths = { bad: '', unreachable: '', garbage: '', healthy: '', missing: '' };

beforeAll(async () => {
  dir = await makeTempDir('ferry-cli-');
  nats = await startNatsServer({ jetstream: true });
  closed = await closedPort();
  const down = `nats://127.0.0.1:${closed}`;
  paths.missing = join(dir.path, 'missing.json');
  paths.bad = writeDaemonConfig(dir.path, 'bad', { bus: down, upstream: down }, { colections: {} });
  paths.unreachable = writeDaemonConfig(dir.path, 'unreachable', { bus: down, upstream: down });
  paths.garbage = writeDaemonConfig(dir.path, 'garbage', { bus: nats.url, upstream: nats.url });
  mkdirSync(join(dir.path, 'garbage'), { recursive: true });
  writeFileSync(
    join(dir.path, 'garbage', 'ferry-daemon.sqlite'),
    'this is not a SQLite database, just text\n'.repeat(50),
  );
  paths.healthy = writeDaemonConfig(dir.path, 'healthy', { bus: nats.url, upstream: nats.url });
}, 60_000);

afterAll(async () => {
  await procs.killAll();
  await nats?.stop();
  await dir?.remove();
});

describe('error paths: one clear line, non-zero exit, no stack trace', () => {
  it('a config file that does not exist', async () => {
    expectOneLineError(await ferry(['status', '--config', paths.missing]), 'status', /missing\.json: cannot read/, 2);
    expectOneLineError(await ferry(['watch', '--config', paths.missing]), 'watch', /missing\.json/, 2);
    expectOneLineError(await ferry(['daemon', '--config', paths.missing]), 'daemon', /missing\.json/, 2);
  });

  it('a config with a wrong key names the key', async () => {
    for (const command of ['status', 'watch', 'daemon']) {
      expectOneLineError(await ferry([command, '--config', paths.bad]), command, /unknown key "colections"/, 2);
    }
    const doctor = await ferry(['doctor', '--config', paths.bad]);
    expect(doctor.code).toBe(2);
    expect(doctor.stdout).toMatch(/^✗ config .*unknown key "colections"/m);
  });

  it('ferry start with a damaged ferry.json of an earlier run: refused, and the file is left as it was', async () => {
    const home = join(dir.path, 'start-home');
    mkdirSync(home, { recursive: true });
    writeFileSync(join(home, 'ferry.json'), '{"app": "notes", "bus": ');
    const r = await ferry(['start', '--dir', home, '--nats-url', `nats://127.0.0.1:${await closedPort()}`]);
    expectOneLineError(r, 'start', /ferry\.json/, 2);
    expect(readFileSync(join(home, 'ferry.json'), 'utf8')).toBe('{"app": "notes", "bus": ');
  });

  it('bad command lines', async () => {
    expectOneLineError(await ferry(['status']), 'status', /give --config FILE/, 2);
    expectOneLineError(
      await ferry(['status', '--config', paths.healthy, '--jsn']),
      'status',
      /unknown option "--jsn"/,
      2,
    );
    expectOneLineError(
      await ferry(['watch', '--bus-url', 'http://x', '--app', 'notes']),
      'watch',
      /must be a nats:\/\//,
      2,
    );
    expectOneLineError(await ferry(['status', '--bus-url', nats.url, '--app', 'Not An App']), 'status', /--app/, 2);
  });

  it('NATS that cannot be reached', async () => {
    const url = `nats://127.0.0.1:${closed}`;
    const refused = new RegExp(`cannot reach the bus.* at ${url.replace(/[.]/g, '\\.')}: connection refused`);
    expectOneLineError(await ferry(['status', '--config', paths.unreachable]), 'status', refused, 1);
    expectOneLineError(await ferry(['status', '--bus-url', url, '--app', 'notes']), 'status', refused, 1);
    expectOneLineError(await ferry(['watch', '--config', paths.unreachable, '--json']), 'watch', refused, 1);
    expectOneLineError(await ferry(['daemon', '--config', paths.unreachable]), 'daemon', refused, 1);
    const doctor = await ferry(['doctor', '--config', paths.unreachable]);
    expect(doctor.code).toBe(1);
    expect(doctor.stdout).toMatch(/^✗ bus .*connection refused/m);
    expect(doctor.stdout).toMatch(/^✗ upstream .*connection refused/m);
  });

  it('a daemon store that is not a SQLite database', async () => {
    const store = join(dir.path, 'garbage', 'ferry-daemon.sqlite');
    expectOneLineError(
      await ferry(['daemon', '--config', paths.garbage]),
      'daemon',
      new RegExp(`${store.replace(/[.]/g, '\\.')}: not a readable SQLite database`),
      1,
    );
    const doctor = await ferry(['doctor', '--config', paths.garbage]);
    expect(doctor.code).toBe(1);
    expect(doctor.stdout).toMatch(/^✗ stores +daemon store: .*ferry-daemon\.sqlite: not a readable SQLite database/m);
  });

  it('an HTTP port that is taken', async () => {
    const taken = createServer();
    await new Promise<void>((resolve) => taken.listen(0, '127.0.0.1', resolve));
    const address = taken.address();
    const port = typeof address === 'object' && address !== null ? address.port : 0;
    try {
      const config = writeDaemonConfig(
        dir.path,
        'http-taken',
        { bus: nats.url, upstream: nats.url },
        { http: { port } },
      );
      expectOneLineError(
        await ferry(['daemon', '--config', config]),
        'daemon',
        new RegExp(`http: 127\\.0\\.0\\.1:${port} is already in use`),
        1,
      );
    } finally {
      await new Promise((resolve) => taken.close(resolve));
    }
  });

  it('no daemon answering on the bus', async () => {
    expectOneLineError(
      await ferry(['status', '--bus-url', nats.url, '--app', 'nobody']),
      'status',
      /no daemon answers on ferry\.nobody\.status/,
      1,
    );
  });

  it('--verbose adds the stack trace', async () => {
    const r = await ferry(['status', '--config', paths.unreachable, '--verbose']);
    expect(r.code).toBe(1);
    expect(r.stderr.split('\n')[0]).toMatch(/^ferry status: cannot reach the bus/);
    expect(r.stderr).toMatch(/^\s+at /m);
  });
});

describe('--help', () => {
  it.each(['status', 'watch', 'doctor', 'demo', 'start', 'daemon'])('ferry %s --help', async (command) => {
    const r = await ferry([command, '--help']);
    expect(r.code).toBe(0);
    expect(r.stdout).toMatch(new RegExp(`^usage: ferry ${command}`));
  });
});

describe('ferry doctor on a healthy stack', () => {
  it('passes every check, with the clock drift measured against the server', async () => {
    const api = await spawnApi(procs, nats.url, join(dir.path, 'api'));
    const daemon = await spawnDaemon(procs, 'healthy', paths.healthy);
    try {
      const r = await ferry(['doctor', '--config', paths.healthy]);
      expect(r.code, r.stdout + r.stderr).toBe(0);
      for (const check of ['config', 'stores', 'bus', 'upstream', 'jetstream', 'api', 'clock', 'daemon']) {
        expect(r.stdout, check).toMatch(new RegExp(`^✓ ${check} `, 'm'));
      }
      expect(r.stdout).toMatch(/^✓ clock +upstream: local clock [+-]?\d+ ms \(±\d+ ms\)/m);
      expect(r.stdout).toMatch(/all checks passed/);
      const json = await ferry(['doctor', '--config', paths.healthy, '--json']);
      const checks = JSON.parse(json.stdout) as { check: string; status: string }[];
      expect(checks.every((c) => c.status === 'ok')).toBe(true);
    } finally {
      await daemon.stop();
      await api.stop();
    }
  }, 60_000);
});
