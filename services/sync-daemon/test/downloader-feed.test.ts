// The downloader's answer to the feed while a push of ours is out, over a real
// nats-server and a real WAL file; the server side is a plain NATS responder
// that records each pull and answers with an empty page. The feed of our own
// commit waits for the push reply, but news must not wait on a push that hangs.
import { connect, type NatsConnection } from '@nats-io/transport-node';
import pino from 'pino';
import { afterEach, beforeEach, expect, it } from 'vitest';
import { uuidv7 } from 'uuidv7';
import { apiSubjects, type StoredAction } from '@ferry/contracts';
import { PolicyBook } from '@ferry/domain';
import { makeTempDir, startNatsServer, type NatsServerHandle, type TempDir } from '@ferry/testing';
import { Downloader } from '../src/download/downloader.js';
import { Reconciler } from '../src/reconcile/reconciler.js';
import { WalStore } from '../src/wal/wal-store.js';

const TENANT = 'acme';
let server: NatsServerHandle;
let dir: TempDir;
let nc: NatsConnection;
let api: NatsConnection;
let wal: WalStore;
let downloader: Downloader | undefined;

beforeEach(async () => {
  server = await startNatsServer();
  dir = await makeTempDir('ferry-feed-');
  nc = await connect({ servers: server.url });
  api = await connect({ servers: server.url });
  wal = WalStore.open(`${dir.path}/daemon.db`, { newId: uuidv7, now: Date.now });
});
afterEach(async () => {
  downloader?.stop();
  await nc.close();
  await api.close();
  wal.close();
  await server.stop();
  await dir.remove();
});

it('a feed heard while our push is out pulls within a short bound, not at the next heartbeat', async () => {
  const rec = new Reconciler({ wal, policies: new PolicyBook(), now: Date.now });
  // A cursor above 0, so the downloader pulls instead of bootstrapping.
  const first = {
    id: uuidv7(),
    clientId: '0190a000-0000-7000-8000-0000000000bb',
    clientSeq: 1,
    collection: 'notes',
    entityId: '1',
    op: 'create',
    fields: {},
    hlc: Date.now() * 4096,
    seq: 1,
  } as StoredAction;
  rec.applyPulled([first], 1);
  const pulls: number[] = [];
  let onPull: () => void = () => undefined;
  api.subscribe(apiSubjects.pull(TENANT), {
    callback: (_err, msg) => {
      pulls.push(Date.now());
      onPull();
      msg.respond(JSON.stringify({ actions: [], next: 1, more: false }));
    },
  });
  await api.flush();
  const pullNumber = (n: number) =>
    new Promise<void>((resolve) => {
      onPull = () => {
        if (pulls.length >= n) resolve();
      };
      onPull();
    });
  downloader = new Downloader({
    nc,
    tenant: TENANT,
    clientId: wal.clientId,
    reconciler: rec,
    logger: pino({ level: 'silent' }),
    emit: () => undefined,
    now: Date.now,
    onApplied: () => undefined,
    onOnline: () => undefined,
    onHead: () => undefined,
    retry: { initialMs: 10, maxMs: 100 },
    // A push of ours that never comes back.
    deferFeed: () => true,
  });
  downloader.start();
  await pullNumber(1); // the heartbeat's first pull, at start
  const fed = Date.now();
  api.publish(apiSubjects.feed(TENANT), JSON.stringify({ headSeq: 2 }));
  await pullNumber(2);
  // The next heartbeat would come 5 s after the first pull.
  expect((pulls[1] as number) - fed).toBeLessThan(2_000);
});
