/**
 * `ferry start` (`npm start`): the whole stack on one machine for trying
 * Ferry — a nats-server with JetStream (the one already answering, or one
 * started here with its data under the state dir), the sync API on its
 * embedded SQLite store, and one daemon with its status page. Everything lives
 * under `.ferry/` (or --dir); Ctrl-C stops all of it, daemon first.
 */
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import {
  appNameSchema,
  daemonConfigSchema,
  decodeWith,
  jsonObjectSchema,
  parseWith,
  tenantIdSchema,
} from '@ferry/contracts';
import { FerryChild, PidFile, parseLogLine } from '../local/ferry-children.js';
import { LocalNatsServer, NATS_INSTALL_HINT, freePort, hostPort, portIsFree, probeNats } from '../local/nats-local.js';
import { CliFailure, EXIT_FAILURE, EXIT_OK, EXIT_USAGE, checkFlags, flag, palette, runCommand } from './common.js';

export const START_HELP = `usage: ferry start [--dir DIR] [--nats-url URL] [--app NAME] [--tenant NAME] [--http-port N] [--verbose]

Runs a complete local Ferry: NATS (with JetStream), the sync API and one sync
daemon, for trying Ferry out. Uses the nats-server already answering at
--nats-url (default nats://127.0.0.1:4222) when it has JetStream; otherwise
starts nats-server on loopback (that port if free, else a free one) with its
data in DIR/nats. State, logs and the daemon config (DIR/ferry.json) are kept
in DIR (default .ferry). Ctrl-C stops everything.

  --dir DIR        state directory (default .ferry)                env FERRY_HOME
  --nats-url URL   NATS to use or to start                         env FERRY_NATS_URL
  --app NAME       the app the daemon serves (default notes)
  --tenant NAME    the tenant it syncs as (default local)
  --http-port N    the daemon's status page port (default 7070; a free one if busy)
  --verbose        echo the services' logs here too

Then, in another terminal:
  npx ferry status --config DIR/ferry.json
  npx ferry watch --config DIR/ferry.json
  node examples/notes-bus/notes.mjs --config DIR/ferry.json add "Buy milk"`;

const READY_TIMEOUT_MS = 30_000;

export function runStartCli(argv: readonly string[]): Promise<number> {
  return runCommand('start', argv, async () => {
    if (argv.includes('--help') || argv.includes('-h')) {
      process.stdout.write(`${START_HELP}\n`);
      return EXIT_OK;
    }
    checkFlags(argv, ['--dir', '--nats-url', '--app', '--tenant', '--http-port'], ['--verbose']);
    const dir = resolve(flag(argv, '--dir') ?? process.env.FERRY_HOME ?? '.ferry');
    const natsUrl = flag(argv, '--nats-url') ?? process.env.FERRY_NATS_URL ?? 'nats://127.0.0.1:4222';
    const appFlag = flag(argv, '--app');
    const tenantFlag = flag(argv, '--tenant');
    if (appFlag !== undefined && !appNameSchema.safeParse(appFlag).success)
      throw new CliFailure(`--app: "${appFlag}" is not a valid app name`, EXIT_USAGE);
    if (tenantFlag !== undefined && !tenantIdSchema.safeParse(tenantFlag).success)
      throw new CliFailure(`--tenant: "${tenantFlag}" is not a valid tenant`, EXIT_USAGE);
    const httpPortArg = flag(argv, '--http-port');
    const httpPort = httpPortArg === undefined ? undefined : Number(httpPortArg);
    if (httpPort !== undefined && !(Number.isInteger(httpPort) && httpPort >= 0 && httpPort <= 65535)) {
      throw new CliFailure(`--http-port: must be a port number, got "${httpPortArg}"`, EXIT_USAGE);
    }
    const verbose = argv.includes('--verbose');
    const c = palette(process.stdout);
    const say = (line: string) => process.stdout.write(`${line}\n`);
    mkdirSync(join(dir, 'logs'), { recursive: true });
    const pids = new PidFile(dir);

    // A damaged config of an earlier run is reported before anything starts (and never overwritten).
    const configFile = join(dir, 'ferry.json');
    if (existsSync(configFile)) readJson(configFile);
    const stack = new Stack();
    const stopping = waitForSignal(() => pids.killAll());
    try {
      // 1. NATS
      const nats = await ensureNats(natsUrl, join(dir, 'nats'), pids, say);
      if (nats.server !== null) stack.nats = nats.server;

      // 2. the API
      say(`${c.dim('…')} starting the sync API (store in ${join(dir, 'api')})`);
      const echo = (name: string) =>
        verbose ? (line: string) => process.stderr.write(`[${name}] ${line}\n`) : undefined;
      const apiEcho = echo('api');
      const api = new FerryChild({
        name: 'api',
        role: 'api',
        args: ['--nats-url', nats.url, '--data-dir', join(dir, 'api')],
        logFile: join(dir, 'logs', 'api.log'),
        pids,
        detached: true,
        ...(apiEcho === undefined ? {} : { onLine: apiEcho }),
      });
      stack.api = api;
      await api.waitForLine(/api ready/, READY_TIMEOUT_MS);

      // 3. the daemon
      const configPath = join(dir, 'ferry.json');
      const port = await choosePort(configPath, httpPort);
      const { app, tenant } = writeConfig(configPath, {
        app: appFlag,
        tenant: tenantFlag,
        natsUrl: nats.url,
        dataDir: join(dir, 'daemon'),
        httpPort: port,
      });
      say(`${c.dim('…')} starting the sync daemon (config ${configPath})`);
      let pageUrl = '';
      const daemonEcho = echo('daemon');
      const daemon = new FerryChild({
        name: 'daemon',
        role: 'daemon',
        args: ['--config', configPath],
        logFile: join(dir, 'logs', 'daemon.log'),
        pids,
        detached: true,
        onLine: (line) => {
          daemonEcho?.(line);
          const entry = parseLogLine(line);
          if (entry?.msg === 'http listening' && typeof entry.url === 'string') pageUrl = entry.url;
        },
      });
      stack.daemon = daemon;
      await daemon.waitForLine(/daemon ready/, READY_TIMEOUT_MS);

      say('');
      say(c.bold(c.green('Ferry is running')));
      say(
        `  NATS         ${nats.url}${nats.server === null ? ' (already running)' : ` (started here, data in ${join(dir, 'nats')})`}`,
      );
      say(`  sync API     store in ${join(dir, 'api')}, log ${join(dir, 'logs', 'api.log')}`);
      say(`  daemon       app "${app}", tenant "${tenant}", log ${join(dir, 'logs', 'daemon.log')}`);
      say(`  status page  ${pageUrl === '' ? '(see the daemon log)' : `${pageUrl}/`}`);
      say(`  metrics      ${pageUrl === '' ? '(see the daemon log)' : `${pageUrl}/metrics`}`);
      say('');
      say('Try, in another terminal:');
      say(`  npx ferry status --config ${configPath}`);
      say(`  npx ferry watch --config ${configPath}`);
      say(`  node examples/notes-bus/notes.mjs --config ${configPath} add "Buy milk"`);
      say('');
      say(c.dim('Ctrl-C stops everything.'));

      const outcome = await Promise.race([
        stopping.then((signal) => ({ kind: 'signal' as const, signal })),
        api.exited.then((exit) => ({ kind: 'exit' as const, name: 'api', exit, child: api })),
        daemon.exited.then((exit) => ({ kind: 'exit' as const, name: 'daemon', exit, child: daemon })),
      ]);
      if (outcome.kind === 'exit') {
        process.stderr.write(
          `ferry start: the ${outcome.name} exited (code ${outcome.exit.code}); its last lines (log in ${join(dir, 'logs')}):\n${outcome.child.tail(10)}\n`,
        );
        await stack.stop();
        return EXIT_FAILURE;
      }
      say(
        `\n${c.dim(`${outcome.signal}: stopping the daemon, the API${stack.nats === null ? '' : ' and nats-server'}…`)}`,
      );
      await stack.stop();
      say('stopped');
      return EXIT_OK;
    } catch (err) {
      await stack.stop();
      throw err;
    }
  });
}

/** What `ferry start` runs, stopped in dependency order (daemon, API, NATS). */
class Stack {
  nats: LocalNatsServer | null = null;
  api: FerryChild | null = null;
  daemon: FerryChild | null = null;

  async stop(): Promise<void> {
    await this.daemon?.stop();
    await this.api?.stop();
    await this.nats?.stop();
  }
}

function waitForSignal(killChildren: () => void): Promise<NodeJS.Signals> {
  return new Promise((resolve) => {
    let seen = false;
    const on = (signal: NodeJS.Signals) => {
      if (seen) {
        // A second Ctrl-C: stop waiting for a clean shutdown, but leave nothing running.
        process.stderr.write('ferry start: second signal, killing the services and exiting now\n');
        killChildren();
        process.exit(EXIT_FAILURE);
      }
      seen = true;
      // During start-up the stop follows once the step under way settles: say so at once.
      process.stderr.write(`ferry start: ${signal}, stopping…\n`);
      resolve(signal);
    };
    process.on('SIGINT', on);
    process.on('SIGTERM', on);
    process.on('SIGHUP', on);
  });
}

async function ensureNats(
  url: string,
  dir: string,
  pids: PidFile,
  say: (line: string) => void,
): Promise<{ url: string; server: LocalNatsServer | null }> {
  if (!/^nats:\/\/\S+$/.test(url)) throw new CliFailure(`--nats-url: must be a nats:// URL, got "${url}"`, EXIT_USAGE);
  const probe = await probeNats(url);
  if (probe.reachable && probe.jetstream) {
    say(`✓ using the nats-server at ${url} (${probe.version}, JetStream on)`);
    return { url, server: null };
  }
  const { host, port } = hostPort(url);
  const loopback = host === 'localhost' || host.startsWith('127.') || host === '::1';
  if (!probe.reachable && !loopback) throw new CliFailure(`cannot reach NATS at ${url}: ${probe.reason}`);
  const chosen = !probe.reachable && (await portIsFree(port)) ? port : await freePort();
  say(
    probe.reachable
      ? `… the nats-server at ${url} has no JetStream; starting one with JetStream on port ${chosen}`
      : `… no NATS at ${url}; starting nats-server with JetStream on 127.0.0.1:${chosen}`,
  );
  let server: LocalNatsServer;
  try {
    server = await LocalNatsServer.start({
      dir,
      port: chosen,
      jetstream: true,
      onPid: (pid) => pids.set('nats-server', pid),
    });
  } catch (err) {
    const message = err instanceof Error ? err.message : String(err);
    if (message === NATS_INSTALL_HINT) throw new CliFailure(message);
    throw new CliFailure(`could not start nats-server: ${message}`);
  }
  say(`✓ nats-server running at ${server.url} (data in ${dir})`);
  return { url: server.url, server };
}

/** The status page port: as asked, else the config's, else 7070; a free one when that is taken. */
async function choosePort(configPath: string, asked: number | undefined): Promise<number> {
  let wanted = asked;
  if (wanted === undefined && existsSync(configPath)) {
    const current = readJson(configPath).http;
    const port = typeof current === 'object' && current !== null ? (current as { port?: unknown }).port : undefined;
    if (typeof port === 'number') wanted = port;
  }
  wanted ??= 7070;
  if (wanted === 0 || (await portIsFree(wanted))) return wanted;
  return freePort();
}

/** A JSON object from `path`; anything else is the user's file we must not overwrite. */
function readJson(path: string): Record<string, unknown> {
  const decoded = decodeWith(jsonObjectSchema, readFileSync(path, 'utf8'), path);
  if (!decoded.ok) {
    throw new CliFailure(`${decoded.message} (fix or remove it; ferry start keeps what it holds)`, EXIT_USAGE);
  }
  return decoded.value;
}

/**
 * Writes DIR/ferry.json, keeping what the user changed (collections, source,
 * batch …) and setting what this run decides: the NATS URLs and the HTTP port.
 */
function objectAt(current: Record<string, unknown>, key: string, path: string): Record<string, unknown> {
  const value = current[key];
  if (value === undefined) return {};
  if (typeof value === 'object' && value !== null && !Array.isArray(value)) return value as Record<string, unknown>;
  throw new CliFailure(`${path}: ${key}: must be an object`, EXIT_USAGE);
}

function writeConfig(
  path: string,
  o: { app: string | undefined; tenant: string | undefined; natsUrl: string; dataDir: string; httpPort: number },
): { app: string; tenant: string } {
  const current = existsSync(path) ? readJson(path) : {};
  const app = o.app ?? (typeof current.app === 'string' ? current.app : 'notes');
  const tenant = o.tenant ?? (typeof current.tenant === 'string' ? current.tenant : 'local');
  const config = {
    dataDir: o.dataDir,
    collections: { notes: { policy: 'lww' } },
    ...current,
    app,
    tenant,
    bus: { ...objectAt(current, 'bus', path), url: o.natsUrl },
    upstream: { ...objectAt(current, 'upstream', path), url: o.natsUrl },
    http: { host: '127.0.0.1', ...objectAt(current, 'http', path), port: o.httpPort },
  };
  // What is written is what the daemon will load: refuse to write a config it would refuse.
  const valid = parseWith(daemonConfigSchema, config);
  if (!valid.ok) throw new CliFailure(`${path}: ${valid.message}`, EXIT_USAGE);
  writeFileSync(path, `${JSON.stringify(config, null, 2)}\n`);
  return { app, tenant };
}
