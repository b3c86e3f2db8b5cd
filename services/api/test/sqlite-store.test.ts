// Runs the store conformance suite against the SQLite store on a real file,
// twice: with automatic checkpoints, and with close behaving like a crash
// (records never checkpointed on their own); plus the properties only SQLite
// has (pragmas, the watermark in the file, recovery, checkpoint triggers).
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import Database from 'better-sqlite3';
import { join } from 'node:path';
import { setImmediate as nextTurn } from 'node:timers/promises';
import { Writable } from 'node:stream';
import { pino } from 'pino';
import type { Action, TenantId } from '@ferry/contracts';
import { PolicyBook } from '@ferry/domain';
import { makeTempDir, type TempDir } from '@ferry/testing';
import { SqliteStore, type SqliteStoreOptions } from '../src/store/sqlite-store.js';
import { openSchema } from '../src/store/sqlite-schema.js';
import { describeStoreConformance, type StoreFactory } from './store-conformance.js';
import { simClient } from './support/actions.js';

function sqliteFactory(extra: Partial<SqliteStoreOptions>): StoreFactory {
  return async ({ policies }) => {
    const dir = await makeTempDir('ferry-store-');
    const path = join(dir.path, 'store.sqlite');
    const open = () => SqliteStore.open({ path, policies, purgeChunk: 2, ...extra });
    let store = open();
    return {
      get store() {
        return store;
      },
      async reopen() {
        await store.close();
        store = open();
        return store;
      },
      async dispose() {
        await store.close();
        await dir.remove();
      },
    };
  };
}

describeStoreConformance('SqliteStore', sqliteFactory({}));
// No clean records kept either: every record not dirty is read back from the table.
describeStoreConformance(
  'SqliteStore, close as a crash (recovery on every reopen), no clean-record cache',
  sqliteFactory({ autoCheckpoint: false, recordCacheSize: 0 }),
);

const T = 'acme' as TenantId;

/** Reads what the file holds, through a second connection, as a restarted process would see it. */
function fileState(path: string): { entities: number; head: number; recordsThrough: number } {
  const db = new Database(path, { readonly: true });
  try {
    const t = db.prepare('SELECT head_seq, records_through FROM tenants WHERE name = ?').get(T) as
      { head_seq: number; records_through: number } | undefined;
    const entities = db.prepare('SELECT COUNT(*) FROM entities').pluck().get() as number;
    return { entities, head: t?.head_seq ?? 0, recordsThrough: t?.records_through ?? 0 };
  } finally {
    db.close();
  }
}

describe('SqliteStore write-behind records', () => {
  let dir: TempDir;
  let path: string;
  let store: SqliteStore | null = null;
  const open = (options: Partial<SqliteStoreOptions> = {}) =>
    (store = SqliteStore.open({ path, policies: new PolicyBook(), ...options }));

  beforeEach(async () => {
    dir = await makeTempDir('ferry-store-');
    path = join(dir.path, 's.sqlite');
  });
  afterEach(async () => {
    vi.useRealTimers();
    await store?.close();
    store = null;
    await dir.remove();
  });

  it('a push writes the log but no records; a checkpoint writes the records and the watermark together', async () => {
    const s = open({ autoCheckpoint: false });
    const c = simClient();
    await s.push(T, {
      clientId: c.clientId,
      actions: [c.create('a', {}), c.create('b', {}), c.update('a', { x: 1 })],
      now: 0,
    });
    expect(fileState(path)).toEqual({ entities: 0, head: 3, recordsThrough: 0 });
    await s.checkpoint();
    expect(fileState(path)).toEqual({ entities: 2, head: 3, recordsThrough: 3 });
  });

  it('recovery on open folds only the log tail above the watermark, then checkpoints', async () => {
    const s = open({ autoCheckpoint: false });
    const c = simClient();
    const push = (n: number, from: number) =>
      s.push(T, {
        clientId: c.clientId,
        actions: Array.from({ length: n }, (_, i) => c.update(`e${(from + i) % 5}`, { i: from + i })),
        now: 0,
      });
    await push(40, 0);
    await s.checkpoint();
    await push(7, 40);
    await s.close(); // like a crash: the last 7 actions are only in the log
    expect(fileState(path)).toMatchObject({ head: 47, recordsThrough: 40 });
    const lines: Record<string, unknown>[] = [];
    const sink = new Writable({
      write(chunk: Buffer, _enc, done) {
        lines.push(JSON.parse(chunk.toString()) as Record<string, unknown>);
        done();
      },
    });
    open({ autoCheckpoint: false, logger: pino({ level: 'info' }, sink) });
    expect(lines.filter((l) => l.msg === 'records recovered from the log tail')).toEqual([
      expect.objectContaining({ from: 40, to: 47, folded: 7 }),
    ]);
    expect(fileState(path)).toMatchObject({ head: 47, recordsThrough: 47, entities: 5 });
  });

  it('checkpoints on its own once N records are dirty, between pushes, never inside one', async () => {
    const s = open({ checkpointMaxDirty: 3, checkpointIntervalMs: 3_600_000 });
    const c = simClient();
    await s.push(T, { clientId: c.clientId, actions: [c.create('a', {}), c.create('b', {})], now: 0 });
    await nextTurn();
    expect(fileState(path).recordsThrough).toBe(0); // 2 dirty < 3
    await s.push(T, { clientId: c.clientId, actions: [c.create('c', {}), c.create('d', {})], now: 0 });
    expect(fileState(path).recordsThrough).toBe(0); // the push itself replied first
    await nextTurn();
    // Started after the reply; the writer thread commits it a moment later.
    await vi.waitFor(() => expect(fileState(path)).toMatchObject({ recordsThrough: 4, entities: 4 }));
  });

  it('checkpoints T ms after the first change since the last checkpoint', async () => {
    vi.useFakeTimers({ toFake: ['setTimeout', 'clearTimeout'] });
    const s = open({ checkpointIntervalMs: 1000 });
    const c = simClient();
    await s.push(T, { clientId: c.clientId, actions: [c.create('a', {})], now: 0 });
    vi.advanceTimersByTime(999);
    await s.push(T, { clientId: c.clientId, actions: [c.create('b', {})], now: 0 });
    expect(fileState(path).recordsThrough).toBe(0);
    vi.advanceTimersByTime(1);
    await vi.waitFor(() => expect(fileState(path)).toMatchObject({ recordsThrough: 2, entities: 2 }));
  });

  it('migrates a version-2 file: its log index by client becomes runs, and retries get their original seqs', async () => {
    const db = new Database(path);
    db.exec(`CREATE TABLE tenants (id INTEGER PRIMARY KEY, name TEXT NOT NULL UNIQUE, head_seq INTEGER NOT NULL DEFAULT 0,
        purged_through INTEGER NOT NULL DEFAULT 0, records_through INTEGER NOT NULL DEFAULT 0);
      CREATE TABLE clients (id INTEGER PRIMARY KEY, tenant INTEGER NOT NULL, client_id TEXT NOT NULL,
        high_client_seq INTEGER NOT NULL DEFAULT 0, cursor INTEGER, last_seen INTEGER NOT NULL, UNIQUE (tenant, client_id));
      CREATE TABLE actions (tenant INTEGER NOT NULL, seq INTEGER NOT NULL, client INTEGER NOT NULL,
        client_seq INTEGER NOT NULL, json TEXT NOT NULL, PRIMARY KEY (tenant, seq)) WITHOUT ROWID;
      CREATE UNIQUE INDEX actions_by_client ON actions (tenant, client, client_seq);
      CREATE TABLE rejections (tenant INTEGER NOT NULL, client INTEGER NOT NULL, client_seq INTEGER NOT NULL,
        id TEXT NOT NULL, reason TEXT NOT NULL, at INTEGER NOT NULL, PRIMARY KEY (tenant, client, client_seq)) WITHOUT ROWID;`);
    const a = simClient();
    const b = simClient();
    const byA = [
      a.create('x', {}),
      a.update('x', { n: 1 }),
      a.update('x', { n: 2 }),
      a.create('y', {}),
      a.create('z', {}),
    ];
    const byB = [b.create('w', {}), b.update('w', { n: 1 })];
    // Stored as version 2 would have: A1 A2 B1 (A3 rejected) A4 B2 A5.
    const log: [number, Action][] = [
      [1, byA[0] as Action],
      [1, byA[1] as Action],
      [2, byB[0] as Action],
      [1, byA[3] as Action],
      [2, byB[1] as Action],
      [1, byA[4] as Action],
    ];
    db.exec(`INSERT INTO tenants (id, name, head_seq) VALUES (1, '${T}', 6);
      INSERT INTO clients (id, tenant, client_id, high_client_seq, last_seen) VALUES (1, 1, '${a.clientId}', 5, 0), (2, 1, '${b.clientId}', 2, 0);`);
    const insert = db.prepare('INSERT INTO actions (tenant, seq, client, client_seq, json) VALUES (1, ?, ?, ?, ?)');
    log.forEach(([client, action], i) =>
      insert.run(i + 1, client, action.clientSeq, JSON.stringify({ ...action, seq: i + 1 })),
    );
    db.prepare('INSERT INTO rejections VALUES (1, 1, 3, ?, ?, 0)').run(byA[2]?.id, 'stale: it was');
    db.pragma('user_version = 2');
    db.close();

    const s = open();
    const again = await s.push(T, { clientId: a.clientId, actions: byA, now: 0 });
    expect(again.results.map((r) => [r.status, r.seq])).toEqual([
      ['duplicate', 1],
      ['duplicate', 2],
      ['rejected', undefined],
      ['duplicate', 4],
      ['duplicate', 6],
    ]);
    expect(again.results[2]?.reason).toBe('stale: it was');
    const againB = await s.push(T, { clientId: b.clientId, actions: byB, now: 0 });
    expect(againB.results.map((r) => [r.status, r.seq])).toEqual([
      ['duplicate', 3],
      ['duplicate', 5],
    ]);
    const check = new Database(path, { readonly: true });
    try {
      expect(check.prepare("SELECT name FROM sqlite_master WHERE name = 'actions_by_client'").all()).toEqual([]);
      expect(check.prepare('SELECT * FROM client_runs ORDER BY client, first_client_seq').raw().all()).toEqual([
        [1, 1, 1, 2, 1],
        [1, 1, 4, 4, 4],
        [1, 1, 5, 5, 6],
        [1, 2, 1, 1, 3],
        [1, 2, 2, 2, 5],
      ]);
      expect(check.pragma('user_version', { simple: true })).toBe(3);
    } finally {
      check.close();
    }
  });

  it('migrates a version-1 file: its records were written in each push, so they count as checkpointed', async () => {
    const db = new Database(path);
    db.exec(`CREATE TABLE tenants (id INTEGER PRIMARY KEY, name TEXT NOT NULL UNIQUE,
      head_seq INTEGER NOT NULL DEFAULT 0, purged_through INTEGER NOT NULL DEFAULT 0);
      INSERT INTO tenants (name, head_seq, purged_through) VALUES ('${T}', 9, 4);`);
    db.pragma('user_version = 1');
    db.close();
    await open().close();
    store = null;
    expect(fileState(path)).toMatchObject({ head: 9, recordsThrough: 9 });
  });
});

describe('SqliteStore specifics', () => {
  let dir: TempDir | null = null;
  afterEach(async () => {
    await dir?.remove();
    dir = null;
  });

  it('rewrites an unchanged cursor within cursorRefreshMs, so a client that keeps pulling keeps holding the horizon', async () => {
    dir = await makeTempDir('ferry-store-');
    const store = SqliteStore.open({ path: join(dir.path, 's.sqlite'), cursorRefreshMs: 1000 });
    try {
      const c = simClient();
      const steady = simClient();
      const NOW = Date.now();
      await store.push(T, {
        clientId: c.clientId,
        actions: [c.create('a', {}), c.create('b', {}), c.create('c', {})],
        now: NOW - 6000,
      });
      const pull = (clientId: string, since: number, at: number) =>
        store.pull(T, { since, limit: 10, now: at, maxBytes: 1 << 20, clientId: clientId as typeof c.clientId });
      await pull(steady.clientId, 1, NOW - 5000);
      await pull(steady.clientId, 1, NOW - 100); // the same cursor, 4.9 s later: written again
      await pull(c.clientId, 3, NOW);
      // Window 2 s: the steady client was seen 0.1 s ago at cursor 1, so only seq 1 may go.
      expect((await store.purge({ now: NOW, windowMs: 2000 })).actions).toBe(1);
    } finally {
      await store.close();
    }
  });

  it('runs in WAL mode with synchronous=FULL (an acknowledged push survives power loss)', async () => {
    dir = await makeTempDir('ferry-store-');
    const db = new Database(join(dir.path, 's.sqlite'));
    try {
      openSchema(db);
      expect(db.pragma('journal_mode', { simple: true })).toBe('wal');
      expect(db.pragma('synchronous', { simple: true })).toBe(2); // 2 = FULL
    } finally {
      db.close();
    }
  });

  it('a write that does not commit is answered `unavailable`, and the store goes on from what the file holds', async () => {
    dir = await makeTempDir('ferry-store-');
    const path = join(dir.path, 's.sqlite');
    const store = SqliteStore.open({ path, policies: new PolicyBook() });
    try {
      const c = simClient();
      await store.push(T, { clientId: c.clientId, actions: [c.create('a', { v: 1 })], now: 0 });
      // Someone moves the head behind the store's back: its next write-set no longer fits the file.
      const other = new Database(path);
      other.prepare('UPDATE tenants SET head_seq = head_seq + 5').run();
      other.close();
      const batch = [c.update('a', { v: 2 }), c.create('b', {})];
      await expect(store.push(T, { clientId: c.clientId, actions: batch, now: 0 })).rejects.toMatchObject({
        code: 'unavailable',
      });
      // Nothing of the refused batch is left in memory: not its folds, not its clientSeqs.
      const before = await store.snapshot(T, { after: null, limit: 10, maxBytes: 1 << 20 });
      expect(before.records.map((r) => JSON.parse(r) as unknown)).toEqual([
        expect.objectContaining({ id: 'a', version: 1, seq: 1, fields: { v: expect.objectContaining({ value: 1 }) } }),
      ]);
      const retry = await store.push(T, { clientId: c.clientId, actions: batch, now: 0 });
      expect(retry.results.map((r) => [r.status, r.seq])).toEqual([
        ['accepted', 7],
        ['accepted', 8],
      ]);
      const after = await store.snapshot(T, { after: null, limit: 10, maxBytes: 1 << 20 });
      expect(after.records.map((r) => JSON.parse(r) as unknown)).toEqual([
        expect.objectContaining({ id: 'a', version: 2, seq: 7, fields: { v: expect.objectContaining({ value: 2 }) } }),
        expect.objectContaining({ id: 'b', version: 1, seq: 8 }),
      ]);
    } finally {
      await store.close();
    }
  });

  it('serves no action of a push before that push is answered (its WAL synced)', async () => {
    dir = await makeTempDir('ferry-store-');
    const path = join(dir.path, 's.sqlite');
    const store = SqliteStore.open({ path, policies: new PolicyBook(), walSyncDelayMs: 300 });
    try {
      const c = simClient();
      await store.push(T, { clientId: c.clientId, actions: [c.create('a', {})], now: 0 });
      let answered = false;
      const pending = store.push(T, { clientId: c.clientId, actions: [c.update('a', { v: 2 })], now: 0 });
      void pending.then(() => (answered = true));
      // Committed (another connection sees the row) but not yet synced, so not answered.
      const other = new Database(path, { readonly: true });
      try {
        await vi.waitFor(() => expect(other.prepare('SELECT COUNT(*) FROM actions').pluck().get()).toBe(2));
      } finally {
        other.close();
      }
      const during = await store.pull(T, { since: 0, limit: 10, now: 0, maxBytes: 1 << 20 });
      expect(answered).toBe(false);
      expect([during.actions.length, during.next, during.more, during.headSeq]).toEqual([1, 1, false, 1]);
      await pending;
      const after = await store.pull(T, { since: 0, limit: 10, now: 0, maxBytes: 1 << 20 });
      expect([after.actions.length, after.next, after.headSeq]).toEqual([2, 2, 2]);
    } finally {
      await store.close();
    }
  });

  it('answers `unavailable` once closed instead of crashing', async () => {
    dir = await makeTempDir('ferry-store-');
    const store = SqliteStore.open({ path: join(dir.path, 's.sqlite'), policies: new PolicyBook() });
    await store.close();
    const c = simClient();
    await expect(
      store.push('acme' as TenantId, { clientId: c.clientId, actions: [c.create('a', {})], now: 0 }),
    ).rejects.toMatchObject({
      code: 'unavailable',
    });
  });
});
