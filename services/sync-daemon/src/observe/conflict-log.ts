/**
 * Reads the daemon's persisted conflict log (the `conflicts` table the
 * reconciler writes, see wal/schema.ts) for status screens: newest first,
 * each record parsed through its schema. Read-only; never writes the log.
 */
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import Database from 'better-sqlite3';
import { conflictRecordSchema, parseWith, type LoggedConflict } from '@ferry/contracts';

/** The daemon's SQLite file inside its dataDir (the name SyncEngine opens). */
export const DAEMON_DB_FILE = 'ferry-daemon.sqlite';

export function daemonDbPath(dataDir: string): string {
  return join(dataDir, DAEMON_DB_FILE);
}

/** The newest `limit` conflicts of an open daemon database; a damaged row is skipped, not fatal. */
export function recentConflicts(db: Database.Database, limit: number): LoggedConflict[] {
  const rows = db
    .prepare<[number], { at: number; record: string }>('SELECT at, record FROM conflicts ORDER BY id DESC LIMIT ?')
    .all(limit);
  const out: LoggedConflict[] = [];
  for (const row of rows) {
    let raw: unknown;
    try {
      raw = JSON.parse(row.record);
    } catch {
      continue;
    }
    const parsed = parseWith(conflictRecordSchema, raw);
    if (parsed.ok) out.push({ at: row.at, conflict: parsed.value });
  }
  return out;
}

export type ConflictLogRead = { ok: true; conflicts: LoggedConflict[] } | { ok: false; message: string };

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
    return { ok: true, conflicts: recentConflicts(db, limit) };
  } catch (err) {
    return { ok: false, message: `${path}: ${err instanceof Error ? err.message : String(err)}` };
  } finally {
    db?.close();
  }
}
