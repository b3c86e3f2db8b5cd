// Durable capture from a real nats-server with JetStream into a real WAL file:
// ack after commit, stream acks while the daemon is down, dedupe, dead letters.
import { connect, type NatsConnection } from '@nats-io/transport-node';
import { jetstream } from '@nats-io/jetstream';
import pino from 'pino';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { uuidv7 } from 'uuidv7';
import { busSubjects, type SyncEvent } from '@ferry/contracts';
import { makeTempDir, startNatsServer, type NatsServerHandle, type TempDir } from '@ferry/testing';
import { BusCapture } from '../src/capture/bus-capture.js';
import { WalStore } from '../src/wal/wal-store.js';

const subjects = busSubjects('notes');
const enc = (v: unknown) => new TextEncoder().encode(typeof v === 'string' ? v : JSON.stringify(v));

let server: NatsServerHandle;
let dir: TempDir;
let nc: NatsConnection;
let wal: WalStore;
let events: SyncEvent[];
let waiters: { pred: (e: SyncEvent[]) => boolean; resolve: () => void }[];

function capture(): BusCapture {
  return new BusCapture({
    nc,
    app: 'notes',
    changesSubject: subjects.changes,
    wal,
    logger: pino({ level: 'silent' }),
    emit: (e) => {
      events.push(e);
      waiters = waiters.filter((w) => (w.pred(events) ? (w.resolve(), false) : true));
    },
    now: Date.now,
  });
}

/** Resolves once the emitted events satisfy `pred`; fails the test after 10 s. */
function until(pred: (e: SyncEvent[]) => boolean): Promise<void> {
  if (pred(events)) return Promise.resolve();
  return new Promise((resolve, reject) => {
    const timer = setTimeout(
      () => reject(new Error(`timed out; events: ${JSON.stringify(events.map((e) => e.type))}`)),
      10_000,
    );
    waiters.push({ pred, resolve: () => (clearTimeout(timer), resolve()) });
  });
}
const count = (type: SyncEvent['type']) => (e: SyncEvent[]) => e.filter((x) => x.type === type).length;

beforeEach(async () => {
  // A bus that lets a 5 MB message through, so the daemon (not the server) has to refuse it.
  server = await startNatsServer({ jetstream: true, config: 'max_payload: 8388608' });
  dir = await makeTempDir('ferry-capture-');
  nc = await connect({ servers: server.url });
  wal = WalStore.open(`${dir.path}/wal.db`, { newId: uuidv7, now: Date.now });
  events = [];
  waiters = [];
});
afterEach(async () => {
  await nc.close();
  wal.close();
  await server.stop();
  await dir.remove();
});

describe('bus capture', () => {
  it('captures changes into the WAL in order and acks them', async () => {
    const c = capture();
    await c.start();
    for (let i = 0; i < 50; i++)
      nc.publish(subjects.changes, enc({ collection: 'notes', id: String(i), op: 'create', fields: { n: i } }));
    await until((e) => count('capture')(e) === 50);
    expect(wal.readPending(0, 100).map((a) => a.entityId)).toEqual(Array.from({ length: 50 }, (_, i) => String(i)));
    await c.stop();
    const info = await (
      await import('@nats-io/jetstream')
    )
      .jetstreamManager(nc)
      .then((m) => m.streams.info(c.streamName));
    expect(info.state.messages).toBe(0); // acked, so gone from the work queue
  });

  it('an app publishing with request/reply gets the stream ack while the daemon is down; nothing is lost', async () => {
    const c = capture();
    await c.start(); // creates the stream and consumer
    await c.stop();
    const js = jetstream(nc);
    for (let i = 0; i < 5; i++) {
      const ack = await js.publish(
        subjects.changes,
        enc({ collection: 'notes', id: `offline-${i}`, op: 'create', eventId: `e${i}` }),
      );
      expect(ack.stream).toBe(c.streamName);
    }
    const again = capture();
    await again.start();
    await until((e) => count('capture')(e) === 5);
    expect(wal.pendingCount()).toBe(5);
    await again.stop();
  });

  it('an app retry with the same eventId is captured once', async () => {
    const c = capture();
    await c.start();
    const msg = enc({ collection: 'notes', id: '1', op: 'update', fields: { t: 'x' }, eventId: 'retry-1' });
    nc.publish(subjects.changes, msg);
    nc.publish(subjects.changes, msg);
    nc.publish(subjects.changes, enc({ collection: 'notes', id: '2', op: 'create', eventId: 'after' }));
    await until((e) => e.some((x) => x.type === 'capture' && x.entityId === '2'));
    expect(wal.pendingCount()).toBe(2);
    await c.stop();
  });

  it('dead-letters garbage with a reason and an event; the changes around it are captured', async () => {
    const c = capture();
    await c.start();
    const fields: Record<string, number> = {};
    for (let i = 0; i < 10_000; i++) fields[`f${i}`] = i;
    nc.publish(subjects.changes, enc({ collection: 'notes', id: 'ok-1', op: 'create' }));
    nc.publish(subjects.changes, enc('not json at all'));
    nc.publish(subjects.changes, enc({ collection: 'notes', id: 7, op: 'create' }));
    nc.publish(subjects.changes, enc({ collection: 'no.dots', id: '1', op: 'create' }));
    nc.publish(subjects.changes, enc({ collection: 'notes', id: 'big', op: 'create', fields }));
    nc.publish(
      subjects.changes,
      enc({ collection: 'notes', id: 'huge', op: 'create', fields: { blob: 'x'.repeat(5 * 1024 * 1024) } }),
    );
    nc.publish(subjects.changes, enc({ collection: 'notes', id: 'ok-2', op: 'create' }));
    await until((e) => count('dead-lettered')(e) === 5 && count('capture')(e) === 2);
    const reasons = events
      .filter((e) => e.type === 'dead-lettered')
      .map((e) => (e.type === 'dead-lettered' ? `${e.code} ${e.reason}` : ''));
    expect(reasons).toEqual([
      expect.stringMatching(/^invalid changes: \(root\): not valid JSON/),
      expect.stringMatching(/^invalid changes: id: /),
      expect.stringMatching(/^invalid changes: collection: must match/),
      expect.stringMatching(/^too_large changes: (fields: 10000 fields|\(root\): \d+ bytes)/),
      expect.stringMatching(/^too_large changes: \(root\): 52429\d\d bytes, the limit is 524288$/),
    ]);
    expect(wal.deadLetterCount()).toBe(5);
    expect(wal.readPending(0, 10).map((a) => a.entityId)).toEqual(['ok-1', 'ok-2']);
    await c.stop();
  });
});
