/**
 * `ferry attach --db FILE [--tables a,b]` and `ferry detach --db FILE`: install
 * or remove Ferry's capture in an app's SQLite file, with no daemon running
 * (the daemon's `source: {kind: "sqlite"}` attaches by itself too). Prints what
 * it did, table by table, including every table it will not sync and why.
 */
import { existsSync } from 'node:fs';
import Database from 'better-sqlite3';
import { uuidv7 } from 'uuidv7';
import { FerryError } from '@ferry/contracts';
import { attach, detach, type AttachReport } from './sqlite-attach.js';

const HELP = {
  attach: `usage: ferry attach --db FILE [--tables a,b] [--json]

Installs capture triggers and Ferry's outbox in an app's SQLite file, so a
daemon with "source": {"kind": "sqlite", "path": FILE} syncs its tables. Without
--tables, every table with a primary key is synced; tables that cannot be are
listed with the reason. Rows already in the tables are queued for the first sync.
Environment: FERRY_DB, FERRY_TABLES.`,
  detach: `usage: ferry detach --db FILE [--force]

Removes every trigger and table Ferry added to the file; the app's tables and
rows stay as they are. Refuses while captured changes have not reached a daemon
(--force drops them). Environment: FERRY_DB.`,
};

function flag(argv: readonly string[], name: string): string | undefined {
  const at = argv.indexOf(name);
  if (at >= 0) return argv[at + 1];
  const eq = argv.find((a) => a.startsWith(`${name}=`));
  return eq?.slice(name.length + 1);
}

export function runAttachCli(role: 'attach' | 'detach', argv: readonly string[]): number {
  if (argv.includes('--help') || argv.includes('-h')) {
    process.stdout.write(`${HELP[role]}\n`);
    return 0;
  }
  const path = flag(argv, '--db') ?? process.env.FERRY_DB;
  if (path === undefined || path === '') {
    process.stderr.write(`ferry ${role}: --db FILE is required (or set FERRY_DB)\n`);
    return 2;
  }
  if (!existsSync(path)) {
    process.stderr.write(`ferry ${role}: ${path}: no such file\n`);
    return 2;
  }
  const tablesArg = flag(argv, '--tables') ?? process.env.FERRY_TABLES;
  const tables = tablesArg
    ?.split(',')
    .map((t) => t.trim())
    .filter((t) => t !== '');
  let db: Database.Database | undefined;
  try {
    db = new Database(path, { fileMustExist: true });
    db.pragma('busy_timeout = 5000');
    if (role === 'detach') {
      const r = detach(db, { force: argv.includes('--force') });
      process.stdout.write(
        `detached ${path}: removed ${r.triggers} trigger(s), ${'_ferry_outbox'} and _ferry_meta${r.dropped > 0 ? `; dropped ${r.dropped} uncaptured change(s)` : ''}\n`,
      );
      return 0;
    }
    const report = attach(db, { ...(tables === undefined ? {} : { tables }), newId: uuidv7 });
    process.stdout.write(argv.includes('--json') ? `${JSON.stringify(report)}\n` : describe(path, report));
    return 0;
  } catch (err) {
    const message = err instanceof Error ? err.message : String(err);
    process.stderr.write(`ferry ${role}: ${message}\n`);
    return err instanceof FerryError ? 2 : 1;
  } finally {
    db?.close();
  }
}

function describe(path: string, r: AttachReport): string {
  const lines = [`attached ${path} (attach id ${r.attachId})`];
  if (r.layout.length === 0) lines.push('  no table is synced');
  for (const t of r.layout) {
    const key = t.pk.map((k) => `${k.name} ${k.affinity}`).join(', ');
    lines.push(`  ${t.table}: key (${key}); fields ${t.columns.map((c) => c.name).join(', ')}`);
    for (const note of t.notes) lines.push(`    note: ${note}`);
  }
  if (r.unsupported.length > 0) {
    lines.push('not synced:');
    for (const p of r.unsupported) lines.push(`  ${p.table}: ${p.reason}`);
  }
  if (r.backfilled > 0) lines.push(`${r.backfilled} existing row(s) queued for the first sync`);
  return `${lines.join('\n')}\n`;
}
