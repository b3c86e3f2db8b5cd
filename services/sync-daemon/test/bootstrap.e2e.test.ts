// Snapshot bootstrap with real processes: a new device loads the server's
// state from snapshot pages instead of replaying the log; a device the
// server's retention left behind (resetRequired) re-bootstraps and still
// delivers its offline changes; kill -9 during a bootstrap resumes it. Every
// device ends equal to the replay oracle over the server's log.
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { isDeepStrictEqual } from 'node:util';
import { jetstream } from '@nats-io/jetstream';
import { connect, type NatsConnection } from '@nats-io/transport-node';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { uuidv7 } from 'uuidv7';
import { apiSubjects, busSubjects, type EntityState, type StoredAction, type SyncEvent } from '@ferry/contracts';
import { reconcile } from '@ferry/domain';
import {
  ProcessGroup,
  makeTempDir,
  startNatsServer,
  type NatsServerHandle,
  type ServiceProcess,
  type TempDir,
} from '@ferry/testing';
import { dec, enc, eventually, spawnApi, spawnDaemon, writeDaemonConfig } from './support/e2e.js';

const subjects = busSubjects('notes');

interface Device {
  name: string;
  configPath: string;
  bus: NatsServerHandle;
  app: NatsConnection;
  daemon: ServiceProcess | null;
  events: SyncEvent[];
}

let upstream: NatsServerHandle;
let dir: TempDir;
let probe: NatsConnection;
const procs = new ProcessGroup();
const devices: Device[] = [];

async function device(name: string, extra: Record<string, unknown> = {}): Promise<Device> {
  const bus = await startNatsServer({ jetstream: true });
  const configPath = writeDaemonConfig(
    dir.path,
    name,
    { bus: bus.url, upstream: upstream.url },
    { retry: { initialMs: 20, maxMs: 200 }, ...extra },
  );
  const app = await connect({ servers: bus.url });
  const d: Device = { name, configPath, bus, app, daemon: null, events: [] };
  app.subscribe(subjects.events, {
    callback: (_e, m) => {
      d.events.push(dec<SyncEvent>(m.data));
    },
  });
  await app.flush();
  devices.push(d);
  return d;
}

async function start(d: Device): Promise<void> {
  d.daemon = await spawnDaemon(procs, d.name, d.configPath);
}

/** The app's durable write: acked by the local stream whether or not the daemon runs. */
async function write(d: Device, changes: readonly Record<string, unknown>[]): Promise<void> {
  const js = jetstream(d.app);
  for (const c of changes) await js.publish(subjects.changes, enc(c));
}

function changes(prefix: string, ids: number, count: number, from = 0): Record<string, unknown>[] {
  return Array.from({ length: count }, (_, k) => {
    const i = from + k;
    const id = `${prefix}${i % ids}`;
    if (i < ids) return { collection: 'notes', id, op: 'create', fields: { title: `t${i}`, n: i } };
    // Only every fourth entity is ever deleted: most stay alive (purged tombstones leave snapshots).
    if (i % 11 === 0 && (i % ids) % 4 === 0) return { collection: 'notes', id, op: 'delete' };
    return { collection: 'notes', id, op: 'update', fields: { [`f${i % 3}`]: `${prefix}-${i}` } };
  });
}

async function status(d: Device): Promise<{ cursor: number; pending: number }> {
  return dec((await d.app.request(subjects.status, enc({}), { timeout: 5000 })).data);
}

/**
 * The server's whole log, recorded as it grows: the recorder pulls with a
 * clientId every 250 ms, so the purge (which keeps what recently seen clients
 * have not pulled) never takes an entry before it is recorded.
 */
const RECORDER = '0190a000-0000-7000-8000-00000000feed';
const recorded: StoredAction[] = [];
/** The collection of the one action that creates the tenant before the devices start; left out of the log. */
const SETUP = '_setup';
let recording: NodeJS.Timeout | null = null;
let pulling: Promise<StoredAction[]> | null = null;

function serverLog(): Promise<StoredAction[]> {
  pulling ??= (async () => {
    for (;;) {
      const since = recorded.at(-1)?.seq ?? 0;
      const reply = dec<{ actions: StoredAction[]; more: boolean; resetRequired?: boolean }>(
        (
          await probe.request(apiSubjects.pull('acme'), enc({ since, limit: 1000, clientId: RECORDER }), {
            timeout: 5000,
          })
        ).data,
      );
      if (reply.resetRequired === true) throw new Error(`the purge passed the recorder at ${since}`);
      recorded.push(...reply.actions);
      if (!reply.more) return recorded.filter((a) => a.collection !== SETUP);
    }
  })().finally(() => (pulling = null));
  return pulling;
}

async function state(d: Device): Promise<Record<string, EntityState>> {
  const reply = dec<{ entities: EntityState[] }>(
    (await d.app.request(subjects.query, enc({ collection: 'notes' }), { timeout: 5000 })).data,
  );
  // Tombstones are left out on both sides: retention purges them from the server (and snapshots).
  return Object.fromEntries(reply.entities.filter((e) => !e.deleted).map((e) => [`notes\u0000${e.id}`, e]));
}

/** The oracle over `log`, visible entities only (what a query returns). */
function oracle(log: readonly StoredAction[]): Record<string, EntityState> {
  return Object.fromEntries([...reconcile([], log)].filter(([, e]) => !e.deleted));
}

async function converges(d: Device, expectedCount: number): Promise<void> {
  let log: StoredAction[] = [];
  let diff = '';
  await eventually(
    `${d.name} to equal the oracle over ${expectedCount} actions`,
    async () => {
      log = await serverLog();
      if (log.length !== expectedCount) return false;
      const actual = await state(d);
      const expected = oracle(log);
      const keys = [...new Set([...Object.keys(actual), ...Object.keys(expected)])];
      const bad = keys.filter((k) => !isDeepStrictEqual(actual[k], expected[k]));
      diff = bad
        .slice(0, 3)
        .map((k) => `${JSON.stringify(actual[k])} != ${JSON.stringify(expected[k])}`)
        .join('; ');
      return bad.length === 0;
    },
    {
      timeoutMs: 60_000,
      describe: () => {
        const byClient = new Map<string, number>();
        for (const a of log) byClient.set(a.clientId, (byClient.get(a.clientId) ?? 0) + 1);
        return Promise.resolve(`server has ${log.length} (${JSON.stringify([...byClient])}); ${diff}`);
      },
    },
  );
}

beforeAll(async () => {
  upstream = await startNatsServer();
  dir = await makeTempDir('ferry-bootstrap-');
  // Retention of ~1.7 s, purged every second: a device away longer than that is left behind.
  const apiConfig = join(dir.path, 'api.json');
  writeFileSync(apiConfig, JSON.stringify({ retention: { windowDays: 2e-5, purgeIntervalMs: 1000 } }));
  await spawnApi(procs, upstream.url, join(dir.path, 'api'), ['--config', apiConfig]);
  probe = await connect({ servers: upstream.url, inboxPrefix: '_INBOX_acme' });
  // The API keeps a cursor only for a tenant it has data of: one action of a setup client makes
  // the tenant, so the recorder's first pull counts before any device's does (else a purge
  // between a device's first pull and the recorder's next one passes the recorder).
  const setup = uuidv7();
  const created = dec<{ results?: { status: string }[] }>(
    (
      await probe.request(
        apiSubjects.push('acme'),
        enc({
          clientId: setup,
          actions: [
            {
              id: uuidv7(),
              clientId: setup,
              clientSeq: 1,
              collection: SETUP,
              entityId: 'tenant',
              op: 'create',
              hlc: Date.now() * 4096,
            },
          ],
        }),
        { timeout: 5000 },
      )
    ).data,
  );
  expect(created.results?.[0]?.status).toBe('accepted');
  await serverLog();
  recording = setInterval(() => void serverLog().catch(() => undefined), 250);
}, 60_000);

afterAll(async () => {
  if (recording !== null) clearInterval(recording);
  await pulling?.catch(() => undefined);
  await probe?.close();
  for (const d of devices) await d.app.close().catch(() => undefined);
  await procs.killAll();
  for (const d of devices) await d.bus.stop();
  await upstream?.stop();
  await dir?.remove();
});

describe('snapshot bootstrap', () => {
  it('a new device loads a snapshot page by page, then pulls only what came after it [B1]', async () => {
    const a = await device('device-a');
    await start(a);
    await write(a, changes('a', 40, 400));
    await converges(a, 400);

    const b = await device('device-b', { download: { pageLimit: 1000, snapshotPageLimit: 7 } });
    await start(b);
    await converges(b, 400);
    const types = b.events.map((e) => e.type);
    expect(b.events.find((e) => e.type === 'bootstrap-started')).toMatchObject({ reason: 'new-device', cursor: 0 });
    const pages = b.events.filter((e) => e.type === 'snapshot-applied');
    expect(pages.length).toBeGreaterThanOrEqual(Math.ceil(30 / 7)); // ≥ 30 live records, 7 a page
    expect(pages.at(-1)).toMatchObject({ more: false });
    const seq = (pages.at(-1) as Extract<SyncEvent, { type: 'snapshot-applied' }>).seq;
    // The first pull starts at the snapshot's seq, not at 0: no replay of the history.
    await eventually('a pull after the snapshot', () => b.events.some((e) => e.type === 'pull-received'));
    const firstPull = b.events.find((e) => e.type === 'pull-received');
    expect(firstPull).toMatchObject({ since: seq });
    expect(types.indexOf('bootstrap-started')).toBeLessThan(types.indexOf('snapshot-applied'));

    // Both keep syncing afterwards, in both directions.
    await write(b, changes('b', 5, 20));
    await write(a, changes('a', 40, 20, 400));
    await converges(a, 440);
    await converges(b, 440);
  }, 120_000);

  it('a device the retention purge left behind re-bootstraps, keeps its offline changes and converges', async () => {
    const [a, b] = devices as [Device, Device];
    const { cursor } = await status(b);
    await b.daemon?.stop();
    b.daemon = null;
    const start0 = (await serverLog()).length;
    // B's app keeps writing while its daemon is down; A writes until the purge has passed B's cursor.
    await write(b, changes('b', 5, 30, 20));
    let written = 30;
    const leftBehind = async () =>
      dec<{ resetRequired?: boolean }>(
        (await probe.request(apiSubjects.pull('acme'), enc({ since: cursor, limit: 1 }), { timeout: 5000 })).data,
      ).resetRequired === true;
    for (let round = 0; !(await leftBehind()); round++) {
      expect(round, 'the retention purge never passed the stopped device').toBeLessThan(300);
      await write(a, changes('a', 40, 10, 440 + round * 10));
      written += 10;
      await new Promise((r) => setTimeout(r, 100));
    }
    const before = b.events.length;
    await start(b);
    const total = start0 + written;
    await converges(b, total);
    await converges(a, total);
    const after = b.events.slice(before);
    expect(after.find((e) => e.type === 'bootstrap-started')).toMatchObject({ reason: 'reset-required' });
    expect(after.some((e) => e.type === 'snapshot-applied')).toBe(true);
  }, 180_000);

  it('kill -9 during a bootstrap resumes it, and the device still equals the oracle [B3]', async () => {
    const [a] = devices as [Device];
    const c = await device('device-c', { download: { pageLimit: 1000, snapshotPageLimit: 1 } });
    let kills = 0;
    const start0 = (await serverLog()).length;
    await write(a, changes('c', 300, 300));
    // Counted on the server: A's WAL may be empty while its stream still holds uncaptured changes.
    await eventually('device-a to upload everything', async () => (await serverLog()).length === start0 + 300);
    const total = start0 + 300;
    // A keeps writing meanwhile, so pages are read while the server moves on.
    const writer = write(a, changes('a', 40, 60, 5000));
    for (let k = 0; k < 10; k++) {
      await start(c);
      const pagesBefore = c.events.filter((e) => e.type === 'snapshot-applied').length;
      await eventually('a few snapshot pages', () => {
        const now = c.events.filter((e) => e.type === 'snapshot-applied');
        return now.length >= pagesBefore + 1 + (k % 3) || now.at(-1)?.more === false;
      });
      if (c.events.some((e) => e.type === 'snapshot-applied' && !e.more)) break;
      await c.daemon?.kill('SIGKILL');
      kills++;
    }
    await writer;
    if (c.daemon === null || !c.daemon.running) await start(c);
    await converges(c, total + 60);
    expect(kills).toBeGreaterThanOrEqual(6);
    expect(c.events.some((e) => e.type === 'bootstrap-started' && e.reason === 'resumed')).toBe(true);
  }, 180_000);
});
