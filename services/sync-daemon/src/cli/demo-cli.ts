/**
 * `ferry demo` (`npm run demo`): two simulated devices converging, shown step
 * by step. Real processes, as in production: a nats-server for the server
 * side, the sync API, and per device its own local nats-server (JetStream)
 * plus a daemon; the demo itself plays both apps as plain NATS clients.
 * The story (note 45 "Shopping" / "Groceries"): both devices edit while the
 * network is down, then reconnect; the terminal shows each step, the sync
 * events as they arrive, the conflicts, and the identical end state.
 */
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { isDeepStrictEqual } from 'node:util';
import type { NatsConnection } from '@nats-io/transport-node';
import {
  busSubjects,
  decodeWith,
  queryReplySchema,
  statusReplySchema,
  syncEventSchema,
  type EntityState,
  type SyncEvent,
} from '@ferry/contracts';
import { FerryChild, PidFile } from '../local/ferry-children.js';
import { LocalNatsServer, NATS_INSTALL_HINT, freePort } from '../local/nats-local.js';
import { CliFailure, EXIT_OK, checkFlags, connectNats, flag, palette, runCommand } from './common.js';
import { describeEvent } from './format.js';

export const DEMO_HELP = `usage: ferry demo [--dir DIR] [--verbose]

Two simulated devices, A and B, sync notes through a local sync API:
  1. both start from the same notes (45 and 47);
  2. the network goes down; A renames note 45 "Shopping" and deletes note 47,
     B renames note 45 "Groceries", writes its body and edits note 47;
  3. the network comes back; the terminal shows the sync events, the
     conflicts and how they were resolved, and that both devices end equal.
Starts its own nats-servers (needs nats-server installed) and processes on
loopback, and removes everything when done.

  --dir DIR     keep the demo's files (configs, stores, logs) in DIR
  --verbose     stack traces on failure`;

const APP = 'notes';
const subjects = busSubjects(APP);
const enc = (v: unknown) => new TextEncoder().encode(JSON.stringify(v));

interface Device {
  readonly name: 'A' | 'B';
  readonly bus: LocalNatsServer;
  readonly daemon: FerryChild;
  readonly app: NatsConnection;
  readonly events: SyncEvent[];
}

export function runDemoCli(argv: readonly string[]): Promise<number> {
  return runCommand('demo', argv, async () => {
    if (argv.includes('--help') || argv.includes('-h')) {
      process.stdout.write(`${DEMO_HELP}\n`);
      return EXIT_OK;
    }
    checkFlags(argv, ['--dir'], ['--verbose']);
    const kept = flag(argv, '--dir');
    const dir = kept === undefined ? mkdtempSync(join(tmpdir(), 'ferry-demo-')) : resolve(kept);
    mkdirSync(join(dir, 'logs'), { recursive: true });
    const demo = new Demo(dir);
    const interrupted = new Promise<never>((_, reject) => {
      let seen = false;
      const on = () => {
        if (seen) {
          // A second signal while stopping: kill what is left rather than orphan it.
          demo.killAll();
          process.exit(1);
        }
        seen = true;
        reject(new CliFailure('interrupted'));
      };
      process.on('SIGINT', on);
      process.on('SIGTERM', on);
      process.on('SIGHUP', on);
    });
    try {
      await Promise.race([demo.run(), interrupted]);
      return EXIT_OK;
    } finally {
      await demo.stop();
      if (kept === undefined) rmSync(dir, { recursive: true, force: true });
    }
  });
}

class Demo {
  readonly #dir: string;
  readonly #pids: PidFile;
  readonly #c = palette(process.stdout);
  readonly #started = Date.now();
  #upstream: LocalNatsServer | null = null;
  #api: FerryChild | null = null;
  readonly #devices: Device[] = [];
  readonly #servers: LocalNatsServer[] = [];
  /** While set, sync events are printed as they arrive (the reconnect step). */
  #live = false;

  constructor(dir: string) {
    this.#dir = dir;
    this.#pids = new PidFile(dir);
  }

  async run(): Promise<void> {
    const c = this.#c;
    this.#say(c.bold('Ferry demo: two devices, offline edits on both, convergence'));

    this.#step(1, 'Start the server side (NATS + the sync API) and two devices (each: a local NATS + a daemon)');
    this.#upstream = await this.#nats('upstream', false);
    this.#api = new FerryChild({
      name: 'api',
      role: 'api',
      args: ['--nats-url', this.#upstream.url, '--data-dir', join(this.#dir, 'api')],
      logFile: join(this.#dir, 'logs', 'api.log'),
      pids: this.#pids,
      detached: true,
    });
    await this.#api.waitForLine(/api ready/, 30_000);
    this.#ok(`sync API on ${this.#upstream.url}`);
    const [a, b] = await Promise.all([this.#device('A'), this.#device('B')]);
    this.#ok('device A and device B are running');

    this.#step(2, 'Device A writes two notes; both devices sync');
    await this.#change(a, { collection: 'notes', id: '45', op: 'create', fields: { title: '', body: '' } });
    await this.#change(a, { collection: 'notes', id: '47', op: 'create', fields: { title: 'Old list' } });
    await this.#until(
      'B to receive notes 45 and 47',
      async () => (await this.#get(b, '45')) !== undefined && (await this.#get(b, '47')) !== undefined,
    );
    this.#ok('B has notes 45 and 47');

    this.#step(3, 'The network goes down (the server-side NATS stops): both devices go offline');
    const offlineSeen = (d: Device) => d.events.some((e) => e.type === 'offline');
    await this.#upstream.kill();
    await this.#until('both devices to report offline', () => offlineSeen(a) && offlineSeen(b));
    for (const d of [a, b]) {
      const e = d.events.find((x) => x.type === 'offline');
      this.#event(d, e ?? { type: 'offline', at: Date.now(), reason: '' });
    }

    this.#step(4, 'Both devices keep working offline');
    await this.#change(a, { collection: 'notes', id: '45', op: 'update', fields: { title: 'Shopping' } });
    await this.#change(a, { collection: 'notes', id: '47', op: 'delete' });
    // A's edits are captured (and stamped by its clock) first, so B's rename is the later write.
    await this.#until('A to capture its edits', async () => (await this.#status(a)).pending === 2);
    await this.#change(b, { collection: 'notes', id: '45', op: 'update', fields: { title: 'Groceries' } });
    await this.#change(b, { collection: 'notes', id: '45', op: 'update', fields: { body: 'milk, eggs' } });
    await this.#change(b, { collection: 'notes', id: '47', op: 'update', fields: { title: 'Old list, revised' } });
    await this.#until('B to capture its edits', async () => (await this.#status(b)).pending === 3);
    this.#say('');
    this.#say(c.dim('  Each app already sees its own edits (local-first):'));
    await this.#table(a, b);
    this.#say(
      `  pending: A ${(await this.#status(a)).pending}, B ${(await this.#status(b)).pending} (kept in each device's WAL)`,
    );

    this.#step(5, 'The network comes back: the devices push, pull and reconcile (sync events as they happen)');
    this.#live = true;
    await this.#upstream.restart();
    await this.#until(
      'both devices to converge',
      async () => {
        const [a45, b45, a47, b47] = await Promise.all([
          this.#get(a, '45'),
          this.#get(b, '45'),
          this.#get(a, '47'),
          this.#get(b, '47'),
        ]);
        const [sa, sb] = await Promise.all([this.#status(a), this.#status(b)]);
        return (
          sa.pending === 0 &&
          sb.pending === 0 &&
          isDeepStrictEqual(a45, b45) &&
          isDeepStrictEqual(a47, b47) &&
          a45?.version === 4 &&
          a47?.deleted === true
        );
      },
      30_000,
    );
    // The last events of a pull may still be on their way to this terminal.
    await this.#settle();
    this.#live = false;

    this.#step(6, 'Converged: both devices hold the same state');
    await this.#table(a, b);
    const conflicts = [...a.events, ...b.events].filter((e) => e.type === 'conflict');
    this.#say('');
    this.#say(c.bold('  Why:'));
    this.#say('  • title: both renamed note 45; field-level last-writer-wins keeps B\'s "Groceries" (the later edit),');
    this.#say('    and a conflict event records A\'s "Shopping" as the loser (nothing is dropped silently).');
    this.#say('  • body: only B wrote it, so B\'s "milk, eggs" is kept alongside — edits merge per field.');
    this.#say('  • note 47: A deleted it while B edited it; delete wins, and that is reported as a conflict too.');
    this.#say(`  ${conflicts.length} conflict event(s) in all (each device reports the ones it saw).`);
    const seconds = ((Date.now() - this.#started) / 1000).toFixed(1);
    this.#say('');
    this.#say(this.#c.green(this.#c.bold(`✓ Both devices converged. Demo finished in ${seconds} s.`)));
  }

  /** Every child still running, killed outright (a second interrupt). */
  killAll(): void {
    this.#pids.killAll();
  }

  async stop(): Promise<void> {
    for (const d of this.#devices) await d.app.close().catch(() => undefined);
    await Promise.all(this.#devices.map((d) => d.daemon.stop()));
    await this.#api?.stop();
    await Promise.all(this.#servers.map((s) => s.stop()));
  }

  async #nats(name: string, jetstream: boolean): Promise<LocalNatsServer> {
    try {
      const server = await LocalNatsServer.start({
        dir: join(this.#dir, `nats-${name}`),
        port: await freePort(),
        jetstream,
        onPid: (pid) => this.#pids.set(`nats-${name}`, pid),
      });
      this.#servers.push(server);
      return server;
    } catch (err) {
      const message = err instanceof Error ? err.message : String(err);
      throw new CliFailure(message === NATS_INSTALL_HINT ? message : `could not start nats-server: ${message}`);
    }
  }

  async #device(name: 'A' | 'B'): Promise<Device> {
    const upstream = this.#upstream;
    if (upstream === null) throw new Error('upstream first');
    const bus = await this.#nats(`device-${name}`, true);
    const configPath = join(this.#dir, `device-${name}.json`);
    writeFileSync(
      configPath,
      JSON.stringify({
        app: APP,
        tenant: 'demo',
        bus: { url: bus.url },
        upstream: { url: upstream.url },
        dataDir: join(this.#dir, `device-${name}`),
        collections: { notes: { policy: 'lww' } },
        retry: { initialMs: 50, maxMs: 500 },
      }),
    );
    const daemon = new FerryChild({
      name: `daemon-${name}`,
      role: 'daemon',
      args: ['--config', configPath],
      logFile: join(this.#dir, 'logs', `daemon-${name}.log`),
      pids: this.#pids,
      detached: true,
    });
    const app = await connectNats(bus.url, { name: `demo-app-${name}`, what: `device ${name}'s bus`, follow: true });
    const device: Device = { name, bus, daemon, app, events: [] };
    this.#devices.push(device);
    app.subscribe(subjects.events, {
      callback: (err, msg) => {
        if (err !== null) return;
        const e = decodeWith(syncEventSchema, msg.data, 'event');
        if (!e.ok) return;
        device.events.push(e.value);
        if (this.#live && this.#worthShowing(e.value)) this.#event(device, e.value);
      },
    });
    await app.flush();
    await daemon.waitForLine(/daemon ready/, 30_000);
    return device;
  }

  /** The reconnect step shows what moves data, not every capture or empty pull. */
  #worthShowing(e: SyncEvent): boolean {
    if (e.type === 'capture' || e.type === 'push-started') return false;
    if (e.type === 'pull-received' && e.count === 0) return false;
    return true;
  }

  async #change(d: Device, change: Record<string, unknown>): Promise<void> {
    // A request gets the capture stream's ack: the change is durably queued on the device.
    await d.app.request(subjects.changes, enc(change), { timeout: 5000 });
    const { op, collection, id, fields } = change as { op: string; collection: string; id: string; fields?: object };
    const what = fields === undefined ? '' : ` ${JSON.stringify(fields)}`;
    this.#say(`  ${this.#tag(d)}  ${op} ${collection}/${id}${what}`);
  }

  async #get(d: Device, id: string): Promise<EntityState | undefined> {
    const reply = await d.app.request(subjects.query, enc({ collection: 'notes', id }), { timeout: 5000 });
    const decoded = decodeWith(queryReplySchema, reply.data, 'query reply');
    return decoded.ok ? decoded.value.entities[0] : undefined;
  }

  async #status(d: Device) {
    const reply = await d.app.request(subjects.status, enc({}), { timeout: 5000 });
    const decoded = decodeWith(statusReplySchema, reply.data, 'status reply');
    if (!decoded.ok) throw new CliFailure(decoded.message);
    return decoded.value;
  }

  async #table(a: Device, b: Device): Promise<void> {
    const show = (e: EntityState | undefined) =>
      e === undefined ? '—' : e.deleted ? '(deleted)' : `${JSON.stringify(e.fields)} v${e.version}`;
    const rows = await Promise.all(
      ['45', '47'].map(async (id) => ({ id, pair: await Promise.all([this.#get(a, id), this.#get(b, id)]) })),
    );
    const width = Math.max(10, ...rows.map((r) => show(r.pair[0]).length)) + 3;
    this.#say(this.#c.dim(`  ${'note'.padEnd(10)}${'device A'.padEnd(width)}device B`));
    for (const { id, pair } of rows) {
      const [ea, eb] = pair;
      const same = isDeepStrictEqual(ea, eb) ? this.#c.green('  ✓ same') : '';
      this.#say(`  ${`notes/${id}`.padEnd(10)}${show(ea).padEnd(width)}${show(eb)}${same}`);
    }
  }

  /** Polls until `check` holds: convergence spans several processes, so there is no single event to await. */
  async #until(what: string, check: () => Promise<boolean> | boolean, timeoutMs = 20_000): Promise<void> {
    const deadline = Date.now() + timeoutMs;
    while (!(await check())) {
      if (Date.now() > deadline) {
        const logs = this.#devices.map((d) => `--- daemon ${d.name}:\n${d.daemon.tail(8)}`).join('\n');
        throw new CliFailure(`timed out waiting for ${what}\n${logs}`);
      }
      await new Promise((r) => setTimeout(r, 50));
    }
  }

  /** Lets events already published reach this process (a flush round trip on each bus). */
  async #settle(): Promise<void> {
    await Promise.all(this.#devices.map((d) => d.app.flush()));
  }

  #tag(d: Device): string {
    return d.name === 'A' ? this.#c.cyan('A') : this.#c.yellow('B');
  }

  #event(d: Device, e: SyncEvent): void {
    const c = this.#c;
    const colour =
      e.type === 'conflict' || e.type === 'offline'
        ? c.red
        : e.type === 'applied' || e.type === 'online'
          ? c.green
          : (s: string) => s;
    this.#say(`  ${this.#tag(d)}  ${colour(e.type.padEnd(14))} ${describeEvent(e)}`);
  }

  #step(n: number, title: string): void {
    this.#say('');
    this.#say(this.#c.bold(`[${n}/6] ${title}`));
  }

  #ok(text: string): void {
    this.#say(`  ${this.#c.green('✓')} ${text}`);
  }

  #say(line: string): void {
    process.stdout.write(`${line}\n`);
  }
}
