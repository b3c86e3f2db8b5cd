/**
 * Reads an app's SQLite schema and decides, table by table, whether Ferry can
 * sync it and how: which columns become fields, which make the entity id,
 * whether SQLite mints the keys. A table it cannot sync comes back with the
 * reason; nothing is dropped without a word. Read-only.
 */
import type Database from 'better-sqlite3';
import { COLLECTION_PATTERN, DEFAULT_LIMITS, MAX_FIELD_NAME_LENGTH } from '@ferry/contracts';
import { affinityOf, type Affinity, type KeySpec } from './sqlite-values.js';

/** Everything Ferry adds to an app's database starts with this. */
export const FERRY_PREFIX = '_ferry_';

export interface ColumnSpec {
  readonly name: string;
  readonly affinity: Affinity;
  /** The DEFAULT clause as SQL text, or null. */
  readonly defaultSql: string | null;
}

export interface TableSpec extends KeySpec {
  /** The table name, which is also the collection. */
  readonly table: string;
  /** Synced columns (all but generated ones), in table order; key columns included. */
  readonly columns: readonly ColumnSpec[];
  /** INTEGER PRIMARY KEY (a rowid alias): SQLite mints the ids, so two devices can mint the same one. */
  readonly mintedKeys: boolean;
  readonly autoincrement: boolean;
  readonly withoutRowid: boolean;
  readonly strict: boolean;
  /** Worth knowing, not blocking (generated columns left out, app triggers, nullable keys …). */
  readonly notes: readonly string[];
}

export interface TableProblem {
  readonly table: string;
  readonly reason: string;
}

export interface Inspection {
  readonly tables: TableSpec[];
  readonly unsupported: TableProblem[];
}

interface TableListRow {
  schema: string;
  name: string;
  type: string;
  ncol: number;
  wr: number;
  strict: number;
}

interface XInfoRow {
  cid: number;
  name: string;
  type: string;
  notnull: number;
  dflt_value: string | null;
  pk: number;
  hidden: number;
}

const quoteId = (name: string): string => `"${name.replaceAll('"', '""')}"`;

/** Inspects every table of the main schema except SQLite's and Ferry's own. */
export function inspectSchema(db: Database.Database): Inspection {
  const tables: TableSpec[] = [];
  const unsupported: TableProblem[] = [];
  const list = db.prepare<[], TableListRow>('PRAGMA main.table_list').all();
  const appTriggers = new Map<string, string[]>();
  for (const t of db
    .prepare<[], { name: string; tbl_name: string }>(
      "SELECT name, tbl_name FROM main.sqlite_schema WHERE type = 'trigger'",
    )
    .all()) {
    if (t.name.startsWith(FERRY_PREFIX)) continue;
    appTriggers.set(t.tbl_name, [...(appTriggers.get(t.tbl_name) ?? []), t.name]);
  }
  for (const t of list.sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0))) {
    if (t.schema !== 'main' || t.name.startsWith('sqlite_') || t.name.startsWith(FERRY_PREFIX)) continue;
    if (t.type === 'view') continue;
    const verdict = inspectTable(db, t, appTriggers.get(t.name) ?? []);
    if ('reason' in verdict) unsupported.push(verdict);
    else tables.push(verdict);
  }
  return { tables, unsupported };
}

function inspectTable(db: Database.Database, t: TableListRow, triggers: string[]): TableSpec | TableProblem {
  const table = t.name;
  const problem = (reason: string): TableProblem => ({ table, reason });
  if (t.type === 'virtual') return problem('a virtual table (SQLite cannot put triggers on it)');
  if (t.type === 'shadow')
    return problem('a shadow table that a virtual table manages (sync the data it indexes instead)');
  if (t.type !== 'table') return problem(`of type "${t.type}"`);
  if (!COLLECTION_PATTERN.test(table)) {
    return problem('its name is not a valid collection name ([A-Za-z_][A-Za-z0-9_]{0,63})');
  }
  const info = db.prepare<[], XInfoRow>(`PRAGMA main.table_xinfo(${quoteId(table)})`).all();
  const strict = t.strict === 1;
  const notes: string[] = [];
  const generated = info.filter((c) => c.hidden === 2 || c.hidden === 3).map((c) => c.name);
  if (info.some((c) => c.hidden === 1)) return problem('it has hidden columns');
  const columns = info.filter((c) => c.hidden === 0);
  const pkColumns = columns.filter((c) => c.pk > 0).sort((a, b) => a.pk - b.pk);
  if (pkColumns.length === 0) {
    return problem('no PRIMARY KEY (rows need a stable identity; declare a primary key, ideally TEXT/uuid)');
  }
  for (const c of columns) {
    if (c.name === '__proto__' || c.name.length === 0 || c.name.length > MAX_FIELD_NAME_LENGTH) {
      return problem(
        `column ${JSON.stringify(c.name.slice(0, 40))} cannot be a field name (1-${MAX_FIELD_NAME_LENGTH} characters, not "__proto__")`,
      );
    }
  }
  if (columns.length > DEFAULT_LIMITS.maxFieldsPerAction) {
    return problem(
      `${columns.length} columns, more than the ${DEFAULT_LIMITS.maxFieldsPerAction} fields an action may carry`,
    );
  }
  const withoutRowid = t.wr === 1;
  const pkIndex = db
    .prepare<[], { name: string; origin: string }>(`PRAGMA main.index_list(${quoteId(table)})`)
    .all()
    .find((i) => i.origin === 'pk');
  if (pkIndex !== undefined) {
    // A key compared under NOCASE (or any collation but BINARY) would make "A" and "a" two
    // entities for one row; the entity id is compared byte for byte.
    const keyCols = db
      .prepare<[], { name: string | null; coll: string; key: number }>(
        `PRAGMA main.index_xinfo(${quoteId(pkIndex.name)})`,
      )
      .all()
      .filter((c) => c.key === 1);
    const folded = keyCols.find((c) => c.coll.toUpperCase() !== 'BINARY');
    if (folded !== undefined) {
      return problem(
        `primary key column ${folded.name ?? '?'} uses collation ${folded.coll}: keys that differ only in case would be two entities but one row`,
      );
    }
  }
  // A rowid alias is the one INTEGER PRIMARY KEY that has no separate key index.
  const mintedKeys =
    !withoutRowid &&
    pkColumns.length === 1 &&
    pkIndex === undefined &&
    (pkColumns[0]?.type.toUpperCase() ?? '') === 'INTEGER';
  const sql =
    db
      .prepare<[string], { sql: string | null }>("SELECT sql FROM main.sqlite_schema WHERE type = 'table' AND name = ?")
      .get(table)?.sql ?? '';
  const autoincrement = mintedKeys && /\bAUTOINCREMENT\b/i.test(sql);
  if (mintedKeys) {
    notes.push(
      `INTEGER PRIMARY KEY${autoincrement ? ' AUTOINCREMENT' : ''}: two devices can mint the same id; such a collision is reported as a conflict and not merged (prefer TEXT/uuid keys)`,
    );
  }
  if (!withoutRowid && !mintedKeys && pkColumns.some((c) => c.notnull === 0)) {
    notes.push('primary key allows NULL (a rowid-table quirk): a row with a NULL key is reported and not synced');
  }
  if (generated.length > 0) {
    notes.push(`generated column(s) ${generated.join(', ')} not synced: each device computes them`);
  }
  if (triggers.length > 0) {
    notes.push(
      `app trigger(s) ${triggers.join(', ')} also run when Ferry writes remote changes; what they write is not captured`,
    );
  }
  const spec = (c: XInfoRow): ColumnSpec => ({
    name: c.name,
    affinity: affinityOf(c.type, strict),
    defaultSql: c.dflt_value,
  });
  return {
    table,
    columns: columns.map(spec),
    pk: pkColumns.map((c) => ({ name: c.name, affinity: affinityOf(c.type, strict) })),
    mintedKeys,
    autoincrement,
    withoutRowid,
    strict,
    notes,
  };
}
