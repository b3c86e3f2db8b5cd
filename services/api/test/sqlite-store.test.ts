// Runs the store conformance suite against the SQLite store on a real file,
// plus the properties only SQLite has (pragmas, file reopen).
import { afterEach, describe, expect, it } from 'vitest';
import Database from 'better-sqlite3';
import { join } from 'node:path';
import type { TenantId } from '@ferry/contracts';
import { PolicyBook } from '@ferry/domain';
import { makeTempDir, type TempDir } from '@ferry/testing';
import { SqliteStore } from '../src/store/sqlite-store.js';
import { openSchema } from '../src/store/sqlite-schema.js';
import { describeStoreConformance } from './store-conformance.js';
import { simClient } from './support/actions.js';

describeStoreConformance('SqliteStore', async ({ policies }) => {
  const dir = await makeTempDir('ferry-store-');
  const path = join(dir.path, 'store.sqlite');
  let store = SqliteStore.open({ path, policies, purgeChunk: 2 });
  return {
    get store() {
      return store;
    },
    async reopen() {
      await store.close();
      store = SqliteStore.open({ path, policies, purgeChunk: 2 });
      return store;
    },
    async dispose() {
      await store.close();
      await dir.remove();
    },
  };
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
