// kill -9 of the API process during pushes, 20 times over: after each restart
// every acknowledged action is stored with the seq it was acknowledged with,
// none twice, seqs stay gap-free, every batch is stored whole or not at all,
// and the entity records (written behind, recovered from the log tail on
// start) equal the replay oracle over the stored log.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  entityRecordSchema,
  errorReplySchema,
  pullReplySchema,
  pushReplySchema,
  snapshotReplySchema,
  type Action,
  type EntityRecord,
  type EntityState,
  type StoredAction,
} from '@ferry/contracts';
import { entityKey, reconcile, recordFromJson, viewRecord } from '@ferry/domain';
import type { NatsConnection } from '@nats-io/transport-node';
import {
  makeTempDir,
  ProcessGroup,
  startNatsServer,
  type NatsServerHandle,
  type ServiceProcess,
  type TempDir,
} from '@ferry/testing';
import { ask, client, subjects } from './support/api-fixture.js';
import { simClient, type SimClient } from './support/actions.js';

const ITERATIONS = 20;
const PUSHERS = 3;
const TENANT = 'crashy';
const READY = /"msg":"api ready"/;

let nats: NatsServerHandle;
let dataDir: TempDir;
const procs = new ProcessGroup();

beforeAll(async () => {
  nats = await startNatsServer();
  dataDir = await makeTempDir('ferry-crash-');
});

afterAll(async () => {
  await procs.killAll();
  await nats?.stop();
  await dataDir?.remove();
});

async function startApi(): Promise<ServiceProcess> {
  const proc = procs.spawnFerry('api', ['--nats-url', nats.url, '--data-dir', dataDir.path]);
  await proc.waitForLine(READY, 20_000);
  return proc;
}

/** A client that pushes batch after batch and retries an unacknowledged batch unchanged, as a daemon does. */
class Pusher {
  readonly client: SimClient = simClient();
  readonly batches: Action[][] = [];
  /** Action id → the seq it was acknowledged with. */
  readonly acked = new Map<string, number>();
  pending: Action[] | null = null;
  #n = 0;

  constructor(
    private readonly nc: NatsConnection,
    private readonly onAck: () => void,
  ) {}

  /** Pushes until a request fails (the API died); returns then. */
  async run(): Promise<void> {
    for (;;) {
      const batch = (this.pending ??= this.#makeBatch());
      let raw: Record<string, unknown>;
      try {
        raw = await ask(this.nc, subjects(TENANT).push, { clientId: this.client.clientId, actions: batch }, 1000);
      } catch {
        return; // timeout or no responders: the API is down; retry this batch after the restart
      }
      const error = errorReplySchema.safeParse(raw);
      if (error.success) throw new Error(`unexpected error reply: ${JSON.stringify(error.data)}`);
      const reply = pushReplySchema.parse(raw);
      for (const r of reply.results) {
        expect(r.status === 'accepted' || r.status === 'duplicate').toBe(true);
        const seq = r.seq as number;
        const before = this.acked.get(r.id);
        if (before !== undefined) expect(seq).toBe(before); // a retry never gets a new seq
        this.acked.set(r.id, seq);
      }
      this.pending = null;
      this.onAck();
    }
  }

  #makeBatch(): Action[] {
    const size = 10 + ((this.#n * 37) % 90);
    const b = this.#n++;
    const batch = Array.from({ length: size }, (_, i) =>
      i % 3 === 2
        ? this.client.update(`e${b}-${i - 1}`, { i, touched: true })
        : this.client.create(`e${b}-${i}`, { b, i }),
    );
    this.batches.push(batch);
    return batch;
  }
}

async function pullEverything(nc: NatsConnection): Promise<StoredAction[]> {
  const out: StoredAction[] = [];
  let since = 0;
  for (;;) {
    const page = pullReplySchema.parse(await ask(nc, subjects(TENANT).pull, { since, limit: 5000 }));
    out.push(...page.actions);
    since = page.next;
    if (!page.more) return out;
  }
}

async function snapshotEverything(nc: NatsConnection): Promise<EntityRecord[]> {
  const out: EntityRecord[] = [];
  let reply = snapshotReplySchema.parse(await ask(nc, subjects(TENANT).snapshot, { limit: 5000 }));
  out.push(...reply.entities);
  while (reply.more) {
    reply = snapshotReplySchema.parse(await ask(nc, subjects(TENANT).snapshot, { limit: 5000, after: reply.after }));
    out.push(...reply.entities);
  }
  return out.map((r) => entityRecordSchema.parse(r));
}

/** Records (as a new device would get them) equal the replay of the log, each with its entity's highest seq. */
function checkRecords(records: EntityRecord[], stored: StoredAction[]): void {
  const viewed = new Map<string, EntityState>();
  for (const r of records) {
    const v = viewRecord(recordFromJson(r));
    if (v !== null) viewed.set(entityKey(v.collection, v.id), v);
  }
  expect(Object.fromEntries(viewed)).toEqual(Object.fromEntries(reconcile([], stored)));
  const maxSeq = new Map<string, number>();
  for (const a of stored) maxSeq.set(entityKey(a.collection, a.entityId), a.seq);
  expect(new Map(records.map((r) => [entityKey(r.collection, r.id), r.seq]))).toEqual(maxSeq);
}

function checkStored(stored: StoredAction[], pushers: Pusher[]): void {
  // Gap-free seqs, each action once.
  expect(stored.map((a) => a.seq)).toEqual(Array.from({ length: stored.length }, (_, i) => i + 1));
  const byId = new Map<string, StoredAction>(stored.map((a) => [a.id, a]));
  expect(byId.size).toBe(stored.length);
  for (const p of pushers) {
    // Every acknowledged action is there, with the seq it was acknowledged with.
    for (const [id, seq] of p.acked) expect(byId.get(id)?.seq, `acked ${id}`).toBe(seq);
    // No batch half stored.
    for (const batch of p.batches) {
      const present = batch.filter((a) => byId.has(a.id)).length;
      expect([0, batch.length], `batch of ${batch.length} has ${present} stored`).toContain(present);
    }
  }
}

describe('kill -9 of the API process during pushes', () => {
  it(`loses no acknowledged action, duplicates none and never half-stores a batch (${ITERATIONS} kills)`, async () => {
    const conns = await Promise.all(Array.from({ length: PUSHERS + 1 }, () => client(nats.url)));
    const reader = conns[PUSHERS] as NatsConnection;
    try {
      let acksThisRound = 0;
      let killAt = 0;
      let killing: Promise<unknown> | null = null;
      let api: ServiceProcess | null = null;
      const pushers = conns.slice(0, PUSHERS).map(
        (nc) =>
          new Pusher(nc, () => {
            // Kill on an event (the k-th acknowledgement), while the other pushers have requests in flight.
            if (++acksThisRound === killAt && api !== null) killing = api.kill('SIGKILL');
          }),
      );
      let kills = 0;
      for (let round = 0; round < ITERATIONS; round++) {
        api = await startApi();
        const log = await pullEverything(reader);
        checkStored(log, pushers);
        // Recovered from the log tail the kill left above the last checkpoint.
        checkRecords(await snapshotEverything(reader), log);
        acksThisRound = 0;
        killAt = 1 + ((round * 7) % 12);
        killing = null;
        await Promise.all(pushers.map((p) => p.run()));
        expect(killing, 'the kill happened during the pushes').not.toBeNull();
        const exit = await api.exited;
        expect(exit.signal).toBe('SIGKILL');
        kills++;
      }
      expect(kills).toBe(ITERATIONS);

      // Final restart: finish what was in flight, then check everything once more.
      api = await startApi();
      killAt = Number.POSITIVE_INFINITY;
      for (const p of pushers) {
        if (p.pending === null) continue;
        const batch = p.pending;
        const raw = await ask(reader, subjects(TENANT).push, { clientId: p.client.clientId, actions: batch });
        for (const r of pushReplySchema.parse(raw).results) p.acked.set(r.id, r.seq as number);
        p.pending = null;
      }
      const stored = await pullEverything(reader);
      checkStored(stored, pushers);
      checkRecords(await snapshotEverything(reader), stored);
      const total = pushers.reduce((n, p) => n + p.batches.reduce((m, b) => m + b.length, 0), 0);
      expect(stored.length).toBe(total);
      expect(pushers.reduce((n, p) => n + p.acked.size, 0)).toBe(total);
      // SIGTERM drains and exits 0.
      expect(await api.stop()).toEqual({ code: 0, signal: null });
    } finally {
      await Promise.all(conns.map((c) => c.close()));
    }
  }, 120_000);
});
