/**
 * Writes a checkpoint's records and watermarks: the writer thread's part of a
 * checkpoint, and the store's own while it opens (before the writer starts).
 * The caller holds the transaction.
 */
import { Buffer } from 'node:buffer';
import type Database from 'better-sqlite3';
import type { Statement } from 'better-sqlite3';
import type { CheckpointWrite } from './writer-protocol.js';

export interface RecordStatements {
  readonly upsertEntity: Statement<[number, string, string, number, number, Buffer]>;
  readonly setRecordsThrough: Statement<[number, number]>;
}

export function recordStatements(db: Database.Database): RecordStatements {
  return {
    // The row text arrives as UTF-8 bytes; CAST stores it as TEXT, as it was written before.
    upsertEntity: db.prepare<[number, string, string, number, number, Buffer]>(
      `INSERT INTO entities (tenant, collection, entity_id, seq, deleted, json) VALUES (?, ?, ?, ?, ?, CAST(? AS TEXT))
       ON CONFLICT (tenant, collection, entity_id) DO UPDATE SET seq = excluded.seq, deleted = excluded.deleted, json = excluded.json`,
    ),
    setRecordsThrough: db.prepare<[number, number]>('UPDATE tenants SET records_through = ? WHERE id = ?'),
  };
}

export function writeRecords(
  s: RecordStatements,
  m: Pick<CheckpointWrite, 'meta' | 'collections' | 'entityIds' | 'json' | 'watermarks'>,
): void {
  const json = Buffer.from(m.json);
  const meta = m.meta;
  let from = 0;
  for (let i = 0; i < m.entityIds.length; i++) {
    const end = meta[i * 4 + 3] as number;
    s.upsertEntity.run(
      meta[i * 4] as number,
      m.collections[i] as string,
      m.entityIds[i] as string,
      meta[i * 4 + 1] as number,
      meta[i * 4 + 2] as number,
      json.subarray(from, end),
    );
    from = end;
  }
  const w = m.watermarks;
  for (let i = 0; i < w.length; i += 2) s.setRecordsThrough.run(w[i + 1] as number, w[i] as number);
}
