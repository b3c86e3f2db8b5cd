// A device whose wall clock is one hour behind: after it has seen another
// device's edit, its own later edit still wins (HLC receive), and its pushes
// reach everyone. Real nats-servers, API process, daemon processes.
import { join } from 'node:path';
import { connect, type NatsConnection } from '@nats-io/transport-node';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { busSubjects, type EntityState } from '@ferry/contracts';
import { ProcessGroup, makeTempDir, startNatsServer, type NatsServerHandle, type TempDir } from '@ferry/testing';
import { dec, enc, eventually, spawnApi, spawnDaemon, writeDaemonConfig } from './support/e2e.js';

const subjects = busSubjects('notes');

let upstream: NatsServerHandle;
let dir: TempDir;
const procs = new ProcessGroup();
const buses: NatsServerHandle[] = [];
const apps: NatsConnection[] = [];

async function device(name: string, skewMs: number): Promise<NatsConnection> {
  const bus = await startNatsServer({ jetstream: true });
  buses.push(bus);
  const configPath = writeDaemonConfig(dir.path, name, { bus: bus.url, upstream: upstream.url });
  await spawnDaemon(procs, name, configPath, { FERRY_CLOCK_SKEW_MS: String(skewMs) });
  const app = await connect({ servers: bus.url });
  apps.push(app);
  return app;
}

async function title(app: NatsConnection): Promise<unknown> {
  const reply = await app.request(subjects.query, enc({ collection: 'notes', id: '7' }), { timeout: 5000 });
  return dec<{ entities: EntityState[] }>(reply.data).entities[0]?.fields.title;
}

beforeAll(async () => {
  upstream = await startNatsServer();
  dir = await makeTempDir('ferry-skew-');
  await spawnApi(procs, upstream.url, join(dir.path, 'api'));
}, 60_000);

afterAll(async () => {
  for (const app of apps) await app.close().catch(() => undefined);
  await procs.killAll();
  for (const bus of buses) await bus.stop();
  await upstream?.stop();
  await dir?.remove();
});

describe('a device one hour behind', () => {
  it('has its later edit win where causality says so, and its pushes reach everyone', async () => {
    const onTime = await device('on-time', 0);
    const behind = await device('behind', -3_600_000);
    onTime.publish(subjects.changes, enc({ collection: 'notes', id: '7', op: 'create', fields: { title: 'first' } }));
    await eventually('the slow device to see the note', async () => (await title(behind)) === 'first');
    // Made after seeing "first", so it must win, although its wall clock says an hour earlier.
    behind.publish(subjects.changes, enc({ collection: 'notes', id: '7', op: 'update', fields: { title: 'second' } }));
    await eventually(
      'both devices to hold the slow device\u2019s edit',
      async () => (await title(onTime)) === 'second' && (await title(behind)) === 'second',
    );
    expect([await title(onTime), await title(behind)]).toEqual(['second', 'second']);
  }, 60_000);
});
