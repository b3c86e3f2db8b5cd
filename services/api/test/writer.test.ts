// The store's writer (what its thread runs), driven in-process with the WAL
// sync in the test's hands: a push is committed at once but answered only
// after a WAL sync that started after its commit; checkpoints are answered at
// commit; one sync covers every push committed before it started; a failed
// sync or transaction fails what it covers and everything after, until reset.
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import Database from 'better-sqlite3';
import { join } from 'node:path';
import { setImmediate as nextTurn } from 'node:timers/promises';
import { makeTempDir, type TempDir } from '@ferry/testing';
import { openSchema } from '../src/store/sqlite-schema.js';
import { Writer } from '../src/store/writer.js';
import type { PushWrite, WriterReply, WriterRequest } from '../src/store/writer-protocol.js';

let dir: TempDir;
let path: string;
let db: Database.Database;
let writer: Writer | null;
let replies: WriterReply[];
let syncs: { walPath: string; done: (err: Error | null) => void }[];

beforeEach(async () => {
  dir = await makeTempDir('ferry-writer-');
  path = join(dir.path, 's.sqlite');
  db = new Database(path);
  openSchema(db);
  replies = [];
  syncs = [];
  writer = new Writer(
    { path },
    { post: (r) => replies.push(r), syncWal: (walPath, done) => syncs.push({ walPath, done }) },
  );
});

afterEach(async () => {
  writer?.receive({ op: 'close', n: 999 });
  await nextTurn();
  db.close();
  await dir.remove();
});

async function send(message: WriterRequest): Promise<void> {
  writer?.receive(message);
  await nextTurn();
}

/** A push of `count` rows as JSON text, from clientSeq `from`. */
function push(n: number, firstSeq: number, count: number, extra: Partial<PushWrite> = {}): PushWrite {
  const rows = new Float64Array(count * 3);
  const texts: string[] = [];
  for (let i = 0; i < count; i++) {
    rows[i * 3] = firstSeq + i;
    rows[i * 3 + 1] = -1;
    texts.push(JSON.stringify({ n, i, seq: firstSeq + i }));
  }
  return {
    op: 'push',
    n,
    tenantId: 1,
    newTenant: firstSeq === 1 ? 'acme' : null,
    clientId: 'c1',
    high: firstSeq + count - 1,
    now: 0,
    firstSeq,
    rows,
    bytes: null,
    texts,
    rejections: [],
    ...extra,
  };
}

const answered = () => replies.map((r) => [r.n, r.ok]);
const stored = () => db.prepare('SELECT COUNT(*) FROM actions').pluck().get() as number;

describe('Writer', () => {
  it('commits a push at once but answers it only after a WAL sync that started after the commit', async () => {
    await send(push(1, 1, 3));
    expect(stored()).toBe(3); // committed: visible to other connections
    expect(answered()).toEqual([]);
    expect(syncs.map((s) => s.walPath)).toEqual([`${path}-wal`]);

    // While that sync runs: a checkpoint is answered at commit, another push waits for the next sync.
    await send({
      op: 'checkpoint',
      n: 2,
      meta: new Float64Array([1, 3, 0, 2]),
      collections: ['notes'],
      entityIds: ['e'],
      json: new TextEncoder().encode('{}').buffer,
      watermarks: [1, 3],
    });
    await send(push(3, 4, 2));
    expect(answered()).toEqual([[2, true]]);
    expect(syncs).toHaveLength(1);

    syncs[0]?.done(null);
    expect(answered()).toEqual([
      [2, true],
      [1, true],
    ]);
    expect(syncs).toHaveLength(2); // the next one, for push 3
    syncs[1]?.done(null);
    expect(answered().at(-1)).toEqual([3, true]);
  });

  it('one sync covers every push committed before it started', async () => {
    await send(push(1, 1, 1));
    await send(push(2, 2, 1));
    await send(push(3, 3, 1));
    syncs[0]?.done(null);
    expect(answered()).toEqual([[1, true]]);
    expect(syncs).toHaveLength(2);
    syncs[1]?.done(null);
    expect(answered()).toEqual([
      [1, true],
      [2, true],
      [3, true],
    ]);
    expect(syncs).toHaveLength(2);
  });

  it('a failed sync fails the pushes it covers and everything after, until reset', async () => {
    await send(push(1, 1, 1));
    syncs[0]?.done(Object.assign(new Error('EIO: i/o error, fdatasync'), { code: 'EIO' }));
    expect(replies).toEqual([{ n: 1, ok: false, code: 'EIO', message: 'EIO: i/o error, fdatasync' }]);
    await send(push(2, 2, 1));
    expect(replies.at(-1)).toMatchObject({ n: 2, ok: false, code: 'EIO' });
    expect(stored()).toBe(1); // refused, not applied
    await send({ op: 'reset', n: 3 });
    await send(push(4, 2, 1));
    syncs.at(-1)?.done(null);
    expect(answered().slice(-2)).toEqual([
      [3, true],
      [4, true],
    ]);
    expect(stored()).toBe(2);
  });

  it('pushes committed while a sync fails are failed too, never answered by a later sync', async () => {
    await send(push(1, 1, 1));
    await send(push(2, 2, 1)); // committed while the first sync runs
    syncs[0]?.done(Object.assign(new Error('EIO: i/o error, fdatasync'), { code: 'EIO' }));
    expect(answered()).toEqual([
      [1, false],
      [2, false],
    ]);
    expect(syncs).toHaveLength(1); // no second sync could vouch for push 2
  });

  it('refuses a batch that does not start at the head, and everything after it, until reset', async () => {
    await send(push(1, 1, 2));
    syncs[0]?.done(null);
    await send(push(2, 5, 1)); // the head is 2
    expect(replies.at(-1)).toMatchObject({ n: 2, ok: false });
    expect(replies.at(-1)).toMatchObject({ message: expect.stringContaining('head is 2') as unknown });
    await send(push(3, 3, 1)); // right, but after a failure
    expect(replies.at(-1)).toMatchObject({ n: 3, ok: false });
    expect(stored()).toBe(2);
  });

  it('closes only once the last sync is done', async () => {
    await send(push(1, 1, 1));
    await send({ op: 'close', n: 2 });
    expect(answered()).toEqual([]);
    syncs[0]?.done(null);
    expect(answered()).toEqual([
      [1, true],
      [2, true],
    ]);
    writer = null;
  });
});
