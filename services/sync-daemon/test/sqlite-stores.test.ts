// The materializer's stores over the daemon's SQLite file: the batched forms
// answer as the one-by-one forms do (more keys than one statement takes,
// absent keys, keys twice), and applied floors commit with their transaction.
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { uuidv7 } from 'uuidv7';
import { emptyRecord, type EntityKey } from '@ferry/domain';
import { SqliteRecordStore, SqliteSeenSet } from '../src/reconcile/sqlite-stores.js';
import { WalStore } from '../src/wal/wal-store.js';

let dir: string;
let wal: WalStore;

beforeEach(() => {
  dir = mkdtempSync(join(tmpdir(), 'ferry-stores-'));
  wal = WalStore.open(join(dir, 'daemon.db'), { newId: uuidv7, now: () => 1_763_000_000_000 });
});
afterEach(() => {
  wal.close();
  rmSync(dir, { recursive: true, force: true });
});

describe('SqliteRecordStore', () => {
  it('prefetch reads what get reads, for more keys than one statement binds, absent ones included', () => {
    const writer = new SqliteRecordStore(wal.db);
    const recs = Array.from({ length: 600 }, (_, i) => {
      const r = emptyRecord('notes', `n${i}`);
      r.version = i + 1;
      return r;
    });
    writer.changed(recs.filter((_, i) => i % 3 !== 0)); // every third one is never stored
    const keys: EntityKey[] = recs.map((r) => ['notes', r.id]);
    const batched = new SqliteRecordStore(wal.db);
    batched.prefetch([...keys, ['notes', 'n1'], ['other', 'n1']]);
    const single = new SqliteRecordStore(wal.db);
    for (const [c, id] of keys) {
      const got = batched.get(c, id);
      expect(got?.version).toBe(single.get(c, id)?.version);
      expect(got === undefined).toBe(Number(id.slice(1)) % 3 === 0);
    }
    expect(batched.get('other', 'n1')).toBeUndefined();
  });
});

describe('SqliteSeenSet', () => {
  it('writes a floor moved in a transaction at flush, and none of a rolled-back one', () => {
    const seen = new SqliteSeenSet(wal.db);
    const client = uuidv7();
    wal.db.transaction(() => {
      expect(seen.add(client, 1)).toBe(true);
      expect(seen.add(client, 2)).toBe(true);
      seen.flush();
    })();
    expect(new SqliteSeenSet(wal.db).has(client, 2)).toBe(true);
    expect(() =>
      wal.db.transaction(() => {
        seen.add(client, 3);
        seen.flush();
        throw new Error('rolled back');
      })(),
    ).toThrow('rolled back');
    seen.reload();
    expect(seen.has(client, 3)).toBe(false);
    expect(new SqliteSeenSet(wal.db).has(client, 2)).toBe(true);
    // Outside a transaction a floor is written at once.
    seen.add(client, 3);
    expect(new SqliteSeenSet(wal.db).has(client, 3)).toBe(true);
  });

  it('a damaged floor row is an internal error that names it, not a floor of NaN', () => {
    const client = uuidv7();
    wal.db.prepare('INSERT INTO applied_floor (client_id, floor) VALUES (?, ?)').run(client, 'lots');
    expect(() => new SqliteSeenSet(wal.db)).toThrow(
      expect.objectContaining({ code: 'internal', message: expect.stringContaining(`applied_floor row ${client}`) }),
    );
  });
});
