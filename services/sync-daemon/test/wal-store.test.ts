// The WAL store against a real SQLite file: ordering, idempotency, atomic
// batches, paging, acknowledgement, rejection, compaction, restart.
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { uuidv7 } from 'uuidv7';
import type { ChangeEvent } from '@ferry/contracts';
import { WalStore } from '../src/wal/wal-store.js';

const NOW = 1_763_000_000_000;
let dir: string;
let stores: WalStore[];

function open(options: Partial<Parameters<typeof WalStore.open>[1]> = {}): WalStore {
  const store = WalStore.open(join(dir, 'wal.db'), { newId: uuidv7, now: () => NOW, ...options });
  stores.push(store);
  return store;
}

const change = (id: string, extra: Partial<ChangeEvent> = {}): ChangeEvent =>
  ({ collection: 'notes', id, op: 'update', fields: { title: `t${id}` }, ...extra }) as ChangeEvent;

beforeEach(() => {
  dir = mkdtempSync(join(tmpdir(), 'ferry-wal-'));
  stores = [];
});
afterEach(() => {
  for (const s of stores) s.close();
  rmSync(dir, { recursive: true, force: true });
});

describe('WalStore', () => {
  it('appends with clientSeq 1, 2, 3 … and strictly increasing hlc, in order', () => {
    const wal = open();
    const { appended } = wal.appendMany([change('1'), change('2'), change('3')]);
    expect(appended.map((a) => a.clientSeq)).toEqual([1, 2, 3]);
    expect(appended.every((a, i) => i === 0 || a.hlc > (appended[i - 1]?.hlc ?? 0))).toBe(true);
    expect(appended.every((a) => a.clientId === wal.clientId)).toBe(true);
    expect(wal.readPending(0, 10).map((a) => a.entityId)).toEqual(['1', '2', '3']);
    expect(wal.pendingCount()).toBe(3);
  });

  it('skips an eventId seen before, within a batch and across batches', () => {
    const wal = open();
    expect(wal.appendMany([change('1', { eventId: 'e1' }), change('1', { eventId: 'e1' })])).toMatchObject({
      duplicates: 1,
    });
    expect(wal.appendMany([change('1', { eventId: 'e1' }), change('2', { eventId: 'e2' })]).duplicates).toBe(1);
    expect(wal.pendingCount()).toBe(2);
  });

  it('stores a batch whole or not at all, and leaves no clientSeq hole behind', () => {
    // The second hlc of the batch cannot be encoded: the whole batch must roll back.
    let readings = 0;
    let broken = true;
    const wal = open({ now: () => (broken && ++readings === 2 ? Number.MAX_SAFE_INTEGER : NOW) });
    expect(() => wal.appendMany([change('1'), change('2')])).toThrow(/safe-integer/);
    expect(wal.pendingCount()).toBe(0);
    broken = false;
    // The server would call a skipped clientSeq a gap.
    expect(wal.appendMany([change('3')]).appended[0]?.clientSeq).toBe(1);
    expect(wal.pendingCount()).toBe(1);
  });

  it('pages pending entries in clientSeq order without reading the rest', () => {
    const wal = open();
    wal.appendMany(Array.from({ length: 25 }, (_, i) => change(String(i))));
    const first = wal.readPending(0, 10);
    const second = wal.readPending(first.at(-1)?.clientSeq ?? 0, 10);
    const third = wal.readPending(second.at(-1)?.clientSeq ?? 0, 10);
    expect([first.length, second.length, third.length]).toEqual([10, 10, 5]);
    expect([...first, ...second, ...third].map((a) => a.clientSeq)).toEqual(
      Array.from({ length: 25 }, (_, i) => i + 1),
    );
  });

  it('acknowledged and rejected entries leave the pending queue; rejections keep their reason', () => {
    const wal = open();
    const [a, b, c] = wal.appendMany([change('1'), change('1'), change('2')]).appended;
    expect(wal.markAcknowledged([{ id: a!.id, seq: 7 }])).toBe(1);
    expect(wal.markAcknowledged([{ id: a!.id, seq: 7 }])).toBe(0); // idempotent
    expect(wal.settle(b!.id, { reason: 'stale: baseVersion 0, current version 3' })?.id).toBe(b!.id);
    expect(wal.settle(b!.id, { reason: 'again' })).toBeUndefined(); // only a pending one settles
    expect(wal.readPending(0, 10).map((x) => x.id)).toEqual([c!.id]);
    expect(wal.pendingFor('notes', '1')).toEqual([]);
    expect(wal.lookup(a!.id)).toMatchObject({ state: 'acknowledged', seq: 7 });
    expect(wal.lookup(b!.id)).toMatchObject({ state: 'rejected' });
  });

  it('compacts acknowledged entries at or below a seq, never pending ones', () => {
    const wal = open();
    const [a, b] = wal.appendMany([change('1'), change('2'), change('3')]).appended;
    wal.markAcknowledged([
      { id: a!.id, seq: 4 },
      { id: b!.id, seq: 9 },
    ]);
    expect(wal.compact(5)).toBe(1);
    expect(wal.lookup(a!.id)).toBeUndefined();
    expect(wal.lookup(b!.id)?.state).toBe('acknowledged');
    expect(wal.pendingCount()).toBe(1);
  });

  it('a held acknowledgement stays pending for the overlay but is not uploaded again [B2]', () => {
    const wal = open();
    const [a, b] = wal.appendMany([change('1'), change('2')]).appended;
    wal.holdAcknowledged([{ id: a?.id ?? '', seq: 9 }]);
    expect(wal.readPending(0, 10).map((x) => x.entityId)).toEqual(['1', '2']);
    expect(wal.readPendingSized(0, 10).map((x) => x.action.id)).toEqual([b?.id]);
    expect(wal.held().map((h) => h.seq)).toEqual([9]);
  });

  it('still skips an eventId whose row was compacted (a redelivery after a crash)', () => {
    const wal = open();
    const [a] = wal.appendMany([change('1', { eventId: 'e-1' })]).appended;
    wal.markAcknowledged([{ id: a?.id ?? '', seq: 5 }]);
    expect(wal.compact(5)).toBe(1);
    expect(wal.lookup(a?.id ?? '')).toBeUndefined();
    expect(wal.appendMany([change('1', { eventId: 'e-1' }), change('2', { eventId: 'e-2' })])).toMatchObject({
      duplicates: 1,
      appended: [{ entityId: '2' }],
    });
  });

  it('batched reads and settles answer as the single ones do', () => {
    const wal = open();
    const events = Array.from({ length: 1300 }, (_, i) => change(String(i % 700))); // > one chunk of keys
    const appended = wal.appendMany(events).appended;
    const keys = Array.from({ length: 700 }, (_, i) => ['notes', String(i)] as const);
    const many = wal.pendingForMany([...keys, ['notes', '3'], ['notes', 'none'], ['other', '1']]);
    expect(many.size).toBe(700);
    for (const [c, id] of keys) expect(many.get(`${c}\u0000${id}`)).toEqual(wal.pendingFor(c, id));
    // Acknowledged with their seqs in one statement; one unknown id and one already settled are left out.
    const acks = appended.slice(0, 600).map((a, i) => ({ id: a.id, seq: 100 + i }));
    expect(wal.settle(appended[0]!.id, { seq: 100 })).toEqual(appended[0]);
    const settled = wal.settleAcknowledged([...acks, { id: uuidv7(), seq: 9 }]);
    expect(settled.size).toBe(599);
    expect(settled.get(appended[1]!.id)).toEqual(appended[1]);
    expect(wal.pendingCount()).toBe(700);
    expect(wal.lookup(appended[599]!.id)).toMatchObject({ state: 'acknowledged', seq: 699 });
    expect(wal.pendingFor('notes', '1').map((a) => a.clientSeq)).toEqual([702]);
    // An id acknowledged twice in one batch keeps the first seq, as one by one.
    const last = appended.at(-1) as (typeof appended)[number];
    expect(wal.settleAcknowledged([last, last].map((a, i) => ({ id: a.id, seq: 5000 + i }))).size).toBe(1);
    expect(wal.lookup(last.id)).toMatchObject({ state: 'acknowledged', seq: 5000 });
  });

  it('keeps clientId, clientSeq and the clock across a restart, even after compaction', () => {
    const first = open();
    const [a] = first.appendMany([change('1'), change('2')]).appended;
    first.markAcknowledged([{ id: a!.id, seq: 1 }]);
    first.compact(1);
    const lastHlc = first.clock.last;
    first.close();
    const again = open({ now: () => NOW - 3_600_000 }); // the wall clock went back an hour
    expect(again.clientId).toBe(first.clientId);
    const [next] = again.appendMany([change('3')]).appended;
    expect(next!.clientSeq).toBe(3);
    expect(next!.hlc).toBeGreaterThan(lastHlc);
  });

  it('refuses a dataDir that belongs to another clientId', () => {
    open().close();
    expect(() => open({ clientId: '0190a000-0000-7000-8000-00000000000f' })).toThrow(/holds the WAL of client/);
  });

  it('keeps dead letters with their reason', () => {
    const wal = open();
    wal.deadLetter({
      sourceRef: '17',
      code: 'invalid',
      reason: 'changes: fields.title: expected string',
      payload: '{"x":1}',
    });
    expect(wal.deadLetterCount()).toBe(1);
  });

  it('a damaged row is an internal error that names it, not a crash further in', () => {
    const wal = open();
    wal.appendMany([change('1'), change('2')]);
    wal.db.prepare('UPDATE wal SET body = \'{"op":"teleport"}\' WHERE client_seq = 2').run();
    expect(() => wal.readPending(0, 10)).toThrow(
      expect.objectContaining({ code: 'internal', message: expect.stringContaining('wal row 2') }),
    );
    expect(wal.readPending(0, 1).map((a) => a.clientSeq)).toEqual([1]); // the rows around it still read
  });

  it('a row read again after its text changed is parsed again, not served from the decode cache', () => {
    const wal = open();
    wal.appendMany([change('1')]);
    const [first] = wal.readPending(0, 1);
    const rewritten = JSON.stringify({ ...first, fields: { title: 'other' } });
    wal.db.prepare('UPDATE wal SET body = ? WHERE client_seq = 1').run(rewritten);
    expect(wal.readPending(0, 1)).toMatchObject([{ clientSeq: 1, fields: { title: 'other' } }]);
    wal.db.prepare('UPDATE wal SET body = \'{"op":"teleport"}\' WHERE client_seq = 1').run();
    expect(() => wal.readPending(0, 1)).toThrow(expect.objectContaining({ code: 'internal' }));
  });

  it('upgrades a version-1 file in place and refuses one of a version it does not know', () => {
    const schemaVersion = (w: WalStore) =>
      w.db.prepare("SELECT value FROM meta WHERE key = 'schema_version'").pluck().get();
    const first = open();
    first.appendMany([change('1')]);
    first.db.prepare("UPDATE meta SET value = '1' WHERE key = 'schema_version'").run();
    first.close();
    const upgraded = open();
    expect(schemaVersion(upgraded)).toBe('2');
    expect(upgraded.readPending(0, 10).map((a) => a.entityId)).toEqual(['1']);
    upgraded.db.prepare("UPDATE meta SET value = '9' WHERE key = 'schema_version'").run();
    upgraded.close();
    expect(() => open()).toThrow(/WAL schema version 9, this build reads 2/);
  });

  it('a damaged schema version is an internal error that names it', () => {
    const first = open();
    first.db.prepare("UPDATE meta SET value = 'two' WHERE key = 'schema_version'").run();
    first.close();
    expect(() => open()).toThrow(
      expect.objectContaining({ code: 'internal', message: expect.stringContaining('meta schema_version') }),
    );
  });
});
