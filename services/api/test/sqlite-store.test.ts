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
import type { TenantId } from '@ferry/contracts';
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
    expect(fileState(path)).toMatchObject({ recordsThrough: 4, entities: 4 });
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
    expect(fileState(path)).toMatchObject({ recordsThrough: 2, entities: 2 });
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
