#!/usr/bin/env node
// A notes app that syncs through Ferry's local bus, with nothing but a plain
// NATS client: it publishes ChangeEvents and reads reconciled state. No Ferry
// code, no sync code. The same messages work from any language (README.md,
// "The bus protocol").
//
//   node examples/notes-bus/notes.mjs --config .ferry/ferry.json add "Buy milk" ["body"]
//   node examples/notes-bus/notes.mjs --config .ferry/ferry.json set <id> <field> <value>
//   node examples/notes-bus/notes.mjs --config .ferry/ferry.json rm <id>
//   node examples/notes-bus/notes.mjs --config .ferry/ferry.json list
//   node examples/notes-bus/notes.mjs --config .ferry/ferry.json follow
//
// Instead of --config (the daemon's config file): --bus-url URL --app NAME,
// or FERRY_BUS_URL and FERRY_APP.
import { randomUUID } from 'node:crypto';
import { readFileSync } from 'node:fs';
import process from 'node:process';
import { connect } from '@nats-io/transport-node';

const USAGE = `usage: notes.mjs (--config FILE | --bus-url URL --app NAME) <command>
  add TITLE [BODY]         create a note, prints its id
  set ID FIELD VALUE       change one field of a note
  rm ID                    delete a note
  list                     the notes as the daemon has reconciled them
  follow                   print state changes as they arrive (Ctrl-C stops)`;

function option(args, name) {
  const at = args.indexOf(name);
  if (at < 0) return undefined;
  const [value] = args.splice(at, 2).slice(1);
  return value;
}

const args = process.argv.slice(2);
const configPath = option(args, '--config') ?? process.env.FERRY_CONFIG;
let busUrl = option(args, '--bus-url') ?? process.env.FERRY_BUS_URL;
let app = option(args, '--app') ?? process.env.FERRY_APP;
let prefix = 'ferry';
if (configPath !== undefined) {
  const config = JSON.parse(readFileSync(configPath, 'utf8'));
  busUrl ??= config.bus.url;
  app ??= config.app;
  prefix = config.bus.prefix ?? prefix;
}
const [command, ...rest] = args;
if (busUrl === undefined || app === undefined || command === undefined) {
  process.stderr.write(`${USAGE}\n`);
  process.exit(2);
}

// The bus subjects of DESIGN §5 / README "The bus protocol": <prefix>.<app>.<verb>.
const subject = (verb) => `${prefix}.${app}.${verb}`;
const encode = (value) => new TextEncoder().encode(JSON.stringify(value));
const decode = (data) => JSON.parse(new TextDecoder().decode(data));

let nc;
try {
  nc = await connect({ servers: busUrl, timeout: 3000, maxReconnectAttempts: command === 'follow' ? -1 : 0 });
} catch (err) {
  process.stderr.write(`notes: cannot reach the bus at ${busUrl}: ${err.message}\n`);
  process.exit(1);
}

/**
 * Publishes a ChangeEvent as a request: the daemon's JetStream capture stream
 * answers with an ack once the change is stored durably, even while the daemon
 * itself is down. The eventId makes a retry of this very change harmless.
 */
async function change(event) {
  const reply = decode((await nc.request(subject('changes'), encode({ ...event, eventId: randomUUID() }))).data);
  if (reply.error !== undefined) throw new Error(`not captured: ${JSON.stringify(reply.error)}`);
}

function show(entity) {
  if (entity.deleted) return `${entity.id}  (deleted)`;
  const { title = '', body = '', ...other } = entity.fields;
  const extra = Object.keys(other).length > 0 ? `  ${JSON.stringify(other)}` : '';
  return `${entity.id}  ${JSON.stringify(title)}${body === '' ? '' : ` — ${body}`}${extra}  (v${entity.version})`;
}

try {
  switch (command) {
    case 'add': {
      const [title, body = ''] = rest;
      if (title === undefined) throw new Error('add needs a TITLE');
      const id = randomUUID().slice(0, 8);
      await change({ collection: 'notes', id, op: 'create', fields: { title, body } });
      process.stdout.write(`${id}\n`);
      break;
    }
    case 'set': {
      const [id, field, value] = rest;
      if (value === undefined) throw new Error('set needs ID FIELD VALUE');
      await change({ collection: 'notes', id, op: 'update', fields: { [field]: value } });
      break;
    }
    case 'rm': {
      const [id] = rest;
      if (id === undefined) throw new Error('rm needs an ID');
      await change({ collection: 'notes', id, op: 'delete' });
      break;
    }
    case 'list': {
      const reply = decode(
        (await nc.request(subject('query'), encode({ collection: 'notes' }), { timeout: 3000 })).data,
      );
      if (reply.error !== undefined) throw new Error(reply.error.message);
      for (const entity of reply.entities.filter((e) => !e.deleted)) process.stdout.write(`${show(entity)}\n`);
      break;
    }
    case 'follow': {
      // Every StateBatch holds exactly the entities that changed, local or remote.
      nc.subscribe(subject('state'), {
        callback: (err, msg) => {
          if (err !== null) return;
          for (const entity of decode(msg.data).entities) process.stdout.write(`${show(entity)}\n`);
        },
      });
      process.stderr.write(`following ${subject('state')} (Ctrl-C stops)\n`);
      await new Promise((resolve) => process.once('SIGINT', resolve));
      break;
    }
    default:
      process.stderr.write(`${USAGE}\n`);
      process.exitCode = 2;
  }
} catch (err) {
  process.stderr.write(`notes: ${err.message}\n`);
  process.exitCode = 1;
} finally {
  await nc.drain();
}
