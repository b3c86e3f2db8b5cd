#!/usr/bin/env node
// An ordinary notes app on SQLite: plain better-sqlite3, nothing from Ferry,
// no sync code. Run a Ferry daemon beside it with
//   "source": {"kind": "sqlite", "path": "<this file's db>"}
// and its table converges with the same table on other devices (attach mode,
// docs/attach.md). The table is keyed by a TEXT uuid, as attach mode advises.
//
//   node examples/sqlite-attach/notes-app.mjs DB add "Buy milk" ["2 litres"]
//   node examples/sqlite-attach/notes-app.mjs DB set ID FIELD VALUE
//   node examples/sqlite-attach/notes-app.mjs DB rm ID
//   node examples/sqlite-attach/notes-app.mjs DB list
import { randomUUID } from 'node:crypto';
import process from 'node:process';
import Database from 'better-sqlite3';

const [path, command, ...rest] = process.argv.slice(2);
if (path === undefined || command === undefined) {
  process.stderr.write('usage: notes-app.mjs DB (add TITLE [BODY] | set ID FIELD VALUE | rm ID | list)\n');
  process.exit(2);
}

const db = new Database(path);
db.pragma('journal_mode = WAL'); // readers and the daemon's writes do not block each other
db.pragma('busy_timeout = 5000'); // wait for the daemon's short write-back transactions
db.exec(`CREATE TABLE IF NOT EXISTS notes (
  id    TEXT PRIMARY KEY,
  title TEXT NOT NULL DEFAULT '',
  body  TEXT NOT NULL DEFAULT ''
)`);

try {
  switch (command) {
    case 'add': {
      const [title, body = ''] = rest;
      if (title === undefined) throw new Error('add needs a TITLE');
      const id = randomUUID();
      db.prepare('INSERT INTO notes (id, title, body) VALUES (?, ?, ?)').run(id, title, body);
      process.stdout.write(`${id}\n`);
      break;
    }
    case 'set': {
      const [id, field, value] = rest;
      if (!['title', 'body'].includes(field ?? '')) throw new Error('set needs ID (title|body) VALUE');
      const changed = db.prepare(`UPDATE notes SET ${field} = ? WHERE id = ?`).run(value, id).changes;
      if (changed === 0) throw new Error(`no note ${id}`);
      break;
    }
    case 'rm': {
      db.prepare('DELETE FROM notes WHERE id = ?').run(rest[0]);
      break;
    }
    case 'list': {
      for (const n of db.prepare('SELECT id, title, body FROM notes ORDER BY title').all()) {
        process.stdout.write(`${n.id}  ${JSON.stringify(n.title)}${n.body === '' ? '' : ` — ${n.body}`}\n`);
      }
      break;
    }
    default:
      throw new Error(`unknown command "${command}"`);
  }
} catch (err) {
  process.stderr.write(`notes-app: ${err.message}\n`);
  process.exitCode = 1;
} finally {
  db.close();
}
