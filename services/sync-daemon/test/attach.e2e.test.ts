// The no-code-change mode end to end, with real processes: an upstream
// nats-server and the API process; per device a bus nats-server, a daemon
// attached to the app's SQLite file (`source: {kind: "sqlite"}`), and the app
// itself, a plain better-sqlite3 script (fixtures/sqlite-app.mjs) that imports
// nothing from Ferry. Offline edits converge to the oracle; both apps write at
// full speed while the daemons write back; kill -9 of a daemon loses nothing;
// minted integer ids that collide are reported; detach restores the schema.
import { writeFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { join } from 'node:path';
import { isDeepStrictEqual } from 'node:util';
import Database from 'better-sqlite3';
import { connect, type NatsConnection } from '@nats-io/transport-node';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { apiSubjects, busSubjects, type StoredAction, type SyncEvent } from '@ferry/contracts';
import { reconcile } from '@ferry/domain';
import {
  FERRY_BIN,
  ProcessGroup,
  makeTempDir,
  startNatsServer,
  type NatsServerHandle,
  type ServiceProcess,
  type TempDir,
} from '@ferry/testing';
import { dec, enc, eventually, spawnApi, spawnDaemon, writeDaemonConfig } from './support/e2e.js';

const APP = fileURLToPath(new URL('./fixtures/sqlite-app.mjs', import.meta.url));
const subjects = busSubjects('notes');
const SEED = Number(process.env.FERRY_ATTACH_SEED ?? 20261123);
const KILLS = Number(process.env.FERRY_ATTACH_KILLS ?? 10);

interface Device {
  name: string;
  db: string;
  configPath: string;
  bus: NatsServerHandle;
  nc: NatsConnection;
  daemon: ServiceProcess;
  events: SyncEvent[];
  /** sqlite_schema before the daemon first attached. */
  schemaBefore: unknown[];
}

interface AppStats {
  committed: number;
  busy: number;
  remoteSeen: number;
}

let upstream: NatsServerHandle;
let dir: TempDir;
let probe: NatsConnection;
const procs = new ProcessGroup();
let api: ServiceProcess;
const devices: Device[] = [];
/** Every bus server started, stopped in afterAll whatever failed in between. */
const servers: NatsServerHandle[] = [];

/** Runs the app once as its own process and returns what it printed after `app done` / `app rows`. */
async function runApp<T>(db: string, command: string, args?: unknown): Promise<T> {
  const app = procs.spawn({
    name: `app ${command}`,
    args: [APP, db, command, ...(args === undefined ? [] : [JSON.stringify(args)])],
  });
  const exit = await app.exited;
  if (exit.code !== 0) throw new Error(`app ${command} failed (${exit.code}):\n${app.tail()}`);
  const line = app
    .output()
    .split('\n')
    .find((l) => l.startsWith('app done ') || l.startsWith('app rows '));
  return (line === undefined ? undefined : JSON.parse(line.slice(9))) as T;
}

function schemaOf(db: string): unknown[] {
  const conn = new Database(db, { readonly: true });
  try {
    return conn.prepare('SELECT type, name, tbl_name, rootpage, sql FROM sqlite_schema ORDER BY name').all();
  } finally {
    conn.close();
  }
}

function rowsOf(db: string, table: 'notes' | 'items' = 'notes'): Record<string, unknown>[] {
  const conn = new Database(db, { readonly: true });
  try {
    return conn.prepare(`SELECT * FROM ${table} ORDER BY id`).all() as Record<string, unknown>[];
  } finally {
    conn.close();
  }
}

async function startDaemon(d: Device): Promise<void> {
  d.daemon = await spawnDaemon(procs, d.name, d.configPath);
}

async function device(name: string): Promise<Device> {
  const bus = await startNatsServer();
  servers.push(bus);
  const db = join(dir.path, `${name}.db`);
  await runApp(db, 'init');
  const schemaBefore = schemaOf(db);
  const configPath = writeDaemonConfig(
    dir.path,
    name,
    { bus: bus.url, upstream: upstream.url },
    {
      source: { kind: 'sqlite', path: db },
      batch: { maxActions: 200, maxBytes: 262144, intervalMs: 5 },
      retry: { initialMs: 20, maxMs: 200 },
    },
  );
  const nc = await connect({ servers: bus.url });
  const d = { name, db, configPath, bus, nc, events: [], schemaBefore } as unknown as Device;
  // Registered before the daemon starts, so afterAll stops this bus even if the start fails.
  devices.push(d);
  nc.subscribe(subjects.events, {
    callback: (_e, m) => {
      d.events.push(dec<SyncEvent>(m.data));
    },
  });
  await nc.flush();
  await startDaemon(d);
  return d;
}

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

async function status(d: Device): Promise<{ pending: number; online: boolean; cursor: number }> {
  return dec((await d.nc.request(subjects.status, enc({}), { timeout: 5000 })).data);
}

/** The oracle's live `notes`, as the rows an app table must hold. */
function oracleNotes(log: readonly StoredAction[]): Record<string, unknown>[] {
  return [...reconcile([], log).values()]
    .filter((e) => e.collection === 'notes' && !e.deleted)
    .map((e) => e.fields as Record<string, unknown>)
    .sort((a, b) => (String(a.id) < String(b.id) ? -1 : 1));
}

/** Both files hold identical notes, equal to the oracle over the server's log, and nothing is pending. */
async function converged(what: string, timeoutMs = 60_000): Promise<StoredAction[]> {
  let log: StoredAction[] = [];
  await eventually(
    what,
    async () => {
      const [a, b] = devices as [Device, Device];
      const [sa, sb] = [await status(a), await status(b)];
      if (sa.pending !== 0 || sb.pending !== 0) return false;
      log = await serverLog();
      const expected = oracleNotes(log);
      return isDeepStrictEqual(rowsOf(a.db), expected) && isDeepStrictEqual(rowsOf(b.db), expected);
    },
    {
      timeoutMs,
      describe: async () =>
        JSON.stringify({
          a: rowsOf(devices[0]!.db).length,
          b: rowsOf(devices[1]!.db).length,
          oracle: oracleNotes(await serverLog()).length,
          statusA: await status(devices[0]!),
          statusB: await status(devices[1]!),
          logA: devices[0]!.daemon.tail(5),
        }),
    },
  );
  return log;
}

const countBy = (log: readonly StoredAction[], clientId: string): number =>
  log.filter((a) => a.clientId === clientId).length;

async function clientIdOf(d: Device): Promise<string> {
  // The daemon's first capture names its client; the WAL file holds it too, but the log says it plainly.
  const line = await d.daemon.waitForLine(/"clientId"/, 10_000);
  return (JSON.parse(line) as { clientId: string }).clientId;
}

beforeAll(async () => {
  upstream = await startNatsServer();
  dir = await makeTempDir('ferry-attach-e2e-');
  api = await spawnApi(procs, upstream.url, join(dir.path, 'api'));
  probe = await connect({ servers: upstream.url, inboxPrefix: '_INBOX_acme' });
  await device('device-a');
  await device('device-b');
}, 90_000);

afterAll(async () => {
  await probe?.close();
  for (const d of devices) await d.nc.close().catch(() => undefined);
  await procs.killAll();
  for (const s of servers) await s.stop();
  await upstream?.stop();
  await dir?.remove();
});

describe('attach mode: two devices, two apps that know nothing of Ferry', () => {
  it('offline inserts, updates and deletes on both converge to the oracle, and each app sees the other rows', async () => {
    const [a, b] = devices as [Device, Device];
    // A shared start, online.
    await runApp(a.db, 'workload', { seed: SEED, ops: 40, prefix: 'seed' });
    await converged('the seed rows on both');
    expect(rowsOf(b.db).length).toBeGreaterThan(0);

    // Offline: the API is gone; both apps edit, including the shared rows.
    await api.stop();
    const [ra, rb] = await Promise.all([
      runApp<AppStats>(a.db, 'workload', { seed: SEED + 1, ops: 300, prefix: 'a', txEvery: 5 }),
      runApp<AppStats>(b.db, 'workload', { seed: SEED + 2, ops: 300, prefix: 'b', txEvery: 5 }),
    ]);
    expect(ra.busy + rb.busy).toBe(0);
    await eventually('both daemons to capture every offline change', async () => {
      const [sa, sb] = [await status(a), await status(b)];
      return sa.pending === ra.committed && sb.pending === rb.committed;
    });

    api = await spawnApi(procs, upstream.url, join(dir.path, 'api'));
    await converged('both files to converge after reconnecting');
    // The app's own queries see the other device's rows.
    const seenByB = await runApp<{ notes: { id: string }[] }>(b.db, 'dump');
    expect(seenByB.notes.some((n) => n.id.startsWith('a-'))).toBe(true);
    expect([...a.events, ...b.events].some((e) => e.type === 'conflict')).toBe(true);
  }, 120_000);

  it('both apps write at full speed while the daemons write back: no write lost, no SQLITE_BUSY', async () => {
    const [a, b] = devices as [Device, Device];
    const [idA, idB] = [await clientIdOf(a), await clientIdOf(b)];
    const before = await serverLog();
    const [ra, rb] = await Promise.all([
      runApp<AppStats>(a.db, 'workload', { seed: SEED + 3, ops: 10_000, prefix: 'fa', txEvery: 20 }),
      runApp<AppStats>(b.db, 'workload', { seed: SEED + 4, ops: 10_000, prefix: 'fb', txEvery: 20 }),
    ]);
    expect(ra.busy).toBe(0);
    expect(rb.busy).toBe(0);
    const log = await converged('both files to converge after the stress', 90_000);
    // Every committed change reached the server exactly once.
    expect(countBy(log, idA) - countBy(before, idA)).toBe(ra.committed);
    expect(countBy(log, idB) - countBy(before, idB)).toBe(rb.committed);
    expect(new Set(log.map((x) => x.id)).size).toBe(log.length);
    // While writing, each app already saw rows the other device wrote (write-back under load).
    expect(ra.remoteSeen + rb.remoteSeen).toBeGreaterThan(0);
  }, 180_000);

  it(`every committed change reaches the other device exactly once across ${KILLS} kill -9s of the daemon`, async () => {
    const [a, b] = devices as [Device, Device];
    const idA = await clientIdOf(a);
    const before = countBy(await serverLog(), idA);
    let t = SEED >>> 0;
    const random = () => {
      t = (Math.imul(t, 1664525) + 1013904223) >>> 0;
      return t / 4294967296;
    };
    // The app writes until told to stop, so every kill lands while it commits, however slow the restarts.
    const stopFile = join(dir.path, 'stop-writing');
    const writer = runApp<AppStats>(a.db, 'workload', {
      seed: SEED + 5,
      ops: 2000,
      prefix: 'k',
      paceEvery: 5,
      paceMs: 10,
      txEvery: 4,
      stopFile,
    });
    let writing = true;
    void writer.finally(() => (writing = false));
    let kills = 0;
    while (kills < KILLS) {
      // Kill between the app's commits and their upload, while the app keeps committing.
      await new Promise((r) => setTimeout(r, 50 + Math.floor(random() * 250)));
      await a.daemon.kill('SIGKILL');
      kills++;
      if (random() < 0.3) await new Promise((r) => setTimeout(r, 100)); // commits pile up while it is dead
      await startDaemon(a);
    }
    // The kills landed while the app was writing.
    expect(writing).toBe(true);
    writeFileSync(stopFile, '');
    const stats = await writer;
    expect(stats.busy).toBe(0);
    const log = await converged('both files to converge after the kills', 90_000);
    const mine = log.filter((x) => x.clientId === idA);
    expect(mine.length - before).toBe(stats.committed);
    expect(mine.map((x) => x.clientSeq)).toEqual(Array.from({ length: mine.length }, (_, i) => i + 1));
    expect(rowsOf(b.db)).toEqual(oracleNotes(log));
  }, 180_000);

  it('two devices minting the same AUTOINCREMENT id get a conflict event each, and keep their own row', async () => {
    const [a, b] = devices as [Device, Device];
    await api.stop();
    await runApp(a.db, 'insert-items', { names: ['from a 1', 'from a 2'] });
    await runApp(b.db, 'insert-items', { names: ['from b 1'] });
    api = await spawnApi(procs, upstream.url, join(dir.path, 'api'));
    const collision = (d: Device) =>
      d.events.some(
        (e) => e.type === 'conflict' && e.conflict.resolution === 'id-collision' && e.conflict.entityId === '1',
      );
    await eventually('both devices to report the collision of id 1', () => collision(a) && collision(b), {
      timeoutMs: 30_000,
    });
    // Not merged: each app keeps its own row 1; the id only A minted reaches B as usual.
    await eventually('B to receive item 2', () => rowsOf(b.db, 'items').length === 2);
    expect(rowsOf(a.db, 'items')).toEqual([
      { id: 1, name: 'from a 1' },
      { id: 2, name: 'from a 2' },
    ]);
    expect(rowsOf(b.db, 'items')).toEqual([
      { id: 1, name: 'from b 1' },
      { id: 2, name: 'from a 2' },
    ]);
  }, 90_000);

  it('ferry detach leaves sqlite_schema identical to the one before attach, and every row', async () => {
    const [a] = devices as [Device];
    await a.daemon.stop();
    const rows = rowsOf(a.db);
    const detach = procs.spawn({ name: 'ferry detach', args: [FERRY_BIN, 'detach', '--db', a.db] });
    expect((await detach.exited).code, detach.output()).toBe(0);
    expect(schemaOf(a.db)).toEqual(a.schemaBefore);
    expect(rowsOf(a.db)).toEqual(rows);
    // And attach again from the command line, for one table: it reports what it installed.
    const attach = procs.spawn({
      name: 'ferry attach',
      args: [FERRY_BIN, 'attach', '--db', a.db, '--tables', 'notes'],
    });
    expect((await attach.exited).code, attach.output()).toBe(0);
    expect(attach.output()).toMatch(/notes: key \(id TEXT\)/);
    expect(attach.output()).not.toMatch(/items:/);
  }, 60_000);
});
