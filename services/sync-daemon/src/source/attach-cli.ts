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
import { CliFailure, EXIT_OK, EXIT_USAGE, checkFlags, flag, runCommand } from '../cli/common.js';
import { META, OUTBOX, attach, detach, type AttachReport } from './sqlite-attach.js';

const HELP = {
  attach: `usage: ferry attach --db FILE [--tables a,b] [--json] [--verbose]

Installs capture triggers and Ferry's outbox in an app's SQLite file, so a
daemon with "source": {"kind": "sqlite", "path": FILE} syncs its tables. Without
--tables, every table with a primary key is synced; tables that cannot be are
listed with the reason. Rows already in the tables are queued for the first sync.
Environment: FERRY_DB, FERRY_TABLES.`,
  detach: `usage: ferry detach --db FILE [--force] [--verbose]

Removes every trigger and table Ferry added to the file; the app's tables and
rows stay as they are. Refuses while captured changes have not reached a daemon
(--force drops them). Environment: FERRY_DB.`,
};

/** The flags each command knows; anything else is refused (a typo must not attach every table). */
const FLAGS = {
  attach: { valued: ['--db', '--tables'], booleans: ['--json', '--verbose'] },
  detach: { valued: ['--db'], booleans: ['--force', '--verbose'] },
} as const;

/**
 * Exit status: 0 done, 1 the file could not be opened or changed, 2 a bad
 * command line or a refusal (a table that cannot be attached, uncaptured
 * changes on detach, a damaged attachment).
 */
export function runAttachCli(role: 'attach' | 'detach', argv: readonly string[]): Promise<number> {
  // The work is synchronous; a throw inside it still reaches runCommand's one-line report.
  return runCommand(role, argv, () => Promise.resolve(attachOrDetach(role, argv)));
}

function attachOrDetach(role: 'attach' | 'detach', argv: readonly string[]): number {
  if (argv.includes('--help') || argv.includes('-h')) {
    process.stdout.write(`${HELP[role]}\n`);
    return EXIT_OK;
  }
  checkFlags(argv, FLAGS[role].valued, FLAGS[role].booleans);
  const path = flag(argv, '--db') ?? process.env.FERRY_DB;
  if (path === undefined || path === '') throw new CliFailure('--db FILE is required (or set FERRY_DB)', EXIT_USAGE);
  if (!existsSync(path)) throw new CliFailure(`${path}: no such file`, EXIT_USAGE);
  const tablesArg = role === 'attach' ? (flag(argv, '--tables') ?? process.env.FERRY_TABLES) : undefined;
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
        `detached ${path}: removed ${r.triggers} trigger(s), ${OUTBOX} and ${META}${r.dropped > 0 ? `; dropped ${r.dropped} uncaptured change(s)` : ''}\n`,
      );
      return EXIT_OK;
    }
    const report = attach(db, { ...(tables === undefined ? {} : { tables }), newId: uuidv7 });
    process.stdout.write(argv.includes('--json') ? `${JSON.stringify(report)}\n` : describe(path, report));
    return EXIT_OK;
  } catch (err) {
    // A refusal (FerryError) is the operator's to fix, as before: exit 2, not 1.
    if (err instanceof FerryError) throw new CliFailure(err.message, EXIT_USAGE, { cause: err });
    throw err;
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
