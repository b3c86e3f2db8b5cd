// The embeddable engine stopped in the middle of a capture burst, over a real
// nats-server with JetStream and a real WAL file: the state echo of the last
// captured batch (published a turn after its capture) is sent before the WAL
// closes, and nothing runs against the closed file afterwards.
import { connect, type NatsConnection } from '@nats-io/transport-node';
import pino from 'pino';
import { afterEach, beforeEach, expect, it } from 'vitest';
import { uuidv7 } from 'uuidv7';
import { busSubjects, daemonConfigSchema } from '@ferry/contracts';
import { PolicyBook } from '@ferry/domain';
import { makeTempDir, startNatsServer, type NatsServerHandle, type TempDir } from '@ferry/testing';
import { SyncEngine } from '../src/engine/sync-engine.js';

const subjects = busSubjects('notes');
let server: NatsServerHandle;
let dir: TempDir;
let app: NatsConnection;
let bus: NatsConnection;

beforeEach(async () => {
  server = await startNatsServer({ jetstream: true });
  dir = await makeTempDir('ferry-engine-stop-');
  app = await connect({ servers: server.url });
  bus = await connect({ servers: server.url });
});
afterEach(async () => {
  await app.close();
  await bus.close();
  await server.stop();
  await dir.remove();
});

it('stop() during a capture burst publishes every captured change as state, then touches nothing', async () => {
  const config = daemonConfigSchema.parse({
    app: 'notes',
    tenant: 'acme',
    bus: { url: server.url },
    upstream: { url: server.url },
    dataDir: dir.path,
  });
  const engine = new SyncEngine({
    config,
    policies: new PolicyBook(),
    bus,
    logger: pino({ level: 'silent' }),
    newId: uuidv7,
  });
  const echoed = new Set<string>();
  engine.onState((entities) => {
    for (const e of entities) echoed.add(e.id);
  });
  const errors: unknown[] = [];
  engine.onEvent((e) => {
    if (e.type === 'error') errors.push(e);
  });
  let captured = 0;
  let firstCapture: () => void = () => undefined;
  const started = new Promise<void>((resolve) => (firstCapture = resolve));
  engine.onEvent((e) => {
    if (e.type === 'capture' && ++captured === 1) firstCapture();
  });
  await engine.start();
  const enc = new TextEncoder();
  for (let i = 0; i < 3_000; i++) {
    app.publish(subjects.changes, enc.encode(JSON.stringify({ collection: 'notes', id: `n${i}`, op: 'create' })));
  }
  await app.flush();
  await started;
  await engine.stop();
  // Any echo still scheduled would run within these turns, against the closed WAL.
  await new Promise((resolve) => setImmediate(resolve));
  await new Promise((resolve) => setTimeout(resolve, 20));
  expect(captured).toBeGreaterThan(0);
  expect(echoed.size).toBe(captured);
  expect(errors).toEqual([]);
});
