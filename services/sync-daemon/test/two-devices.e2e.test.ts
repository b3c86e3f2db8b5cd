// End to end with real processes: a nats-server per device bus plus one
// upstream, the API process, and two daemon processes; the apps are plain NATS
// clients that publish ChangeEvents and read state. The note-45 story:
// both devices edit offline (API down), then converge on the same state.
import { join } from 'node:path';
import { isDeepStrictEqual } from 'node:util';
import { jetstream } from '@nats-io/jetstream';
import { connect, type NatsConnection } from '@nats-io/transport-node';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { busSubjects, type EntityState, type SyncEvent } from '@ferry/contracts';
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
  daemon: ServiceProcess;
  states: EntityState[];
  events: SyncEvent[];
}

let upstream: NatsServerHandle;
let dir: TempDir;
const procs = new ProcessGroup();
let api: ServiceProcess;
let devices: Device[] = [];

async function startDevice(name: string): Promise<Device> {
  const bus = await startNatsServer({ jetstream: true });
  const configPath = writeDaemonConfig(
    dir.path,
    name,
    { bus: bus.url, upstream: upstream.url },
    { collections: { notes: { policy: 'lww' } }, retry: { initialMs: 20, maxMs: 200 } },
  );
  const daemon = await spawnDaemon(procs, name, configPath);
  const app = await connect({ servers: bus.url });
  const device: Device = { name, configPath, bus, app, daemon, states: [], events: [] };
  app.subscribe(subjects.state, {
    callback: (_e, m) => {
      device.states.push(...dec<{ entities: EntityState[] }>(m.data).entities);
    },
  });
  app.subscribe(subjects.events, {
    callback: (_e, m) => {
      device.events.push(dec<SyncEvent>(m.data));
    },
  });
  await app.flush();
  return device;
}

async function query(d: Device, id: string): Promise<EntityState | undefined> {
  const reply = await d.app.request(subjects.query, enc({ collection: 'notes', id }), { timeout: 5000 });
  return dec<{ entities: EntityState[] }>(reply.data).entities[0];
}

beforeAll(async () => {
  upstream = await startNatsServer();
  dir = await makeTempDir('ferry-e2e-');
  api = await spawnApi(procs, upstream.url, join(dir.path, 'api'));
  devices = [await startDevice('device-a'), await startDevice('device-b')];
}, 90_000);

afterAll(async () => {
  for (const d of devices) await d.app.close().catch(() => undefined);
  await procs.killAll();
  for (const d of devices) await d.bus.stop();
  await upstream?.stop();
  await dir?.remove();
});

describe('two devices through the API', () => {
  it('converge after offline edits on both (note 45), with conflicts reported', async () => {
    const [a, b] = devices as [Device, Device];
    // Shared starting point: note 45 and note 46 exist on both.
    a.app.publish(
      subjects.changes,
      enc({ collection: 'notes', id: '45', op: 'create', fields: { title: '', body: '' } }),
    );
    a.app.publish(subjects.changes, enc({ collection: 'notes', id: '46', op: 'create', fields: { title: 'old' } }));
    await eventually(
      'B to see notes 45 and 46',
      async () => (await query(b, '46')) !== undefined && (await query(b, '45')) !== undefined,
    );

    // The API goes away: both devices are offline from the server's point of view.
    await api.stop();
    a.app.publish(
      subjects.changes,
      enc({ collection: 'notes', id: '45', op: 'update', fields: { title: 'Shopping' } }),
    );
    a.app.publish(subjects.changes, enc({ collection: 'notes', id: '46', op: 'delete' }));
    const pendingOf = async (d: Device) =>
      dec<{ pending: number }>((await d.app.request(subjects.status, enc({}))).data).pending;
    // A's edits are captured (and stamped) before B makes its own: B's title is the later write.
    await eventually('A to capture its edits', async () => (await pendingOf(a)) === 2);
    b.app.publish(
      subjects.changes,
      enc({ collection: 'notes', id: '45', op: 'update', fields: { title: 'Groceries' } }),
    );
    b.app.publish(
      subjects.changes,
      enc({ collection: 'notes', id: '45', op: 'update', fields: { body: 'milk, eggs' } }),
    );
    b.app.publish(subjects.changes, enc({ collection: 'notes', id: '46', op: 'update', fields: { title: 'new' } }));
    await eventually(
      'both to report pending changes',
      async () => (await pendingOf(a)) === 2 && (await pendingOf(b)) === 3,
    );
    // Each app already sees its own edits.
    expect((await query(a, '45'))?.fields.title).toBe('Shopping');
    expect((await query(b, '45'))?.fields.title).toBe('Groceries');

    api = await spawnApi(procs, upstream.url, join(dir.path, 'api'));
    const describeState = async () =>
      JSON.stringify({
        a: [await query(a, '45'), await query(a, '46')],
        b: [await query(b, '45'), await query(b, '46')],
        statusA: dec((await a.app.request(subjects.status, enc({}))).data),
        statusB: dec((await b.app.request(subjects.status, enc({}))).data),
        aLog: a.daemon.tail(8),
        bLog: b.daemon.tail(8),
      });
    await eventually(
      'both devices to converge',
      async () => {
        const [a45, b45, a46, b46] = await Promise.all([
          query(a, '45'),
          query(b, '45'),
          query(a, '46'),
          query(b, '46'),
        ]);
        return (
          isDeepStrictEqual(a45, b45) && isDeepStrictEqual(a46, b46) && a45?.version === 4 && a46?.deleted === true
        );
      },
      { describe: describeState },
    );
    const note45 = await query(a, '45');
    // B's title edit was made after A's (later hlc), and B's body edit is kept (field-level merge).
    expect(note45?.fields).toEqual({ title: 'Groceries', body: 'milk, eggs' });
    expect(await query(b, '46')).toMatchObject({ deleted: true, fields: {} });

    // The conflict over the title is reported with both values.
    const conflicts = [...a.events, ...b.events].filter((e) => e.type === 'conflict');
    const title = conflicts.find((e) => e.type === 'conflict' && e.conflict.field === 'title');
    expect(title).toBeDefined();
    if (title?.type === 'conflict') {
      expect(new Set([title.conflict.winner?.value, title.conflict.loser.value])).toEqual(
        new Set(['Groceries', 'Shopping']),
      );
      expect(title.conflict.resolution).toBe('lww');
    }
    // And the delete beat B's update of note 46.
    expect(conflicts.some((e) => e.type === 'conflict' && e.conflict.resolution === 'delete-wins')).toBe(true);
    // Each app received state for note 45 after reconnecting, never for an unrelated entity.
    expect(new Set([...a.states, ...b.states].map((s) => s.id))).toEqual(new Set(['45', '46']));
  }, 90_000);

  it('queue while the upstream NATS server is down, report offline and pending, then flow without a manual step', async () => {
    const [a, b] = devices as [Device, Device];
    const statusOf = async (d: Device) =>
      dec<{ online: boolean; pending: number }>((await d.app.request(subjects.status, enc({}))).data);
    await upstream.kill();
    for (let i = 0; i < 10; i++) {
      a.app.publish(subjects.changes, enc({ collection: 'notes', id: `q${i}`, op: 'create', fields: { n: i } }));
    }
    await eventually('A to report offline with 10 pending', async () => {
      const s = await statusOf(a);
      return !s.online && s.pending === 10;
    });
    expect(a.events.some((e) => e.type === 'offline')).toBe(true);
    await upstream.restart();
    await eventually(
      'B to receive all 10 and A to drain',
      async () => {
        const s = await statusOf(a);
        const onB = await Promise.all(Array.from({ length: 10 }, (_, i) => query(b, `q${i}`)));
        return s.online && s.pending === 0 && onB.every((e, i) => e?.fields.n === i);
      },
      { timeoutMs: 30_000 },
    );
    expect(a.events.some((e) => e.type === 'online')).toBe(true);
  }, 90_000);

  it('changes published while the daemon is stopped all reach the other device after it starts', async () => {
    const [a, b] = devices as [Device, Device];
    const exit = await a.daemon.stop();
    expect(exit.code).toBe(0); // SIGTERM drains and exits cleanly
    const js = jetstream(a.app);
    for (let i = 0; i < 20; i++) {
      // A JetStream publish: the stream acknowledges durable capture with no daemon running.
      const ack = await js.publish(
        subjects.changes,
        enc({ collection: 'notes', id: `off${i}`, op: 'create', fields: { i } }),
      );
      expect(ack.seq).toBeGreaterThan(0);
    }
    a.daemon = await spawnDaemon(procs, a.name, a.configPath);
    await eventually('B to receive all 20', async () => {
      const onB = await Promise.all(Array.from({ length: 20 }, (_, i) => query(b, `off${i}`)));
      return onB.every((e, i) => e?.fields.i === i);
    });
  }, 90_000);
});
