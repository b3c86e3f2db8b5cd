/**
 * Checks that a SQLite file the daemon will use can be read, before anything
 * opens it for writing: a damaged or foreign file becomes one line naming the
 * file, not a driver error deep in start-up. Opens read-only; writes nothing.
 */
import { existsSync, statSync } from 'node:fs';
import Database from 'better-sqlite3';

export type StoreCheck =
  | { ok: true; exists: false }
  | { ok: true; exists: true; bytes: number; detail: string }
  | { ok: false; message: string };

/**
 * `thorough` runs `PRAGMA quick_check` (reads every page: for `ferry doctor`);
 * otherwise only the header and schema are read (cheap enough for every start).
 */
export function checkSqliteFile(path: string, options: { thorough?: boolean } = {}): StoreCheck {
  if (!existsSync(path)) return { ok: true, exists: false };
  let db: Database.Database | undefined;
  try {
    const stat = statSync(path);
    if (!stat.isFile()) return { ok: false, message: `${path}: not a regular file` };
    db = new Database(path, { readonly: true, fileMustExist: true });
    db.pragma('busy_timeout = 2000');
    const tables = db.prepare<[], { n: number }>("SELECT count(*) AS n FROM sqlite_schema WHERE type = 'table'").get();
    let detail = `${tables?.n ?? 0} tables`;
    if (options.thorough === true) {
      const rows = db.pragma('quick_check') as { quick_check: string }[];
      const verdict = rows.map((r) => r.quick_check).join('; ');
      if (verdict !== 'ok') return { ok: false, message: `${path}: integrity check failed (${verdict})` };
      detail += ', integrity ok';
    }
    return { ok: true, exists: true, bytes: stat.size, detail };
  } catch (err) {
    const reason = err instanceof Error ? err.message : String(err);
    return { ok: false, message: `${path}: not a readable SQLite database (${reason})` };
  } finally {
    db?.close();
  }
}
