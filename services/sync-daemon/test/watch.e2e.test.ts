// `ferry watch` and `ferry status` against real daemons: two devices edit
// offline (the note-45 story), then sync; `ferry watch --json` on each device
// must deliver push, pull, applied and conflict events in order, each with the
// documented fields (syncEventSchema, strict; README "Sync events").
import { join } from 'node:path';
import { isDeepStrictEqual } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { syncEventSchema, type SyncEvent } from '@ferry/contracts';
import {
  FERRY_BIN,
  ProcessGroup,
  REPO_ROOT,
  makeTempDir,
  startNatsServer,
  type NatsServerHandle,
  type ServiceProcess,
  type TempDir,
} from '@ferry/testing';
import { change, query, startDevice, statusOf, stopDevice, type Device } from './support/devices.js';
import { eventually, spawnApi } from './support/e2e.js';

let upstream: NatsServerHandle;
let dir: TempDir;
const procs = new ProcessGroup();
let api: ServiceProcess;
let a: Device | undefined;
let b: Device | undefined;
const watchers: Record<string, ServiceProcess> = {};

async function watch(name: string, args: readonly string[]): Promise<ServiceProcess> {
  const proc = procs.spawn({ name, args: [FERRY_BIN, 'watch', ...args] });
  // Printed (on stderr) once the subscription is in place: nothing published after it is missed.
  await proc.waitForLine(/^watching ferry\.notes\.events/, 20_000);
  return proc;
}

/** The --json stream of a watcher: every stdout line is one event, parsed strictly. */
function eventsOf(proc: ServiceProcess): SyncEvent[] {
  return proc
    .output()
    .split('\n')
    .filter((line) => line.startsWith('{'))
    .map((line) => syncEventSchema.parse(JSON.parse(line)));
}

beforeAll(async () => {
  upstream = await startNatsServer();
  dir = await makeTempDir('ferry-watch-');
  api = await spawnApi(procs, upstream.url, join(dir.path, 'api'));
  [a, b] = await Promise.all([
    startDevice(procs, dir, upstream, 'device-a'),
    startDevice(procs, dir, upstream, 'device-b'),
  ]);
  watchers.a = await watch('watch-a', ['--json', '--config', a.configPath]);
  watchers.b = await watch('watch-b', ['--json', '--config', b.configPath]);
  watchers.human = await watch('watch-human', ['--config', a.configPath]);
}, 90_000);

afterAll(async () => {
  for (const w of Object.values(watchers)) await w.stop();
  await stopDevice(a);
  await stopDevice(b);
  await procs.killAll();
  await upstream?.stop();
  await dir?.remove();
});

describe('ferry watch / ferry status', () => {
  it('watch --json delivers push, pull, applied and conflict events in order, with the documented fields', async () => {
    if (a === undefined || b === undefined) throw new Error('devices not started');
    const [da, db] = [a, b];
    await change(da, { collection: 'notes', id: '45', op: 'create', fields: { title: '', body: '' } });
    await change(da, { collection: 'notes', id: '47', op: 'create', fields: { title: 'Old list' } });
    await eventually('B to have notes 45 and 47', async () => (await query(db, '47')) !== undefined);

    // Offline from the server's point of view: the API stops; both devices edit.
    await api.stop();
    await change(da, { collection: 'notes', id: '45', op: 'update', fields: { title: 'Shopping' } });
    await change(da, { collection: 'notes', id: '47', op: 'delete' });
    await eventually('A to capture', async () => (await statusOf(da)).pending === 2);
    await change(db, { collection: 'notes', id: '45', op: 'update', fields: { title: 'Groceries' } });
    await change(db, { collection: 'notes', id: '45', op: 'update', fields: { body: 'milk, eggs' } });
    await change(db, { collection: 'notes', id: '47', op: 'update', fields: { title: 'Old list, revised' } });
    await eventually('B to capture', async () => (await statusOf(db)).pending === 3);
    const marks = { a: eventsOf(watchers.a!).length, b: eventsOf(watchers.b!).length };

    api = await spawnApi(procs, upstream.url, join(dir.path, 'api'));
    await eventually('both devices to converge', async () => {
      const [a45, b45, a47, b47] = await Promise.all([
        query(da, '45'),
        query(db, '45'),
        query(da, '47'),
        query(db, '47'),
      ]);
      return isDeepStrictEqual(a45, b45) && isDeepStrictEqual(a47, b47) && a45?.version === 4 && a47?.deleted === true;
    });
    const conflicts = (w: ServiceProcess, from: number) =>
      eventsOf(w)
        .slice(from)
        .filter((e) => e.type === 'conflict');
    // Whatever order the pushes land in, each device loses (or beats) a concurrent write of the other.
    await eventually(
      'conflict events to reach both watchers',
      () => conflicts(watchers.a!, marks.a).length > 0 && conflicts(watchers.b!, marks.b).length > 0,
    );

    const streams = { a: eventsOf(watchers.a!).slice(marks.a), b: eventsOf(watchers.b!).slice(marks.b) };
    const chains: string[] = [];
    for (const [name, events] of Object.entries(streams)) {
      // One daemon's events arrive in the order it emitted them.
      for (let i = 1; i < events.length; i++) expect(events[i]!.at).toBeGreaterThanOrEqual(events[i - 1]!.at);
      const idx = (from: number, pick: (e: SyncEvent) => boolean) => {
        const i = events.findIndex((e, j) => j > from && pick(e));
        return i < 0 ? Infinity : i;
      };
      const pushStarted = idx(-1, (e) => e.type === 'push-started');
      const pushAcked = idx(pushStarted, (e) => e.type === 'push-acked' && e.accepted > 0);
      expect(pushAcked, `${name}: push-started then push-acked`).toBeLessThan(Infinity);
      const acked = events[pushAcked];
      if (acked?.type === 'push-acked') {
        expect(acked.latencyMs).toBeGreaterThanOrEqual(0);
        expect(acked.headSeq).toBeGreaterThanOrEqual(acked.accepted);
      }
      // Every conflict comes out of an applied page, which comes out of a pull that brought actions.
      for (const [i, e] of events.entries()) {
        if (e.type !== 'conflict') continue;
        const applied = events.slice(0, i).findLastIndex((x) => x.type === 'applied');
        const pulled = events.slice(0, applied).findLastIndex((x) => x.type === 'pull-received' && x.count > 0);
        expect(applied, `${name}: an applied event before conflict #${i}`).toBeGreaterThanOrEqual(0);
        expect(pulled, `${name}: a pull-received before that applied`).toBeGreaterThanOrEqual(0);
        const pull = events[pulled];
        const app = events[applied];
        if (pull?.type === 'pull-received' && app?.type === 'applied') {
          expect(app.cursor).toBe(pull.next);
          expect(app.count).toBe(pull.count);
        }
        expect(['lww', 'delete-wins']).toContain(e.conflict.resolution);
        expect(['45', '47']).toContain(e.conflict.entityId);
        expect(e.conflict.loser.clientId).toMatch(/^[0-9a-f-]{36}$/);
      }
      // The full chain push → pull → applied → conflict.
      const pull = idx(pushAcked, (e) => e.type === 'pull-received' && e.count > 0);
      const applied = idx(pull, (e) => e.type === 'applied' && e.count > 0);
      const conflict = idx(applied, (e) => e.type === 'conflict');
      if (conflict < Infinity) chains.push(name);
    }
    // The device whose push landed first sees the other's actions (and their conflicts) only after its push.
    expect(chains.length, JSON.stringify(streams)).toBeGreaterThanOrEqual(1);

    // The human form says the same in words, one line per event.
    await eventually('the human watcher to show a conflict', () =>
      watchers
        .human!.output()
        .split('\n')
        .some((l) => / conflict +notes\/4[57]/.test(l)),
    );
    const human = watchers.human!.output();
    expect(human).toMatch(/push-acked +\d+ accepted/);
    expect(human).toMatch(/applied +\d+ actions?, /);
    expect(human).toMatch(/── (online|OFFLINE) · pending \d+ · cursor \d+ · lag \d+/);
  }, 120_000);

  it('status shows online, pending, cursor, lag, last sync and the recent conflicts', async () => {
    if (a === undefined) throw new Error('devices not started');
    const run = (args: string[]) => {
      const p = procs.spawn({ name: 'status', args: [FERRY_BIN, 'status', ...args] });
      return p.exited.then((exit) => ({ exit, out: p.output() }));
    };
    const json = await run(['--config', a.configPath, '--json']);
    expect(json.exit.code).toBe(0);
    const s = JSON.parse(json.out) as Record<string, unknown> & { recentConflicts: unknown[] };
    expect(s).toMatchObject({ app: 'notes', online: true, pending: 0, lag: 0 });
    expect(typeof s.cursor).toBe('number');
    expect(typeof s.lastSyncAt).toBe('number');
    expect(s.recentConflicts.length).toBeGreaterThan(0);

    const human = await run(['--config', a.configPath]);
    expect(human.exit.code).toBe(0);
    for (const label of ['online', 'pending', 'cursor', 'lag', 'last sync', 'recent conflicts']) {
      expect(human.out).toContain(label);
    }
    expect(human.out).toMatch(/notes\/4[57].*beat/);
  }, 60_000);

  it('the bus example app (plain NATS client) writes on one device and reads on the other', async () => {
    if (a === undefined || b === undefined) throw new Error('devices not started');
    const notes = join(REPO_ROOT, 'examples', 'notes-bus', 'notes.mjs');
    const run = async (d: Device, ...args: string[]) => {
      const p = procs.spawn({ name: 'notes-example', args: [notes, '--config', d.configPath, ...args] });
      const exit = await p.exited;
      expect(exit.code, p.output()).toBe(0);
      return p.output().trim();
    };
    const [da, db] = [a, b];
    const id = await run(da, 'add', 'From the example', 'plain NATS');
    expect(id).toMatch(/^[0-9a-f]{8}$/);
    await eventually('B to list the note', async () => (await run(db, 'list')).includes('"From the example"'));
  }, 60_000);
});
