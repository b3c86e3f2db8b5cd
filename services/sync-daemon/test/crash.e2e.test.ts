// kill -9 of daemon processes at random moments during upload and download,
// 20 times: nothing lost, nothing applied twice, both devices equal the oracle
// over the server's log. Real nats-servers, API process, daemon processes.
import { join } from 'node:path';
import { isDeepStrictEqual } from 'node:util';
import { jetstream } from '@nats-io/jetstream';
import { connect, type NatsConnection } from '@nats-io/transport-node';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { apiSubjects, busSubjects, type EntityState, type StoredAction } from '@ferry/contracts';
import { reconcile } from '@ferry/domain';
import {
  ProcessGroup,
  makeTempDir,
  startNatsServer,
  type NatsServerHandle,
  type ServiceProcess,
  type TempDir,
} from '@ferry/testing';
import { dec, enc, spawnApi, spawnDaemon, writeDaemonConfig } from './support/e2e.js';

const subjects = busSubjects('notes');
const SEED = Number(process.env.FERRY_CRASH_SEED ?? 20261122);
const KILLS = Number(process.env.FERRY_CRASH_KILLS ?? 20);
const CHANGES_PER_DEVICE = 600;

/** Deterministic PRNG (mulberry32) so a failing kill schedule can be replayed. */
function prng(seed: number): () => number {
  let t = seed >>> 0;
  return () => {
    t = (t + 0x6d2b79f5) >>> 0;
    let r = Math.imul(t ^ (t >>> 15), 1 | t);
    r = (r + Math.imul(r ^ (r >>> 7), 61 | r)) ^ r;
    return ((r ^ (r >>> 14)) >>> 0) / 4294967296;
  };
}

interface Device {
  name: string;
  bus: NatsServerHandle;
  app: NatsConnection;
  configPath: string;
  daemon: ServiceProcess;
}

let upstream: NatsServerHandle;
let dir: TempDir;
let probe: NatsConnection;
const procs = new ProcessGroup();
const devices: Device[] = [];

async function startDaemon(d: Device): Promise<void> {
  d.daemon = await spawnDaemon(procs, d.name, d.configPath);
}

async function device(name: string): Promise<Device> {
  const bus = await startNatsServer({ jetstream: true });
  const configPath = writeDaemonConfig(
    dir.path,
    name,
    { bus: bus.url, upstream: upstream.url },
    { batch: { maxActions: 50, maxBytes: 65536, intervalMs: 5 }, retry: { initialMs: 20, maxMs: 200 } },
  );
  const d = { name, bus, app: await connect({ servers: bus.url }), configPath } as Device;
  await startDaemon(d);
  return d;
}

/** The whole log as the server holds it. */
async function serverLog(): Promise<StoredAction[]> {
  const out: StoredAction[] = [];
  let since = 0;
  for (;;) {
    const reply = dec<{ actions: StoredAction[]; next: number; more: boolean }>(
      (await probe.request(apiSubjects.pull('acme'), enc({ since, limit: 1000 }), { timeout: 5000 })).data,
    );
    out.push(...reply.actions);
    since = reply.next;
    if (!reply.more) return out;
  }
}

async function stateOf(d: Device, ids: string[]): Promise<Record<string, EntityState>> {
  const out: Record<string, EntityState> = {};
  const reply = dec<{ entities: EntityState[] }>(
    (await d.app.request(subjects.query, enc({ collection: 'notes' }), { timeout: 5000 })).data,
  );
  for (const e of reply.entities) if (ids.includes(e.id)) out[`notes\u0000${e.id}`] = e;
  return out;
}

beforeAll(async () => {
  upstream = await startNatsServer();
  dir = await makeTempDir('ferry-crash-');
  await spawnApi(procs, upstream.url, join(dir.path, 'api'));
  probe = await connect({ servers: upstream.url, inboxPrefix: '_INBOX_acme' });
  devices.push(await device('device-a'), await device('device-b'));
}, 90_000);

afterAll(async () => {
  await probe?.close();
  for (const d of devices) await d.app.close().catch(() => undefined);
  await procs.killAll();
  for (const d of devices) await d.bus.stop();
  await upstream?.stop();
  await dir?.remove();
});

describe('daemon crashes', () => {
  it(`loses nothing and applies nothing twice across ${KILLS} kill -9s during upload and download`, async () => {
    const random = prng(SEED);
    const ids = Array.from({ length: 30 }, (_, i) => `n${i}`);
    // Both apps write durably (JetStream publish: acked by the stream even while their daemon is dead).
    const writers = devices.map(async (d, k) => {
      const js = jetstream(d.app);
      for (let i = 0; i < CHANGES_PER_DEVICE; i++) {
        const id = ids[(i * 7 + k) % ids.length] as string;
        const op = i < ids.length ? 'create' : i % 97 === 0 ? 'delete' : 'update';
        const fields = op === 'delete' ? undefined : { [`f${i % 4}`]: `${d.name}-${i}` };
        await js.publish(subjects.changes, enc({ collection: 'notes', id, op, ...(fields ? { fields } : {}) }));
        // Paced over ~6 s, so kills land while both daemons upload and download.
        if (i % 5 === 0) await new Promise((r) => setTimeout(r, 50));
      }
    });
    const killer = (async () => {
      for (let k = 0; k < KILLS; k++) {
        await new Promise((r) => setTimeout(r, 30 + Math.floor(random() * 250)));
        const d = devices[Math.floor(random() * devices.length)] as Device;
        await d.daemon.kill('SIGKILL');
        await startDaemon(d);
      }
    })();
    await Promise.all([...writers, killer]);

    // Everything reaches the server exactly once: 600 changes per device, no more.
    const deadline = Date.now() + 60_000;
    let log: StoredAction[] = [];
    for (;;) {
      log = await serverLog();
      if (log.length >= CHANGES_PER_DEVICE * devices.length || Date.now() > deadline) break;
      await new Promise((r) => setTimeout(r, 100));
    }
    expect(log.length).toBe(CHANGES_PER_DEVICE * devices.length);
    expect(new Set(log.map((a) => a.id)).size).toBe(log.length);
    for (const client of new Set(log.map((a) => a.clientId))) {
      const seqs = log.filter((a) => a.clientId === client).map((a) => a.clientSeq);
      expect(seqs).toEqual(Array.from({ length: CHANGES_PER_DEVICE }, (_, i) => i + 1)); // in order, no gap, no repeat
    }

    // Both devices converge on the oracle's state over that log.
    const expected = Object.fromEntries(reconcile([], log));
    for (const d of devices) {
      const until = Date.now() + 30_000;
      let state = await stateOf(d, ids);
      while (!isDeepStrictEqual(state, expected) && Date.now() < until) {
        await new Promise((r) => setTimeout(r, 100));
        state = await stateOf(d, ids);
      }
      expect(state).toEqual(expected);
    }
  }, 180_000);
});
