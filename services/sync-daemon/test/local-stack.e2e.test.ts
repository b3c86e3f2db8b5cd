// `ferry demo` and `ferry start` (npm run demo / npm start) as a user runs
// them: the demo converges two devices and exits 0; start brings up its own
// nats-server, the API and a daemon with its status page, answers `ferry
// status`, and on SIGTERM stops everything it started.
import { execFile } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { createServer, connect as netConnect } from 'node:net';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { FERRY_BIN, ProcessGroup, REPO_ROOT, makeTempDir, type TempDir } from '@ferry/testing';
import { eventually } from './support/e2e.js';

let dir: TempDir;
const procs = new ProcessGroup();

/**
 * What a parent left running if it was itself killed: its pids.json lists its
 * children; each is killed only if its command line still names our temp dir
 * (never a recycled pid of someone else).
 */
function killLeftovers(stateDir: string): void {
  const file = join(stateDir, 'pids.json');
  if (!existsSync(file)) return;
  const pids = JSON.parse(readFileSync(file, 'utf8')) as Record<string, number>;
  for (const pid of Object.values(pids)) {
    try {
      const cmdline = readFileSync(`/proc/${pid}/cmdline`, 'utf8');
      if (cmdline.includes(dir.path)) process.kill(pid, 'SIGKILL');
    } catch {
      // already gone
    }
  }
}

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

function listening(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = netConnect({ host: '127.0.0.1', port });
    socket.once('connect', () => {
      socket.destroy();
      resolve(true);
    });
    socket.once('error', () => resolve(false));
  });
}

beforeAll(async () => {
  dir = await makeTempDir('ferry-local-');
});

afterAll(async () => {
  await procs.killAll();
  killLeftovers(join(dir.path, 'demo'));
  killLeftovers(join(dir.path, 'start'));
  await dir?.remove();
});

describe('local stack', () => {
  it('ferry demo: two devices edit offline, reconnect and converge, step by step', async () => {
    const demo = procs.spawnFerry('demo', ['--dir', join(dir.path, 'demo')]);
    const exit = await demo.exited;
    const out = demo.output();
    expect(exit.code, out).toBe(0);
    for (let step = 1; step <= 6; step++) expect(out).toContain(`[${step}/6]`);
    expect(out).toMatch(/A +offline/);
    expect(out).toMatch(/ +push-acked +\d+ accepted/);
    expect(out).toMatch(/ +conflict +notes\/4[57]/);
    expect(out).toMatch(
      /notes\/45 +\{"title":"Groceries","body":"milk, eggs"\} v4 +\{"title":"Groceries","body":"milk, eggs"\} v4 +✓ same/,
    );
    expect(out).toMatch(/notes\/47 +\(deleted\) +\(deleted\) +✓ same/);
    expect(out).toContain('Both devices converged');
    // Everything it started has stopped.
    expect(JSON.parse(readFileSync(join(dir.path, 'demo', 'pids.json'), 'utf8'))).toEqual({});
  }, 120_000);

  it('ferry start: NATS, the API and a daemon with its status page; SIGTERM stops them all', async () => {
    const port = await closedPort();
    const stateDir = join(dir.path, 'start');
    const start = procs.spawnFerry('start', [
      '--dir',
      stateDir,
      '--nats-url',
      `nats://127.0.0.1:${port}`,
      '--http-port',
      '0',
    ]);
    // The summary's last line: everything above it has been printed.
    await start.waitForLine(/Ctrl-C stops everything/, 60_000);
    expect(start.output()).toContain('Ferry is running');
    expect(start.output()).toContain(`starting nats-server with JetStream on 127.0.0.1:${port}`);
    const page = /status page +(http:\/\/127\.0\.0\.1:\d+)\//.exec(start.output())?.[1];
    expect(page, start.output()).toBeDefined();
    expect((await fetch(`${page}/healthz`)).status).toBe(200);
    expect(await (await fetch(`${page}/`)).text()).toContain('<title>Ferry daemon</title>');

    const config = join(stateDir, 'ferry.json');
    const status = () =>
      new Promise<{ online?: boolean; pending?: number }>((resolve) => {
        execFile(
          process.execPath,
          [FERRY_BIN, 'status', '--config', config, '--json'],
          { cwd: REPO_ROOT },
          (err, stdout) => resolve(err === null ? (JSON.parse(stdout) as { online: boolean }) : {}),
        );
      });
    await eventually('ferry status to report online', async () => (await status()).online === true);

    const exit = await start.stop(20_000);
    expect(exit.code, start.tail()).toBe(0);
    expect(start.output()).toContain('stopped');
    expect(JSON.parse(readFileSync(join(stateDir, 'pids.json'), 'utf8'))).toEqual({});
    expect(await listening(port)).toBe(false);
  }, 120_000);
});
