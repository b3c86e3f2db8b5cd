// The nats-server launcher and the process helper, against the real binary:
// start on a free loopback port, restart on the same port with the same
// JetStream store, kill, stop; and child processes awaited by log line, killed by pid.
import { existsSync, readFileSync } from 'node:fs';
import { afterEach, describe, expect, it } from 'vitest';
import { connect, type NatsConnection } from '@nats-io/transport-node';
import { ProcessGroup } from '../src/process.js';
import { startNatsServer, type NatsServerHandle } from '../src/nats-server.js';

const servers: NatsServerHandle[] = [];
const procs = new ProcessGroup();
afterEach(async () => {
  await procs.killAll();
  await Promise.all(servers.splice(0).map((s) => s.stop()));
});

async function jsRequest(nc: NatsConnection, subject: string, body: unknown = {}): Promise<Record<string, unknown>> {
  return (await nc.request(subject, JSON.stringify(body), { timeout: 5000 })).json();
}

/** Resolves on the connection's next `reconnect` status. */
async function reconnected(nc: NatsConnection): Promise<void> {
  for await (const s of nc.status()) if (s.type === 'reconnect') return;
}

describe('startNatsServer (local binary)', () => {
  it('listens on loopback on a free port and keeps port and JetStream store across kill and restart', async () => {
    const ns = await startNatsServer({ jetstream: true, mode: 'local' });
    servers.push(ns);
    expect(ns.kind).toBe('local');
    expect(ns.url).toMatch(/^nats:\/\/127\.0\.0\.1:\d+$/);
    const port = ns.port;
    const nc = await connect({ servers: ns.url, maxReconnectAttempts: -1, reconnectTimeWait: 50 });
    try {
      const created = await jsRequest(nc, '$JS.API.STREAM.CREATE.T', { name: 'T', subjects: ['t.>'], storage: 'file' });
      expect(created.error).toBeUndefined();
      await nc.request('t.x', 'hello', { timeout: 5000 }); // a JetStream publish is acked by the stream
      const back = reconnected(nc);
      await ns.kill();
      await ns.restart();
      await back;
      expect(ns.port).toBe(port);
      const info = await jsRequest(nc, '$JS.API.STREAM.INFO.T');
      expect((info.state as { messages: number }).messages).toBe(1);
    } finally {
      await nc.close();
    }
  });

  it('applies an extra config snippet (here: a token) and reports a broken config as a start failure', async () => {
    const ns = await startNatsServer({ mode: 'local', config: 'authorization { token: "s3cret" }' });
    servers.push(ns);
    await expect(connect({ servers: ns.url, token: 'wrong', maxReconnectAttempts: 0 })).rejects.toThrow();
    const nc = await connect({ servers: ns.url, token: 's3cret' });
    await nc.close();
    await expect(
      startNatsServer({ mode: 'local', config: 'this is { not valid', startTimeoutMs: 5000 }),
    ).rejects.toThrow(/exited during start/);
  });

  it('stop() is final and idempotent, and removes its temp files', async () => {
    const ns = await startNatsServer({ mode: 'local' });
    expect(ns.log()).toContain('Server is ready');
    const dir = ns.tempDir as string;
    expect(existsSync(dir)).toBe(true);
    // The pid is the server's own process (benchmarks read its CPU from /proc).
    const pid = ns.pid as number;
    expect(readFileSync(`/proc/${pid}/cmdline`, 'utf8')).toContain('nats-server');
    await ns.stop();
    expect(ns.pid).toBeNull();
    await ns.stop();
    await expect(ns.restart()).rejects.toThrow(/stopped/);
    expect(existsSync(dir)).toBe(false);
  });
});

describe('ProcessGroup', () => {
  it('awaits a log line, kills by pid with SIGKILL, and fails a wait when the process exits first', async () => {
    const script =
      "console.log('booting'); setTimeout(() => console.log('ready 42'), 50); setInterval(() => {}, 1000);";
    const p = procs.spawn({ args: ['-e', script], name: 'ticker' });
    expect(await p.waitForLine(/ready (\d+)/)).toBe('ready 42');
    expect(await p.waitForLine(/booting/)).toBe('booting'); // already seen
    const never = p.waitForLine(/never/);
    const exit = await p.kill('SIGKILL');
    expect(exit).toEqual({ code: null, signal: 'SIGKILL' });
    await expect(never).rejects.toThrow(/exited/);
    expect(p.running).toBe(false);
  });

  it('times out a wait with the output tail in the message', async () => {
    const p = procs.spawn({ args: ['-e', "console.error('oops'); setInterval(() => {}, 1000);"], name: 'quiet' });
    await expect(p.waitForLine(/ready/, 300)).rejects.toThrow(/quiet did not log .* within 300 ms:\n.*oops/s);
  });
});
