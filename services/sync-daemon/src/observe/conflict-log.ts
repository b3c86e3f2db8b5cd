/**
 * Reads the daemon's persisted conflict log (the `conflicts` table the
 * reconciler writes, see wal/schema.ts) for status screens: newest first,
 * each record parsed through its schema. Read-only; never writes the log.
 */
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import Database from 'better-sqlite3';
import { conflictRecordSchema, decodeWith, type LoggedConflict } from '@ferry/contracts';

/** The daemon's SQLite file inside its dataDir (SyncEngine opens it by this name too). */
export function daemonDbPath(dataDir: string): string {
  return join(dataDir, 'ferry-daemon.sqlite');
}

/** The newest `limit` conflicts of an open daemon database, and what was wrong with any damaged row. */
export function recentConflicts(
  db: Database.Database,
  limit: number,
): { conflicts: LoggedConflict[]; damaged: string[] } {
  const rows = db
    .prepare<[number], { id: number; at: number; record: string }>(
      'SELECT id, at, record FROM conflicts ORDER BY id DESC LIMIT ?',
    )
    .all(limit);
  const conflicts: LoggedConflict[] = [];
  const damaged: string[] = [];
  for (const row of rows) {
    const decoded = decodeWith(conflictRecordSchema, row.record, `conflicts row ${row.id}`);
    if (decoded.ok) conflicts.push({ at: row.at, conflict: decoded.value });
    else damaged.push(decoded.message);
  }
  return { conflicts, damaged };
}

export type ConflictLogRead =
  { ok: true; conflicts: LoggedConflict[]; damaged: string[] } | { ok: false; message: string };

/**
 * Opens the daemon's file read-only (safe beside a running daemon: WAL mode
 * lets readers and the writer proceed together) and reads its newest conflicts.
 */
export function readConflictLog(dataDir: string, limit: number): ConflictLogRead {
  const path = daemonDbPath(dataDir);
  if (!existsSync(path)) return { ok: false, message: `${path}: no such file (has the daemon run yet?)` };
  let db: Database.Database | undefined;
  try {
    db = new Database(path, { readonly: true, fileMustExist: true });
    db.pragma('busy_timeout = 2000');
    return { ok: true, ...recentConflicts(db, limit) };
  } catch (err) {
    return { ok: false, message: `${path}: ${err instanceof Error ? err.message : String(err)}` };
  } finally {
    db?.close();
  }
}
