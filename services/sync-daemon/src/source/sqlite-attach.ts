/**
 * Installs and removes Ferry's capture in an app's SQLite file: per synced
 * table, AFTER INSERT / UPDATE / DELETE triggers that copy each change into
 * `_ferry_outbox` in the same transaction as the app's write, plus
 * `_ferry_meta` (attach id, table selection, installed layout). Detach removes
 * exactly what attach added. Never touches the app's rows or its own schema.
 */
import type Database from 'better-sqlite3';
import { collectionNameSchema, decodeStored, ErrorCode, FerryError, parseWith, seqSchema } from '@ferry/contracts';
import {
  FERRY_PREFIX,
  inspectSchema,
  type ColumnSpec,
  type Inspection,
  type TableProblem,
  type TableSpec,
} from './sqlite-schema.js';
import type { Affinity } from './sqlite-values.js';

export const OUTBOX = `${FERRY_PREFIX}outbox`;
export const META = `${FERRY_PREFIX}meta`;
/** Bumped when the trigger or outbox format changes; a file of another format is re-installed. */
export const ATTACH_FORMAT = 1;

export const quoteId = (name: string): string => `"${name.replaceAll('"', '""')}"`;
const quoteLit = (text: string): string => `'${text.replaceAll("'", "''")}'`;

/** What the outbox rows of one attachment mean: read back from `_ferry_meta`. */
export interface Attachment {
  readonly attachId: string;
  /** The tables asked for (`--tables`), or null for every table with a primary key. */
  readonly selection: readonly string[] | null;
  /** The tables whose triggers are installed, as they were when installed. */
  readonly layout: readonly TableSpec[];
}

export interface AttachReport extends Attachment {
  readonly unsupported: readonly TableProblem[];
  /** Tables named in the selection that do not exist (yet). */
  readonly missing: readonly string[];
  /** Tables whose triggers were (re)installed, and columns new since the last install. */
  readonly installed: readonly { table: string; addedColumns: readonly string[]; fresh: boolean }[];
  readonly removed: readonly string[];
  /** Rows put into the outbox for rows that existed before capture (first install, new columns). */
  readonly backfilled: number;
}

export interface AttachOptions {
  /** Tables to sync; absent: the selection stored by an earlier attach, else every table with a key. */
  readonly tables?: readonly string[] | undefined;
  readonly newId: () => string;
  /**
   * The clientId of the daemon that will capture this file. One daemon per file:
   * each keeps its own watermark, and one cleaning the outbox would take rows
   * from under another.
   */
  readonly owner?: string;
}

const META_SQL = `CREATE TABLE IF NOT EXISTS ${quoteId(META)} (key TEXT PRIMARY KEY, value TEXT NOT NULL) WITHOUT ROWID`;
// INTEGER PRIMARY KEY without AUTOINCREMENT (no sqlite_sequence row to leave behind on detach).
// Ids only grow because the daemon never deletes the highest row it has captured.
const OUTBOX_SQL = `CREATE TABLE IF NOT EXISTS ${quoteId(OUTBOX)} (
  id INTEGER PRIMARY KEY,
  tbl TEXT NOT NULL,
  op TEXT NOT NULL,
  pk TEXT NOT NULL,
  data TEXT
)`;

export function readAttachment(db: Database.Database): Attachment | null {
  const exists = db
    .prepare<[string], { n: number }>("SELECT count(*) AS n FROM main.sqlite_schema WHERE type = 'table' AND name = ?")
    .get(META);
  if (exists === undefined || exists.n === 0) return null;
  const meta = new Map(
    db
      .prepare<[], { key: string; value: string }>(`SELECT key, value FROM ${quoteId(META)}`)
      .all()
      .map((r) => [r.key, r.value]),
  );
  const attachId = meta.get('attach_id');
  if (attachId === undefined || Number(meta.get('format')) !== ATTACH_FORMAT) return null;
  return {
    attachId,
    selection: decodeMeta(db, 'selection', meta.get('selection') ?? 'null', isSelection),
    layout: decodeMeta(db, 'layout', meta.get('layout') ?? '[]', isLayout),
  };
}

/**
 * Reads back one JSON value Ferry wrote into `_ferry_meta`. A value that is
 * not valid JSON or not of the shape attach wrote (edited by hand, a torn
 * write) is refused with the way out, never used as if it were right.
 */
function decodeMeta<T>(db: Database.Database, key: string, text: string, check: (v: unknown) => v is T): T {
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch {
    value = undefined;
  }
  if (value === undefined || !check(value)) {
    throw new FerryError(
      ErrorCode.Invalid,
      `${db.name}: ${META}.${key} is damaged; run ferry detach --force, then ferry attach`,
    );
  }
  return value;
}

const AFFINITIES: readonly Affinity[] = ['INTEGER', 'TEXT', 'BLOB', 'REAL', 'NUMERIC'];

const isRecord = (v: unknown): v is Record<string, unknown> => typeof v === 'object' && v !== null && !Array.isArray(v);
const isStringArray = (v: unknown): v is string[] => Array.isArray(v) && v.every((x) => typeof x === 'string');
const isAffinity = (v: unknown): v is Affinity => AFFINITIES.includes(v as Affinity);

/** The stored `--tables` selection: null (every table) or a list of table names. */
function isSelection(v: unknown): v is string[] | null {
  return v === null || isStringArray(v);
}

function isColumn(v: unknown): v is ColumnSpec {
  return (
    isRecord(v) &&
    typeof v.name === 'string' &&
    isAffinity(v.affinity) &&
    (v.defaultSql === null || typeof v.defaultSql === 'string')
  );
}

/** The installed layout, exactly as installCapture wrote it (TableSpec[]). */
function isLayout(v: unknown): v is TableSpec[] {
  return (
    Array.isArray(v) &&
    v.every(
      (t) =>
        isRecord(t) &&
        parseWith(collectionNameSchema, t.table).ok &&
        Array.isArray(t.columns) &&
        t.columns.length > 0 &&
        t.columns.every(isColumn) &&
        Array.isArray(t.pk) &&
        t.pk.length > 0 &&
        t.pk.every((k) => isRecord(k) && typeof k.name === 'string' && isAffinity(k.affinity)) &&
        typeof t.mintedKeys === 'boolean' &&
        typeof t.autoincrement === 'boolean' &&
        typeof t.withoutRowid === 'boolean' &&
        typeof t.strict === 'boolean' &&
        isStringArray(t.notes),
    )
  );
}

/** `ferry attach`: installs (or brings up to date) capture in one IMMEDIATE transaction. */
export function attach(db: Database.Database, options: AttachOptions): AttachReport {
  return immediate(db, () => {
    const report = installCapture(db, options);
    const asked = options.tables;
    if (asked !== undefined) {
      const refused = report.unsupported.filter((p) => asked.includes(p.table));
      if (refused.length > 0 || report.missing.length > 0) {
        const reasons = [
          ...report.missing.map((t) => `${t}: no such table`),
          ...refused.map((p) => `${p.table}: ${p.reason}`),
        ];
        // Thrown inside the transaction: nothing was installed.
        throw new FerryError('invalid', `cannot attach: ${reasons.join('; ')}`);
      }
    }
    return report;
  });
}

/**
 * Installs or updates capture inside the caller's write transaction: tables
 * new to the selection (or whose triggers went missing, e.g. a migration
 * rebuilt the table) get triggers and have their rows put in the outbox as
 * inserts; tables whose columns changed get new triggers and, for each added
 * column, their non-default values as updates. The caller drains outbox rows
 * of the old layout first.
 */
export function installCapture(db: Database.Database, options: AttachOptions): AttachReport {
  db.exec(META_SQL);
  db.exec(OUTBOX_SQL);
  const before = readAttachment(db);
  const setMeta = db.prepare<[string, string]>(
    `INSERT INTO ${quoteId(META)} (key, value) VALUES (?, ?) ON CONFLICT (key) DO UPDATE SET value = excluded.value`,
  );
  const attachId = before?.attachId ?? options.newId();
  if (options.owner !== undefined) {
    assertOwner(db, options.owner);
    setMeta.run('daemon_client', options.owner);
  }
  const selection = options.tables ?? before?.selection ?? null;
  const inspection: Inspection = inspectSchema(db);
  const wanted = (t: string) => selection === null || selection.includes(t);
  const specs = inspection.tables.filter((t) => wanted(t.table));
  const unsupported = inspection.unsupported.filter((p) => wanted(p.table));
  const present = new Set([...inspection.tables, ...inspection.unsupported].map((t) => t.table));
  const missing = selection === null ? [] : selection.filter((t) => !present.has(t));
  const previous = new Map((before?.layout ?? []).map((t) => [t.table, t]));
  const installed: { table: string; addedColumns: string[]; fresh: boolean }[] = [];
  let backfilled = 0;
  for (const spec of specs) {
    const prior = previous.get(spec.table);
    const intact = prior !== undefined && triggersPresent(db, prior);
    if (intact && sameLayout(prior, spec)) continue;
    dropTriggers(db, spec.table);
    for (const sql of triggerSql(spec)) db.exec(sql);
    if (!intact) {
      // First install (or the table was rebuilt without our triggers): its rows so far become inserts.
      backfilled += db.prepare(initialScanSql(spec)).run().changes;
      installed.push({ table: spec.table, addedColumns: [], fresh: true });
    } else {
      const known = new Set(prior.columns.map((c) => c.name));
      const added = spec.columns.filter((c) => !known.has(c.name));
      if (added.length > 0)
        backfilled += db.prepare(backfillSql(spec, new Set(added.map((c) => c.name)))).run().changes;
      installed.push({ table: spec.table, addedColumns: added.map((c) => c.name), fresh: false });
    }
  }
  const removed: string[] = [];
  for (const old of previous.keys()) {
    if (specs.some((s) => s.table === old)) continue;
    dropTriggers(db, old);
    removed.push(old);
  }
  setMeta.run('format', String(ATTACH_FORMAT));
  setMeta.run('attach_id', attachId);
  setMeta.run('selection', JSON.stringify(selection));
  setMeta.run('layout', JSON.stringify(specs));
  return { attachId, selection, layout: specs, unsupported, missing, installed, removed, backfilled };
}

/** Throws unless the file is unclaimed or captured by the daemon of client `owner`. */
export function assertOwner(db: Database.Database, owner: string): void {
  if (readAttachment(db) === null) return;
  const current = db
    .prepare<[], { value: string }>(`SELECT value FROM ${quoteId(META)} WHERE key = 'daemon_client'`)
    .get()?.value;
  if (current !== undefined && current !== owner) {
    throw new FerryError(
      'invalid',
      `the file is captured by the daemon of client ${current}, not ${owner}: one daemon per file (run that daemon, or "ferry detach --force" first)`,
    );
  }
}

export interface DetachReport {
  readonly triggers: number;
  /** Outbox rows not yet captured by a daemon, dropped because of `force`. */
  readonly dropped: number;
}

/**
 * `ferry detach`: removes every trigger and table attach added, in one
 * transaction, so sqlite_schema is as it was before. Refuses while the outbox
 * holds changes no daemon has captured yet, unless forced.
 */
export function detach(db: Database.Database, options: { force?: boolean } = {}): DetachReport {
  return immediate(db, () => {
    const outboxExists =
      (db
        .prepare<[string], { n: number }>(
          "SELECT count(*) AS n FROM main.sqlite_schema WHERE type = 'table' AND name = ?",
        )
        .get(OUTBOX)?.n ?? 0) > 0;
    let uncaptured = 0;
    if (outboxExists) {
      const stored = db
        .prepare<[], { value: unknown }>(`SELECT value FROM ${quoteId(META)} WHERE key = 'captured_through'`)
        .get()?.value;
      let through = 0;
      try {
        // A BLOB put there by hand is not a number either (JSON of a Buffer is an object).
        const text = stored === undefined ? '0' : typeof stored === 'string' ? stored : JSON.stringify(stored);
        through = decodeStored(seqSchema, text, `meta captured_through`);
      } catch (err) {
        // Damaged: which rows a daemon has captured is unknown. Forced, every row counts as dropped.
        if (options.force !== true) {
          throw new FerryError(
            ErrorCode.Invalid,
            `cannot detach: ${db.name}: ${META}.captured_through is damaged (${(err as Error).message}), so it is unknown which changes reached a daemon (pass --force to drop them)`,
            { cause: err },
          );
        }
      }
      uncaptured =
        db.prepare<[number], { n: number }>(`SELECT count(*) AS n FROM ${quoteId(OUTBOX)} WHERE id > ?`).get(through)
          ?.n ?? 0;
      if (uncaptured > 0 && options.force !== true) {
        throw new FerryError(
          'invalid',
          `cannot detach: ${uncaptured} change(s) in the outbox are not known to have reached a daemon (run the daemon until it catches up and stop it, or pass --force to drop them)`,
        );
      }
    }
    const triggers = ferryTriggers(db);
    for (const t of triggers) db.exec(`DROP TRIGGER ${quoteId(t.name)}`);
    db.exec(`DROP TABLE IF EXISTS ${quoteId(OUTBOX)}`);
    db.exec(`DROP TABLE IF EXISTS ${quoteId(META)}`);
    return { triggers: triggers.length, dropped: uncaptured };
  });
}

/** Runs `fn` in BEGIN IMMEDIATE … COMMIT (rolled back if it throws). */
export function immediate<T>(db: Database.Database, fn: () => T): T {
  return db.transaction(fn).immediate();
}

function ferryTriggers(db: Database.Database, table?: string): { name: string }[] {
  return db
    .prepare<[], { name: string; tbl_name: string; sql: string }>(
      "SELECT name, tbl_name, sql FROM main.sqlite_schema WHERE type = 'trigger'",
    )
    .all()
    .filter(
      (t) =>
        t.name.startsWith(FERRY_PREFIX) &&
        t.sql.includes(quoteId(OUTBOX)) &&
        (table === undefined || t.tbl_name === table),
    );
}

function dropTriggers(db: Database.Database, table: string): void {
  for (const t of ferryTriggers(db, table)) db.exec(`DROP TRIGGER ${quoteId(t.name)}`);
}

function triggerNames(spec: TableSpec): string[] {
  const names = [
    `${FERRY_PREFIX}ai_${spec.table}`,
    `${FERRY_PREFIX}ak_${spec.table}`,
    `${FERRY_PREFIX}ad_${spec.table}`,
  ];
  if (nonKeyColumns(spec).length > 0) names.push(`${FERRY_PREFIX}au_${spec.table}`);
  return names;
}

function triggersPresent(db: Database.Database, spec: TableSpec): boolean {
  const have = new Set(ferryTriggers(db, spec.table).map((t) => t.name));
  return triggerNames(spec).every((n) => have.has(n));
}

function sameLayout(a: TableSpec, b: TableSpec): boolean {
  return JSON.stringify([a.columns, a.pk]) === JSON.stringify([b.columns, b.pk]);
}

function nonKeyColumns(spec: TableSpec): string[] {
  const keys = new Set(spec.pk.map((k) => k.name));
  return spec.columns.map((c) => c.name).filter((c) => !keys.has(c));
}

const join = (parts: string[]): string => (parts.length === 0 ? "''" : parts.join(" || ',' || "));

/** quote() of each key column, comma-separated: the outbox `pk`. */
function keySql(spec: TableSpec, row: string): string {
  return join(spec.pk.map((k) => `quote(${row}.${quoteId(k.name)})`));
}

/** quote() of every synced column, in layout order: the `data` of an insert. */
function rowSql(spec: TableSpec, row: string): string {
  return join(spec.columns.map((c) => `quote(${row}.${quoteId(c.name)})`));
}

/**
 * The SQL of the capture triggers. An update whose key is unchanged records
 * only the columns that changed (an empty slot for the rest) and nothing at
 * all when no column changed; one that changes the key is a delete of the old
 * entity and an insert of the new one.
 */
export function triggerSql(spec: TableSpec): string[] {
  const t = quoteId(spec.table);
  const name = quoteLit(spec.table);
  const out = quoteId(OUTBOX);
  const keys = new Set(spec.pk.map((k) => k.name));
  const keySame = spec.pk.map((k) => `NEW.${quoteId(k.name)} IS OLD.${quoteId(k.name)}`).join(' AND ');
  const others = nonKeyColumns(spec);
  const insert = `INSERT INTO ${out} (tbl, op, pk, data) VALUES (${name}, 'i', ${keySql(spec, 'NEW')}, ${rowSql(spec, 'NEW')});`;
  const remove = `INSERT INTO ${out} (tbl, op, pk) VALUES (${name}, 'd', ${keySql(spec, 'OLD')});`;
  const [ai, ak, ad, au] = triggerNames(spec).map(quoteId) as [string, string, string, string | undefined];
  const sql = [
    `CREATE TRIGGER ${ai} AFTER INSERT ON ${t} BEGIN ${insert} END`,
    `CREATE TRIGGER ${ak} AFTER UPDATE ON ${t} WHEN NOT (${keySame}) BEGIN ${remove} ${insert} END`,
    `CREATE TRIGGER ${ad} AFTER DELETE ON ${t} BEGIN ${remove} END`,
  ];
  if (au !== undefined) {
    const changed = others.map((c) => `NEW.${quoteId(c)} IS NOT OLD.${quoteId(c)}`).join(' OR ');
    const data = join(
      spec.columns.map((c) =>
        keys.has(c.name)
          ? "''"
          : `CASE WHEN NEW.${quoteId(c.name)} IS OLD.${quoteId(c.name)} THEN '' ELSE quote(NEW.${quoteId(c.name)}) END`,
      ),
    );
    sql.push(
      `CREATE TRIGGER ${au} AFTER UPDATE ON ${t} WHEN (${keySame}) AND (${changed}) BEGIN INSERT INTO ${out} (tbl, op, pk, data) VALUES (${name}, 'u', ${keySql(spec, 'NEW')}, ${data}); END`,
    );
  }
  return sql;
}

function initialScanSql(spec: TableSpec): string {
  const t = quoteId(spec.table);
  return `INSERT INTO ${quoteId(OUTBOX)} (tbl, op, pk, data) SELECT ${quoteLit(spec.table)}, 'i', ${keySql(spec, t)}, ${rowSql(spec, t)} FROM ${t}`;
}

/** Updates carrying the added columns of every row where they hold something other than their default. */
function backfillSql(spec: TableSpec, added: ReadonlySet<string>): string {
  const t = quoteId(spec.table);
  const dflt = (name: string) => spec.columns.find((c) => c.name === name)?.defaultSql ?? 'NULL';
  const data = join(
    spec.columns.map((c) =>
      added.has(c.name)
        ? `CASE WHEN ${t}.${quoteId(c.name)} IS (${dflt(c.name)}) THEN '' ELSE quote(${t}.${quoteId(c.name)}) END`
        : "''",
    ),
  );
  const where = [...added].map((c) => `${t}.${quoteId(c)} IS NOT (${dflt(c)})`).join(' OR ');
  return `INSERT INTO ${quoteId(OUTBOX)} (tbl, op, pk, data) SELECT ${quoteLit(spec.table)}, 'u', ${keySql(spec, t)}, ${data} FROM ${t} WHERE ${where}`;
}
