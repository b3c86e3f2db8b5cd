// The SQLite attach mode against real SQLite files, no NATS: schema
// inspection, the trigger/outbox capture into the WAL, the value and id codecs,
// write-back (drain first, no echo), id collisions, schema changes, detach.
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import Database from 'better-sqlite3';
import fc from 'fast-check';
import pino from 'pino';
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { uuidv7 } from 'uuidv7';
import { FerryError, type Action, type StoredAction, type SyncEvent } from '@ferry/contracts';
import { PolicyBook } from '@ferry/domain';
import type { Reconciler } from '../src/reconcile/reconciler.js';
import { runAttachCli } from '../src/source/attach-cli.js';
import { AttachLedger } from '../src/source/attach-ledger.js';
import { attach, detach, readAttachment } from '../src/source/sqlite-attach.js';
import { inspectSchema } from '../src/source/sqlite-schema.js';
import { SqliteSource } from '../src/source/sqlite-source.js';
import {
  decodeEntityId,
  encodeEntityId,
  parseQuotedList,
  toBindValue,
  toJsonValue,
  type KeySpec,
  type SqliteValue,
} from '../src/source/sqlite-values.js';
import { WalStore } from '../src/wal/wal-store.js';

const OTHER = '0190a000-0000-7000-8000-0000000000bb';
const THIRD = '0190a000-0000-7000-8000-0000000000cc';
const FC_RUNS = Number(process.env.FC_RUNS ?? 300);
const FC_SEED = process.env.FC_SEED === undefined ? undefined : Number(process.env.FC_SEED);
const fcParams = { numRuns: FC_RUNS, ...(FC_SEED === undefined ? {} : { seed: FC_SEED }) };

let dir: string;
let cleanups: (() => Promise<void> | void)[];

beforeEach(() => {
  dir = mkdtempSync(join(tmpdir(), 'ferry-attach-'));
  cleanups = [];
});

afterEach(async () => {
  for (const c of cleanups.reverse()) await c();
  rmSync(dir, { recursive: true, force: true });
});

/** The app: a plain better-sqlite3 connection in WAL mode, as an app would open it. */
function openApp(name = 'app.db'): Database.Database {
  const db = new Database(join(dir, name));
  db.pragma('journal_mode = WAL');
  db.pragma('busy_timeout = 5000');
  cleanups.push(() => {
    if (db.open) db.close();
  });
  return db;
}

interface Harness {
  app: Database.Database;
  wal: WalStore;
  source: SqliteSource;
  reconciler: Reconciler;
  events: SyncEvent[];
  appended: Action[];
}

async function startSource(app: Database.Database, tables?: string[], daemonFile = 'daemon.sqlite'): Promise<Harness> {
  const wal = WalStore.open(join(dir, daemonFile), { newId: uuidv7, now: Date.now });
  const events: SyncEvent[] = [];
  const appended: Action[] = [];
  const source = new SqliteSource({
    path: app.name,
    ...(tables === undefined ? {} : { tables }),
    wal,
    logger: pino({ level: 'silent' }),
    emit: (e) => events.push(e),
    now: Date.now,
    newId: uuidv7,
    onAppended: (actions) => appended.push(...actions),
    pollMs: 2,
  });
  const reconciler = source.createReconciler({ wal, policies: new PolicyBook(), now: Date.now });
  cleanups.push(async () => {
    await source.stop();
    wal.close();
  });
  await source.start();
  return { app, wal, source, reconciler, events, appended };
}

async function eventually(what: string, check: () => boolean, timeoutMs = 5000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!check()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 5));
  }
}

let serverSeq = 0;
let otherSeq = 0;
function remote(
  collection: string,
  entityId: string,
  op: Action['op'],
  fields?: Record<string, unknown>,
  clientId = OTHER,
): StoredAction {
  return {
    id: uuidv7(),
    clientId,
    clientSeq: ++otherSeq,
    collection,
    entityId,
    op,
    ...(fields === undefined ? {} : { fields }),
    hlc: Date.now() * 4096 + (otherSeq % 4096),
    seq: ++serverSeq,
  } as StoredAction;
}

function pull(h: Harness, actions: StoredAction[]): void {
  const result = h.reconciler.applyPulled(actions, serverSeq);
  h.source.writeBack(result);
}

const pending = (h: Harness): Action[] => h.wal.readPending(0, 10_000);
const outboxCount = (db: Database.Database): number =>
  (db.prepare('SELECT count(*) AS n FROM _ferry_outbox').get() as { n: number }).n;

describe('schema inspection', () => {
  it('syncs tables with a key and names every table it will not sync, with the reason', () => {
    const app = openApp();
    app.exec(`
      CREATE TABLE notes (id TEXT PRIMARY KEY, title TEXT, body TEXT);
      CREATE TABLE tags (note TEXT, tag TEXT, weight REAL, PRIMARY KEY (note, tag)) WITHOUT ROWID;
      CREATE TABLE items (id INTEGER PRIMARY KEY AUTOINCREMENT, name TEXT);
      CREATE TABLE calc (id TEXT PRIMARY KEY, a INTEGER, twice INTEGER GENERATED ALWAYS AS (a * 2) STORED);
      CREATE TABLE strict_t (id TEXT PRIMARY KEY, n INTEGER) STRICT;
      CREATE TABLE logs (at INTEGER, line TEXT);
      CREATE TABLE people (email TEXT PRIMARY KEY COLLATE NOCASE, name TEXT);
      CREATE TABLE "odd name" (id TEXT PRIMARY KEY);
      CREATE VIRTUAL TABLE search USING fts5(body);
      CREATE VIEW v AS SELECT * FROM notes;
    `);
    const { tables, unsupported } = inspectSchema(app);
    expect(tables.map((t) => t.table)).toEqual(['calc', 'items', 'notes', 'strict_t', 'tags']);
    const reasons = Object.fromEntries(unsupported.map((p) => [p.table, p.reason]));
    expect(reasons.logs).toMatch(/no PRIMARY KEY/);
    expect(reasons.people).toMatch(/collation NOCASE/);
    expect(reasons['odd name']).toMatch(/not a valid collection name/);
    expect(reasons.search).toMatch(/virtual table/);
    expect(reasons.search_data).toMatch(/shadow table/);
    const calc = tables.find((t) => t.table === 'calc');
    expect(calc?.columns.map((c) => c.name)).toEqual(['id', 'a']);
    expect(calc?.notes.join()).toMatch(/generated column\(s\) twice not synced/);
    const items = tables.find((t) => t.table === 'items');
    expect(items).toMatchObject({ mintedKeys: true, autoincrement: true });
    const tags = tables.find((t) => t.table === 'tags');
    expect(tags).toMatchObject({ mintedKeys: false, withoutRowid: true });
    expect(tags?.pk.map((k) => k.name)).toEqual(['note', 'tag']);
  });

  it('refuses an explicit --tables naming an unsupported or missing table, and installs nothing', () => {
    const app = openApp();
    app.exec('CREATE TABLE notes (id TEXT PRIMARY KEY, title TEXT); CREATE TABLE logs (line TEXT)');
    const before = app.prepare('SELECT * FROM sqlite_schema ORDER BY name').all();
    expect(() => attach(app, { tables: ['notes', 'logs', 'nope'], newId: uuidv7 })).toThrow(
      /nope: no such table; logs: no PRIMARY KEY/,
    );
    expect(app.prepare('SELECT * FROM sqlite_schema ORDER BY name').all()).toEqual(before);
  });
});

describe('value and id codecs', () => {
  const sqliteValue = fc.oneof(
    fc.constant(null),
    fc.string({ unit: 'grapheme', maxLength: 20 }),
    fc.string({ maxLength: 20 }).map((s) => `${s}',,'x'`),
    fc.integer(),
    fc.bigInt({ min: -(2n ** 63n), max: 2n ** 63n - 1n }),
    fc.double({ noNaN: true, noDefaultInfinity: true }).filter((d) => !Number.isInteger(d)),
    fc.uint8Array({ maxLength: 16 }).map((b) => Buffer.from(b)),
  );

  it('reads back every value exactly as SQLite quote() renders it', () => {
    const db = openApp('codec.db');
    db.exec('CREATE TABLE v (a)');
    const ins = db.prepare('INSERT INTO v (a) VALUES (?)');
    const read = db.prepare<[], { q: string }>(
      "SELECT group_concat(quote(a), ',') AS q FROM (SELECT a FROM v ORDER BY rowid)",
    );
    fc.assert(
      fc.property(fc.array(sqliteValue, { minLength: 1, maxLength: 6 }), (values) => {
        db.exec('DELETE FROM v');
        for (const v of values) ins.run(v);
        const parsed = parseQuotedList(read.get()?.q ?? '');
        const expected = values.map((v) =>
          typeof v === 'bigint' && v >= BigInt(Number.MIN_SAFE_INTEGER) && v <= BigInt(Number.MAX_SAFE_INTEGER)
            ? Number(v)
            : v,
        );
        expect(parsed).toEqual(expected);
        // And through JSON and back to what is bound again.
        for (const v of parsed) {
          const json = JSON.parse(JSON.stringify(toJsonValue(v as SqliteValue))) as Parameters<typeof toBindValue>[0];
          const back = toBindValue(json);
          if (typeof v === 'number' && Number.isSafeInteger(v)) expect(back).toBe(BigInt(v));
          else expect(back).toEqual(v);
        }
      }),
      fcParams,
    );
  });

  it('binds only safe integers as INTEGER: a whole number beyond 2^53 stays a REAL, and 2^63 and more can be bound', () => {
    expect(toBindValue(42)).toBe(42n);
    expect(toBindValue(1e17)).toBe(1e17);
    expect(toBindValue(-1e19)).toBe(-1e19);
    const db = new Database(':memory:');
    db.exec('CREATE TABLE t (v)');
    const ins = db.prepare('INSERT INTO t (v) VALUES (?)');
    for (const v of [1e20, -1e19, 1e17]) expect(() => ins.run(toBindValue(v))).not.toThrow();
    expect(db.prepare('SELECT typeof(v) AS t FROM t').all()).toEqual([{ t: 'real' }, { t: 'real' }, { t: 'real' }]);
    db.close();
  });

  it('encodes keys as plain text or digits when unambiguous, else as a JSON array, and decodes them back', () => {
    const textKey: KeySpec = { table: 't', pk: [{ name: 'id', affinity: 'TEXT' }] };
    const intKey: KeySpec = { table: 't', pk: [{ name: 'id', affinity: 'INTEGER' }] };
    const anyKey: KeySpec = { table: 't', pk: [{ name: 'id', affinity: 'BLOB' }] };
    const composite: KeySpec = {
      table: 't',
      pk: [
        { name: 'a', affinity: 'TEXT' },
        { name: 'b', affinity: 'INTEGER' },
      ],
    };
    expect(encodeEntityId(textKey, ['note-1'])).toBe('note-1');
    expect(encodeEntityId(intKey, [42])).toBe('42');
    expect(encodeEntityId(intKey, [2n ** 62n])).toBe(String(2n ** 62n));
    expect(encodeEntityId(textKey, ['[x'])).toBe('["[x"]');
    expect(encodeEntityId(textKey, [''])).toBe('[""]');
    expect(encodeEntityId(anyKey, [7])).toBe('[7]');
    expect(encodeEntityId(composite, ['a,b', 3])).toBe('["a,b",3]');
    expect(encodeEntityId(textKey, [Buffer.from([1, 2])])).toBe('[{"$blob":"AQI="}]');
    expect(() => encodeEntityId(textKey, [null])).toThrow(/is NULL/);
    expect(() => encodeEntityId(textKey, ['x'.repeat(300)])).toThrow(/limit is 256/);
    expect(() => decodeEntityId(intKey, 'abc')).toThrow(/not a key of table t/);
    const key = fc.oneof(
      fc.string({ minLength: 0, maxLength: 12 }),
      fc.integer(),
      fc.bigInt({ min: -(2n ** 63n), max: 2n ** 63n - 1n }),
    );
    fc.assert(
      fc.property(fc.constantFrom(textKey, intKey, anyKey), key, (spec, v) => {
        const id = encodeEntityId(spec, [v]);
        const back = decodeEntityId(spec, id)[0];
        const norm = (x: unknown) => (typeof x === 'number' && Number.isInteger(x) ? BigInt(x) : x);
        expect(norm(back)).toEqual(norm(v));
      }),
      fcParams,
    );
    fc.assert(
      fc.property(
        fc.string({ maxLength: 8 }),
        fc.integer(),
        fc.string({ maxLength: 8 }),
        fc.integer(),
        (a, b, c, d) => {
          // Distinct keys never share an id.
          if (a === c && b === d) return;
          expect(encodeEntityId(composite, [a, b])).not.toBe(encodeEntityId(composite, [c, d]));
        },
      ),
      fcParams,
    );
  });
});

describe('capture through triggers and the outbox', () => {
  it('turns inserts, updates (changed columns only), key changes and deletes into WAL actions', async () => {
    const app = openApp();
    app.exec(`
      CREATE TABLE notes (id TEXT PRIMARY KEY, title TEXT, body TEXT, n INTEGER, price REAL, data BLOB);
      CREATE TABLE tags (note TEXT, tag TEXT, PRIMARY KEY (note, tag)) WITHOUT ROWID;
    `);
    app
      .prepare('INSERT INTO notes VALUES (?, ?, ?, ?, ?, ?)')
      .run('n1', "it's, here", null, 9007199254740993n, 1.5, Buffer.from('hi'));
    const h = await startSource(app);
    // The row that existed before attach is queued as a create.
    await eventually('the existing row to be captured', () => pending(h).length === 1);
    app.prepare("UPDATE notes SET title = 'new' WHERE id = 'n1'").run();
    app.prepare("UPDATE notes SET title = 'new' WHERE id = 'n1'").run(); // no change: nothing captured
    app.prepare("UPDATE notes SET id = 'n2' WHERE id = 'n1'").run();
    app.prepare("INSERT INTO tags VALUES ('n2', 'red')").run();
    app.prepare("DELETE FROM notes WHERE id = 'n2'").run();
    await eventually('five more actions', () => pending(h).length === 6);
    const actions = pending(h).map((a) => ({ c: a.collection, id: a.entityId, op: a.op, f: a.fields }));
    expect(actions).toEqual([
      {
        c: 'notes',
        id: 'n1',
        op: 'create',
        f: {
          id: 'n1',
          title: "it's, here",
          body: null,
          n: { $int: '9007199254740993' },
          price: 1.5,
          data: { $blob: 'aGk=' },
        },
      },
      { c: 'notes', id: 'n1', op: 'update', f: { title: 'new' } },
      { c: 'notes', id: 'n1', op: 'delete', f: undefined },
      {
        c: 'notes',
        id: 'n2',
        op: 'create',
        f: { id: 'n2', title: 'new', body: null, n: { $int: '9007199254740993' }, price: 1.5, data: { $blob: 'aGk=' } },
      },
      { c: 'tags', id: '["n2","red"]', op: 'create', f: { note: 'n2', tag: 'red' } },
      { c: 'notes', id: 'n2', op: 'delete', f: undefined },
    ]);
    expect(h.events.filter((e) => e.type === 'capture')).toHaveLength(6);
    // Captured rows leave the outbox, but never the highest one (ids must keep growing).
    await eventually('the outbox to be cleaned', () => outboxCount(app) === 1);
  });

  it('dead-letters a row it cannot turn into a change, with the reason, and captures the rest', async () => {
    const app = openApp();
    app.exec('CREATE TABLE notes (id TEXT PRIMARY KEY, v REAL)');
    const h = await startSource(app);
    app.prepare('INSERT INTO notes VALUES (?, ?)').run(null, 1); // a rowid-table quirk: a NULL key
    app.prepare('INSERT INTO notes VALUES (?, ?)').run('inf', Number.POSITIVE_INFINITY);
    app.prepare('INSERT INTO notes VALUES (?, ?)').run('x'.repeat(300), 1);
    app.prepare('INSERT INTO notes VALUES (?, ?)').run('ok', 2);
    await eventually('the good row', () => pending(h).length === 1);
    await eventually('three dead letters', () => h.events.filter((e) => e.type === 'dead-lettered').length === 3);
    const reasons = h.events.flatMap((e) => (e.type === 'dead-lettered' ? [e.reason] : []));
    expect(reasons[0]).toMatch(/primary key column id is NULL/);
    expect(reasons[1]).toMatch(/column v: the REAL Infinity has no JSON form/);
    expect(reasons[2]).toMatch(/limit is 256/);
    expect(h.wal.deadLetterCount()).toBe(3);
    expect(pending(h)[0]?.entityId).toBe('ok');
  });

  it('dead-letters a value over the size limit the server enforces', async () => {
    const app = openApp();
    app.exec('CREATE TABLE notes (id TEXT PRIMARY KEY, body TEXT)');
    const h = await startSource(app);
    app.prepare('INSERT INTO notes VALUES (?, ?)').run('big', 'x'.repeat(70_000));
    app.prepare('INSERT INTO notes VALUES (?, ?)').run('small', 'x');
    await eventually('the small row', () => pending(h).length === 1);
    await eventually('the dead letter', () => h.events.some((e) => e.type === 'dead-lettered'));
    expect(h.events.find((e) => e.type === 'dead-lettered')).toMatchObject({
      code: 'too_large',
      reason: expect.stringMatching(/fields\.body: 70002 bytes, the limit is 65536/) as unknown,
    });
  });

  it('refuses a second daemon on a file another daemon captures (each keeps its own watermark)', async () => {
    const app = openApp();
    app.exec('CREATE TABLE notes (id TEXT PRIMARY KEY, body TEXT)');
    await startSource(app);
    await expect(startSource(app, undefined, 'other-daemon.sqlite')).rejects.toThrow(/one daemon per file/);
  });

  it('captures each committed row exactly once across restarts (the watermark commits with the actions)', async () => {
    const app = openApp();
    app.exec('CREATE TABLE notes (id TEXT PRIMARY KEY, n INTEGER)');
    let h = await startSource(app);
    const ins = app.prepare('INSERT INTO notes VALUES (?, ?)');
    for (let i = 0; i < 50; i++) ins.run(`a${i}`, i);
    await eventually('50 actions', () => pending(h).length === 50);
    // Stop without cleaning: the rows stay in the outbox, the watermark says they are captured.
    await cleanups.pop()?.();
    for (let i = 0; i < 50; i++) ins.run(`b${i}`, i);
    h = await startSource(app);
    await eventually('100 actions', () => pending(h).length === 100);
    expect(new Set(pending(h).map((a) => a.entityId)).size).toBe(100);
  });
});

describe('write-back', () => {
  it('applies remote creates, updates and deletes to the app rows, without echoing them', async () => {
    const app = openApp();
    app.exec('CREATE TABLE notes (id TEXT PRIMARY KEY, title TEXT, n INTEGER, data BLOB)');
    const h = await startSource(app);
    pull(h, [
      remote('notes', 'r1', 'create', { id: 'r1', title: 'remote', n: 1, data: { $blob: 'AAE=' } }),
      remote('notes', 'r2', 'create', { id: 'r2', title: 'two', n: 2 }),
    ]);
    expect(app.prepare('SELECT * FROM notes ORDER BY id').all()).toEqual([
      { id: 'r1', title: 'remote', n: 1, data: Buffer.from([0, 1]) },
      { id: 'r2', title: 'two', n: 2, data: null },
    ]);
    pull(h, [remote('notes', 'r1', 'update', { title: 'changed' }), remote('notes', 'r2', 'delete')]);
    expect(app.prepare('SELECT id, title FROM notes').all()).toEqual([{ id: 'r1', title: 'changed' }]);
    expect(app.prepare('SELECT typeof(n) AS t FROM notes').get()).toEqual({ t: 'integer' });
    // No echo: nothing of the daemon's own writes is captured.
    await new Promise((r) => setTimeout(r, 30));
    expect(pending(h)).toEqual([]);
    expect(outboxCount(app)).toBe(0);
    // The tombstone stays in the daemon.
    expect(h.reconciler.get('notes', 'r2')?.deleted).toBe(true);
  });

  it('drains the outbox first: a local write not yet captured is kept, not overwritten', async () => {
    const app = openApp();
    app.exec('CREATE TABLE notes (id TEXT PRIMARY KEY, title TEXT, body TEXT)');
    const h = await startSource(app);
    pull(h, [remote('notes', 'x', 'create', { id: 'x', title: 'remote', body: 'b' })]);
    // A local write lands and, before the tail sees it, a remote update of the same field arrives
    // with an older hlc (made before the local one): the local write must win and stay.
    const older = remote('notes', 'x', 'update', { title: 'remote later', body: 'remote body' });
    app.prepare("UPDATE notes SET title = 'local' WHERE id = 'x'").run();
    pull(h, [older]);
    expect(app.prepare('SELECT title, body FROM notes').get()).toEqual({ title: 'local', body: 'remote body' });
    expect(pending(h).map((a) => a.fields)).toEqual([{ title: 'local' }]);
  });

  it('never holds the app write lock to drain a long backlog: it catches up first, or waits for a lull', async () => {
    const app = openApp();
    app.exec('CREATE TABLE notes (id TEXT PRIMARY KEY, n INTEGER)');
    const h = await startSource(app);
    const ins = app.prepare('INSERT INTO notes VALUES (?, ?)');
    app.transaction(() => {
      for (let i = 0; i < 15_000; i++) ins.run(`local-${i}`, i);
    })();
    // The tail has not run yet: 15,000 rows wait in the outbox when the remote change arrives.
    pull(h, [remote('notes', 'r', 'create', { id: 'r', n: -1 })]);
    expect(app.prepare("SELECT count(*) AS n FROM notes WHERE id = 'r'").get()).toEqual({ n: 0 });
    // The lock is free: a writer that does not wait at all gets through.
    app.pragma('busy_timeout = 0');
    app.prepare("INSERT INTO notes VALUES ('after', 0)").run();
    app.pragma('busy_timeout = 5000');
    await eventually('the remote row', () => app.prepare("SELECT n FROM notes WHERE id = 'r'").get() !== undefined);
    await eventually('every local row captured', () => h.wal.pendingCount() === 15_001);
  });

  it('reports a remote change the app schema refuses, and applies the others', async () => {
    const app = openApp();
    app.exec('CREATE TABLE notes (id TEXT PRIMARY KEY, title TEXT NOT NULL, email TEXT UNIQUE)');
    const h = await startSource(app);
    pull(h, [
      remote('notes', 'a', 'create', { id: 'a', title: 'ok', email: 'x@y' }),
      remote('notes', 'b', 'create', { id: 'b', email: 'z@y' }),
      remote('notes', 'c', 'create', { id: 'c', title: 'dup', email: 'x@y' }),
      remote('notes', 'd', 'create', { id: 'd', title: 'extra', nosuch: 1 }),
      remote('other', 'e', 'create', { v: 1 }),
    ]);
    expect(app.prepare('SELECT id FROM notes ORDER BY id').all()).toEqual([{ id: 'a' }, { id: 'd' }]);
    const errors = h.events.flatMap((e) => (e.type === 'error' ? [e.message] : []));
    expect(errors.join('\n')).toMatch(/notes\/b cannot be written back: NOT NULL constraint failed/);
    expect(errors.join('\n')).toMatch(/notes\/c cannot be written back: UNIQUE constraint failed/);
    expect(errors.join('\n')).toMatch(/field nosuch of collection notes stays in the daemon/);
    expect(errors.join('\n')).toMatch(/collection other stay in the daemon/);
  });

  it('writes back after a crash between the pulled page and the app write (durable queue)', async () => {
    const app = openApp();
    app.exec('CREATE TABLE notes (id TEXT PRIMARY KEY, title TEXT)');
    let h = await startSource(app);
    // The page commits in the daemon, then the process dies before writing the app's file.
    h.reconciler.applyPulled([remote('notes', 'q', 'create', { id: 'q', title: 'queued' })], serverSeq);
    await cleanups.pop()?.();
    expect(app.prepare('SELECT count(*) AS n FROM notes').get()).toEqual({ n: 0 });
    h = await startSource(app);
    await eventually(
      'the queued entity to be written',
      () => app.prepare('SELECT title FROM notes').get() !== undefined,
    );
    expect(app.prepare('SELECT title FROM notes').get()).toEqual({ title: 'queued' });
  });
});

describe('INTEGER PRIMARY KEY tables', () => {
  it('reports two devices minting the same id for different rows as a conflict, and keeps the local row', async () => {
    const app = openApp();
    app.exec('CREATE TABLE items (id INTEGER PRIMARY KEY AUTOINCREMENT, name TEXT)');
    const h = await startSource(app);
    app.prepare("INSERT INTO items (name) VALUES ('mine')").run();
    await eventually('the local create', () => pending(h).length === 1);
    // Another device minted id 1 too, for another row; a third device minted id 2 with the same content as ours.
    pull(h, [remote('items', '1', 'create', { id: 1, name: 'theirs' })]);
    const conflicts = h.events.flatMap((e) => (e.type === 'conflict' ? [e.conflict] : []));
    expect(conflicts).toHaveLength(1);
    expect(conflicts[0]).toMatchObject({ collection: 'items', entityId: '1', resolution: 'id-collision', field: null });
    expect(conflicts[0]?.reason).toMatch(/INTEGER PRIMARY KEY/);
    expect(app.prepare('SELECT * FROM items').all()).toEqual([{ id: 1, name: 'mine' }]);
    // A remote row with a fresh id is written as usual; the same row minted twice is no collision.
    pull(h, [
      remote('items', '5', 'create', { id: 5, name: 'five' }),
      remote('items', '5', 'create', { id: 5, name: 'five' }, THIRD),
    ]);
    expect(app.prepare('SELECT * FROM items ORDER BY id').all()).toEqual([
      { id: 1, name: 'mine' },
      { id: 5, name: 'five' },
    ]);
    // The app replacing a row it was shown is an update, not a second mint.
    app.prepare("INSERT OR REPLACE INTO items (id, name) VALUES (5, 'replaced')").run();
    await eventually('the replace', () => pending(h).length === 2);
    expect(pending(h)[1]).toMatchObject({ entityId: '5', op: 'update', fields: { id: 5, name: 'replaced' } });
    expect(h.events.filter((e) => e.type === 'conflict')).toHaveLength(1);
  });

  it('detects the collision when the remote create arrives before the local insert is captured', async () => {
    const app = openApp();
    app.exec('CREATE TABLE items (id INTEGER PRIMARY KEY, name TEXT)');
    const h = await startSource(app);
    app.prepare("INSERT INTO items (name) VALUES ('mine')").run();
    pull(h, [remote('items', '1', 'create', { id: 1, name: 'theirs' })]);
    expect(h.events.filter((e) => e.type === 'conflict')).toHaveLength(1);
    expect(app.prepare('SELECT * FROM items').all()).toEqual([{ id: 1, name: 'mine' }]);
  });
});

describe('schema changes and detach', () => {
  it('picks up a column added after attach, with values written before the triggers were re-installed', async () => {
    const app = openApp();
    app.exec('CREATE TABLE notes (id TEXT PRIMARY KEY, title TEXT)');
    const h = await startSource(app);
    app.prepare("INSERT INTO notes VALUES ('a', 't')").run();
    await eventually('the create', () => pending(h).length === 1);
    // Remote knowledge of a column this device does not have yet stays in the daemon …
    pull(h, [remote('notes', 'a', 'update', { color: 'blue' })]);
    // … and the app migrates and writes in one transaction, before Ferry notices.
    app.transaction(() => {
      app.exec("ALTER TABLE notes ADD COLUMN color TEXT DEFAULT 'none'");
      app.prepare("INSERT INTO notes VALUES ('b', 't', 'red')").run();
    })();
    await eventually('the new column in the layout', () =>
      (readAttachment(app)?.layout[0]?.columns.map((c) => c.name) ?? []).includes('color'),
    );
    await eventually('b with its color', () =>
      pending(h).some((a) => a.entityId === 'b' && (a.fields?.color === 'red' || a.op === 'update')),
    );
    app.prepare("UPDATE notes SET color = 'green' WHERE id = 'b'").run();
    await eventually('the update of the new column', () =>
      pending(h).some((a) => a.entityId === 'b' && a.op === 'update' && a.fields?.color === 'green'),
    );
    // The value another device wrote to the column before it existed here is now written in.
    await eventually(
      'a to get its remote color',
      () => (app.prepare("SELECT color FROM notes WHERE id = 'a'").get() as { color: string }).color === 'blue',
    );
    expect(h.reconciler.get('notes', 'b')?.fields).toMatchObject({ id: 'b', title: 't', color: 'green' });
  });

  it('detach leaves sqlite_schema exactly as before attach and every row intact', () => {
    const app = openApp();
    app.exec(`
      CREATE TABLE notes (id TEXT PRIMARY KEY, title TEXT);
      CREATE TABLE items (id INTEGER PRIMARY KEY AUTOINCREMENT, name TEXT);
      CREATE INDEX notes_title ON notes (title);
      CREATE TRIGGER notes_audit AFTER UPDATE ON notes BEGIN SELECT 1; END;
      INSERT INTO notes VALUES ('a', 'x'), ('b', 'y');
      INSERT INTO items (name) VALUES ('i1');
    `);
    const schema = () =>
      app.prepare('SELECT type, name, tbl_name, rootpage, sql FROM sqlite_schema ORDER BY name').all();
    const rows = () => [app.prepare('SELECT * FROM notes ORDER BY id').all(), app.prepare('SELECT * FROM items').all()];
    const before = { schema: schema(), rows: rows() };
    attach(app, { newId: uuidv7 });
    expect(schema()).not.toEqual(before.schema);
    app.prepare("UPDATE notes SET title = 'z' WHERE id = 'a'").run();
    // Changes no daemon has captured yet: refused unless forced.
    expect(() => detach(app)).toThrow(/not known to have reached a daemon/);
    detach(app, { force: true });
    expect(schema()).toEqual(before.schema);
    expect(rows()).toEqual([
      [
        { id: 'a', title: 'z' },
        { id: 'b', title: 'y' },
      ],
      before.rows[1],
    ]);
    expect(app.prepare('PRAGMA integrity_check').get()).toEqual({ integrity_check: 'ok' });
  });

  it('stops with an error event when the file is detached under a running daemon', async () => {
    const app = openApp();
    app.exec('CREATE TABLE notes (id TEXT PRIMARY KEY, title TEXT)');
    const h = await startSource(app);
    detach(app, { force: true });
    await eventually('the detach to be reported', () =>
      h.events.some((e) => e.type === 'error' && /was detached/.test(e.message)),
    );
    expect(readAttachment(app)).toBeNull();
  });
});

describe('damaged attach state is refused with a clear error, never used', () => {
  const codeOf = (fn: () => unknown): unknown => {
    try {
      fn();
    } catch (err) {
      return err instanceof FerryError ? { code: err.code, message: err.message } : err;
    }
    return 'no error';
  };

  it('refuses a damaged _ferry_meta.selection or .layout (bad JSON, a string, a wrong shape), naming the way out', () => {
    const app = openApp();
    app.exec('CREATE TABLE notes (id TEXT PRIMARY KEY, title TEXT); CREATE TABLE no (id TEXT PRIMARY KEY)');
    attach(app, { tables: ['notes'], newId: uuidv7 });
    const setMeta = (key: string, value: string) =>
      app.prepare('UPDATE _ferry_meta SET value = ? WHERE key = ?').run(value, key);
    const good = { selection: readMeta(app, 'selection'), layout: readMeta(app, 'layout') };
    const damaged = (key: string) => ({
      code: 'invalid',
      message: `${app.name}: _ferry_meta.${key} is damaged; run ferry detach --force, then ferry attach`,
    });
    for (const bad of ['["notes"', '"notes"', '{"notes":true}', '[1]']) {
      setMeta('selection', bad);
      expect(
        codeOf(() => readAttachment(app)),
        bad,
      ).toEqual(damaged('selection'));
      // attach itself reads the stored selection: a string must not make "no" match by substring.
      expect(
        codeOf(() => attach(app, { newId: uuidv7 })),
        bad,
      ).toEqual(damaged('selection'));
    }
    setMeta('selection', good.selection);
    const layout = JSON.parse(good.layout) as Record<string, unknown>[];
    for (const bad of [
      '[{"table":',
      '{}',
      '"notes"',
      JSON.stringify([{ ...layout[0], pk: 'id' }]),
      JSON.stringify([{ ...layout[0], columns: [{ name: 'id', affinity: 'TEXT' }] }]),
      JSON.stringify([{ ...layout[0], table: 'bad name' }]),
    ]) {
      setMeta('layout', bad);
      expect(
        codeOf(() => readAttachment(app)),
        bad,
      ).toEqual(damaged('layout'));
    }
    setMeta('layout', good.layout);
    expect(readAttachment(app)?.selection).toEqual(['notes']);
    // The way out the message names works on a damaged file.
    setMeta('layout', 'garbage');
    expect(detach(app, { force: true }).triggers).toBeGreaterThan(0);
    expect(readAttachment(app)).toBeNull();
  });

  it('refuses a damaged outbox watermark in the daemon file instead of reading it as NaN', () => {
    const wal = WalStore.open(join(dir, 'daemon.sqlite'), { newId: uuidv7, now: Date.now });
    cleanups.push(() => wal.close());
    const ledger = new AttachLedger(wal);
    expect(ledger.watermark('a1')).toBe(0);
    ledger.setWatermark('a1', 42);
    expect(ledger.watermark('a1')).toBe(42);
    for (const bad of ['x42', '', '-1', '1.5', '"7"']) {
      wal.setMeta('attach_outbox:a1', bad);
      expect(
        codeOf(() => ledger.watermark('a1')),
        bad,
      ).toMatchObject({
        code: 'internal',
        message: expect.stringMatching(/^stored row is not valid: meta attach_outbox:a1: /) as unknown,
      });
    }
  });

  it('detach refuses a damaged captured_through (it cannot tell what reached a daemon); forced, it counts every row', () => {
    const app = openApp();
    app.exec("CREATE TABLE notes (id TEXT PRIMARY KEY, title TEXT); INSERT INTO notes VALUES ('a', 'x'), ('b', 'y')");
    attach(app, { newId: uuidv7 });
    expect(outboxCount(app)).toBe(2);
    const put = app.prepare(
      "INSERT INTO _ferry_meta (key, value) VALUES ('captured_through', ?) ON CONFLICT (key) DO UPDATE SET value = excluded.value",
    );
    for (const bad of ['garbage', '-3', Buffer.from('9')]) {
      put.run(bad);
      expect(
        codeOf(() => detach(app)),
        String(bad),
      ).toMatchObject({
        code: 'invalid',
        message: expect.stringMatching(
          /^cannot detach: .*_ferry_meta\.captured_through is damaged .*--force/,
        ) as unknown,
      });
      expect(readAttachment(app)).not.toBeNull();
    }
    // A sound value still lets a caught-up file detach without --force.
    put.run('99');
    expect(detach(app)).toEqual({ triggers: 4, dropped: 0 });
    attach(app, { newId: uuidv7 });
    put.run('garbage');
    expect(detach(app, { force: true }).dropped).toBe(2);
  });

  it('dead-letters an outbox row holding a BLOB (inserted by hand) and keeps capturing', async () => {
    const app = openApp();
    app.exec('CREATE TABLE notes (id TEXT PRIMARY KEY, title TEXT)');
    const h = await startSource(app);
    const put = app.prepare('INSERT INTO _ferry_outbox (tbl, op, pk, data) VALUES (?, ?, ?, ?)');
    put.run('notes', 'i', Buffer.from([1, 2]), "'a','x'");
    put.run('notes', 'i', "'b'", Buffer.from("'b','y'"));
    // TEXT affinity turns a number into text (a valid row shape); a BLOB stays a BLOB.
    put.run(Buffer.from('notes'), 'i', "'c'", "'c','z'");
    app.prepare('INSERT INTO notes VALUES (?, ?)').run('ok', 'fine');
    await eventually('the good row', () => pending(h).length === 1);
    await eventually('three dead letters', () => h.events.filter((e) => e.type === 'dead-lettered').length === 3);
    expect(pending(h)[0]).toMatchObject({ entityId: 'ok', fields: { id: 'ok', title: 'fine' } });
    const letters = h.events.flatMap((e) => (e.type === 'dead-lettered' ? [e] : []));
    expect(letters.map((l) => l.code)).toEqual(['invalid', 'invalid', 'invalid']);
    expect(letters[0]?.reason).toMatch(/table notes, i\): pk is a BLOB: not what the capture triggers write/);
    expect(letters[1]?.reason).toMatch(/data is a BLOB/);
    expect(letters[2]?.reason).toMatch(/\(table a BLOB, i\): tbl is a BLOB/);
    expect(h.wal.deadLetterCount()).toBe(3);
    expect(h.events.some((e) => e.type === 'error')).toBe(false);
  });
});

describe('ferry attach / detach command line', () => {
  async function run(role: 'attach' | 'detach', argv: string[]): Promise<{ code: number; out: string; err: string }> {
    let out = '';
    let err = '';
    const o = vi.spyOn(process.stdout, 'write').mockImplementation((chunk) => {
      out += String(chunk);
      return true;
    });
    const e = vi.spyOn(process.stderr, 'write').mockImplementation((chunk) => {
      err += String(chunk);
      return true;
    });
    try {
      const code = await runAttachCli(role, argv);
      return { code, out, err };
    } finally {
      o.mockRestore();
      e.mockRestore();
    }
  }

  it('refuses an unknown flag (a --table typo must not attach every table) and a flag without its value', async () => {
    const app = openApp();
    app.exec('CREATE TABLE notes (id TEXT PRIMARY KEY); CREATE TABLE other (id TEXT PRIMARY KEY)');
    expect(await run('attach', ['--db', app.name, '--table', 'notes'])).toEqual({
      code: 2,
      out: '',
      err: 'ferry attach: unknown option "--table"\n',
    });
    expect(readAttachment(app)).toBeNull();
    expect(await run('attach', ['--db', app.name, '--tables'])).toMatchObject({
      code: 2,
      err: 'ferry attach: --tables needs a value\n',
    });
    expect(await run('detach', ['--db', app.name, '--tables', 'notes'])).toMatchObject({
      code: 2,
      err: 'ferry detach: unknown option "--tables"\n',
    });
    expect(await run('attach', ['--tables', 'notes', '--db', join(dir, 'nope.db')])).toMatchObject({
      code: 2,
      err: `ferry attach: ${join(dir, 'nope.db')}: no such file\n`,
    });
    expect(readAttachment(app)).toBeNull();

    const ok = await run('attach', ['--db', app.name, '--tables=notes', '--json']);
    expect(ok.code, ok.err).toBe(0);
    expect((JSON.parse(ok.out) as { selection: unknown }).selection).toEqual(['notes']);
    // A refusal is exit 2, one line on stderr.
    expect(await run('attach', ['--db', app.name, '--tables', 'missing'])).toEqual({
      code: 2,
      out: '',
      err: 'ferry attach: cannot attach: missing: no such table\n',
    });
    const gone = await run('detach', ['--db', app.name, '--force']);
    expect(gone).toMatchObject({ code: 0, err: '' });
    expect(gone.out).toMatch(/^detached .*: removed 3 trigger\(s\), _ferry_outbox and _ferry_meta\n$/);
    expect((await run('attach', ['--help'])).out).toMatch(/^usage: ferry attach --db FILE/);
  });
});

function readMeta(db: Database.Database, key: string): string {
  return (db.prepare('SELECT value FROM _ferry_meta WHERE key = ?').get(key) as { value: string }).value;
}
