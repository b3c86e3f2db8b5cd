// Offline-first: a daemon started while its server is unreachable captures
// changes and reports offline, then syncs them once the server and API are up.
import { join } from 'node:path';
import { connect, type NatsConnection } from '@nats-io/transport-node';
import { afterAll, describe, expect, it } from 'vitest';
import { apiSubjects, busSubjects } from '@ferry/contracts';
import { ProcessGroup, makeTempDir, startNatsServer, type NatsServerHandle, type TempDir } from '@ferry/testing';
import { dec, enc, eventually, spawnApi, spawnDaemon, writeDaemonConfig } from './support/e2e.js';

const subjects = busSubjects('notes');
const procs = new ProcessGroup();
const servers: NatsServerHandle[] = [];
const conns: NatsConnection[] = [];
let dir: TempDir | undefined;

afterAll(async () => {
  for (const c of conns) await c.close().catch(() => undefined);
  await procs.killAll();
  for (const s of servers) await s.stop();
  await dir?.remove();
});

describe('offline start', () => {
  it('starts without its server, queues, reports offline, and syncs once the server is up', async () => {
    dir = await makeTempDir('ferry-offline-');
    const upstream = await startNatsServer();
    servers.push(upstream);
    await upstream.kill(); // its port is known, nothing listens on it
    const bus = await startNatsServer({ jetstream: true });
    servers.push(bus);
    const configPath = writeDaemonConfig(dir.path, 'device', { bus: bus.url, upstream: upstream.url });
    await spawnDaemon(procs, 'daemon', configPath);
    const app = await connect({ servers: bus.url });
    conns.push(app);
    for (let i = 0; i < 5; i++)
      app.publish(subjects.changes, enc({ collection: 'notes', id: `o${i}`, op: 'create', fields: { i } }));
    const status = async () =>
      dec<{ online: boolean; pending: number }>((await app.request(subjects.status, enc({}))).data);
    await eventually('5 pending while offline', async () => (await status()).pending === 5);
    expect((await status()).online).toBe(false);

    await upstream.restart();
    await spawnApi(procs, upstream.url, join(dir.path, 'api'));
    await eventually('the queue to drain', async () => {
      const s = await status();
      return s.online && s.pending === 0;
    });
    const probe = await connect({ servers: upstream.url, inboxPrefix: '_INBOX_acme' });
    conns.push(probe);
    const pulled = dec<{ actions: { entityId: string }[] }>(
      (await probe.request(apiSubjects.pull('acme'), enc({ since: 0, limit: 100 }))).data,
    );
    expect(pulled.actions.map((a) => a.entityId).sort()).toEqual(['o0', 'o1', 'o2', 'o3', 'o4']);
  }, 90_000);

  it('stops cleanly on SIGTERM while its server has never been reachable', async () => {
    dir ??= await makeTempDir('ferry-offline-');
    const never = await startNatsServer();
    servers.push(never);
    await never.kill();
    const bus = await startNatsServer({ jetstream: true });
    servers.push(bus);
    const configPath = writeDaemonConfig(dir.path, 'never', { bus: bus.url, upstream: never.url });
    const daemon = await spawnDaemon(procs, 'never', configPath);
    // A first connection still being dialled must not keep the process alive.
    const exit = await daemon.stop(5000);
    expect(exit).toEqual({ code: 0, signal: null });
  }, 60_000);
});
