/**
 * `ferry daemon --config FILE`: the one `main` of the sidecar. Wires the real
 * connections, runs the engine, and on SIGTERM/SIGINT drains and stops (a
 * second signal forces). Errors are one line and a non-zero exit.
 */
import { connect, type NatsConnection } from '@nats-io/transport-node';
import pino, { type Logger } from 'pino';
import { uuidv7 } from 'uuidv7';
import type { LoggedConflict } from '@ferry/contracts';
import { policyBookFromConfig } from '@ferry/domain';
import { loadDaemonConfig } from './config/load-config.js';
import { SyncEngine } from './engine/sync-engine.js';
import { runAttachCli } from './source/attach-cli.js';
import { describeConnectError } from './cli/common.js';
import { runOperatorCli } from './cli/operator-commands.js';
import { DaemonHttpServer } from './http/http-server.js';
import { daemonDbPath, recentConflicts } from './observe/conflict-log.js';
import { checkSqliteFile } from './observe/store-check.js';

const HELP = `usage: ferry daemon --config FILE [--verbose]

Runs the sync sidecar for one app: captures changes from the local bus (or,
with "source": {"kind": "sqlite", "path": FILE}, from the app's SQLite file),
keeps them in a WAL under dataDir, syncs them with the API, and publishes
reconciled state back on the bus (and writes it back into the SQLite file).
With "http": {"host": "127.0.0.1", "port": 7070} in the config (port 0: a free
one, logged as "http listening") it also serves /metrics, /healthz, /status
and a live status page at /. Environment: FERRY_CONFIG, FERRY_DATA_DIR,
FERRY_BUS_URL, FERRY_UPSTREAM_URL, FERRY_HTTP_HOST, FERRY_HTTP_PORT,
FERRY_LOG_LEVEL, FERRY_CLOCK_SKEW_MS (diagnostics: pretend the wall clock is
off by this many ms).`;

function flag(argv: readonly string[], name: string): string | undefined {
  const at = argv.indexOf(name);
  if (at >= 0) return argv[at + 1];
  const eq = argv.find((a) => a.startsWith(`${name}=`));
  return eq?.slice(name.length + 1);
}

export async function runCli(role: string, argv: string[]): Promise<number> {
  if (role === 'attach' || role === 'detach') return runAttachCli(role, argv);
  const operator = runOperatorCli(role, argv);
  if (operator !== null) return operator;
  if (role !== 'daemon') {
    // bin/ferry.js routes only this service's roles here; anything else is a dispatch bug.
    process.stderr.write(`ferry ${role}: not a command of the sync daemon\n`);
    return 2;
  }
  if (argv.includes('--help') || argv.includes('-h')) {
    process.stdout.write(`${HELP}\n`);
    return 0;
  }
  const verbose = argv.includes('--verbose');
  const loaded = loadDaemonConfig(flag(argv, '--config'), process.env);
  if (!loaded.ok) {
    process.stderr.write(`ferry daemon: ${loaded.message}\n`);
    return 2;
  }
  const config = loaded.config;
  const logger = pino({
    level: process.env.FERRY_LOG_LEVEL ?? 'info',
    base: { service: 'ferry-daemon', app: config.app, pid: process.pid },
  });
  const policies = policyBookFromConfig(config.collections);
  if (!policies.ok) {
    process.stderr.write(`ferry daemon: ${policies.message}\n`);
    return 2;
  }
  // A damaged or foreign file is one line naming it, before anything opens it for writing.
  for (const path of [daemonDbPath(config.dataDir), ...(config.source.kind === 'sqlite' ? [config.source.path] : [])]) {
    const store = checkSqliteFile(path);
    if (!store.ok) {
      process.stderr.write(`ferry daemon: ${store.message}\n`);
      return 1;
    }
  }
  let bus: NatsConnection | undefined;
  let upstream: NatsConnection | undefined;
  let engine: SyncEngine | undefined;
  let http: DaemonHttpServer | undefined;
  try {
    const auth = (c: { user?: string | undefined; pass?: string | undefined; token?: string | undefined }) => ({
      ...(c.user === undefined ? {} : { user: c.user }),
      ...(c.pass === undefined ? {} : { pass: c.pass }),
      ...(c.token === undefined ? {} : { token: c.token }),
    });
    bus = await connect({
      servers: config.bus.url,
      name: `ferry-daemon-bus-${config.app}`,
      maxReconnectAttempts: -1,
      ...auth(config.bus),
    }).catch((err: unknown) => {
      throw new Error(`cannot reach the bus NATS at ${config.bus.url}: ${describeConnectError(err)}`, { cause: err });
    });
    // Offline-first: the device works without its server; the sync half attaches once the link is up.
    const upstreamReady = connect({
      servers: config.upstream.url,
      name: `ferry-daemon-upstream-${config.app}`,
      maxReconnectAttempts: -1,
      waitOnFirstConnect: true,
      inboxPrefix: `_INBOX_${config.tenant}`,
      ...auth(config.upstream),
    });
    // Diagnostic knob: run as if the wall clock were off by this much (tests of HLC behaviour).
    const skewMs = Number(process.env.FERRY_CLOCK_SKEW_MS ?? '0');
    const now = Number.isFinite(skewMs) && skewMs !== 0 ? () => Date.now() + skewMs : Date.now;
    engine = new SyncEngine({ config, policies: policies.book, bus, logger, newId: uuidv7, now });
    await engine.start();
    if (config.http !== undefined) {
      // Off unless configured: a fixed default port would collide between daemons on one host.
      http = new DaemonHttpServer({
        config: { ...config, http: config.http },
        engine,
        logger: logger.child({ component: 'http' }),
        seedConflicts: seedConflicts(engine, logger),
      });
      const url = await http.start();
      logger.info({ url, metrics: `${url}/metrics`, page: `${url}/` }, 'http listening');
    }
    const started = engine;
    upstreamReady.then(
      (nc) => {
        upstream = nc;
        started.attachUpstream(nc);
        logger.info({ server: config.upstream.url }, 'upstream connected');
      },
      (err: unknown) => logger.error({ err }, 'upstream connection abandoned'),
    );
  } catch (err) {
    const message = err instanceof Error ? err.message : String(err);
    process.stderr.write(`ferry daemon: ${message}\n`);
    if (verbose && err instanceof Error && err.stack !== undefined) process.stderr.write(`${err.stack}\n`);
    await http?.stop().catch(() => undefined);
    await engine?.stop().catch(() => undefined);
    await bus?.close().catch(() => undefined);
    await upstream?.close().catch(() => undefined);
    return 1;
  }
  logger.info({ clientId: engine.clientId, dataDir: config.dataDir }, 'daemon ready');
  const running = engine;
  return await new Promise<number>((resolve) => {
    let stopping = false;
    const stop = (signal: string) => {
      if (stopping) {
        logger.warn({ signal }, 'second signal: exiting now');
        process.exit(1);
      }
      stopping = true;
      logger.info({ signal }, 'stopping');
      void (async () => {
        await http?.stop();
        await running.stop();
        await bus?.drain().catch(() => undefined);
        await upstream?.drain().catch(() => undefined);
        logger.info('daemon stopped');
        resolve(0);
      })();
    };
    process.on('SIGTERM', () => stop('SIGTERM'));
    process.on('SIGINT', () => stop('SIGINT'));
  });
}

/** The page starts with the logged conflicts; damaged rows are said, not dropped. */
function seedConflicts(engine: SyncEngine, logger: Logger): LoggedConflict[] {
  const { conflicts, damaged } = recentConflicts(engine.wal.db, 50);
  for (const message of damaged) logger.warn({ code: 'internal', reason: message }, 'conflict log row is damaged');
  return conflicts;
}
