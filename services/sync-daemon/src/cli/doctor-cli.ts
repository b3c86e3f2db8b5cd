/**
 * `ferry doctor --config FILE`: checks, one line each, what a daemon needs —
 * the config, the bus NATS and its JetStream, the upstream NATS and the sync
 * API behind it, the stores (daemon file, app file), the clock against the
 * servers, and whether a daemon answers. Exits 1 if any check fails (2 for a
 * bad config). Touches nothing but a short-lived probe stream (below).
 *
 * Clock drift: core NATS carries no server time, so the doctor creates a
 * throw-away in-memory JetStream stream and reads its `created` time (set by
 * the server's clock) against the local clock at the request's midpoint;
 * the error bound is half the round trip. Where the user may not use
 * JetStream (the upstream under deploy/nats/auth.conf), the check says so.
 */
import { randomBytes } from 'node:crypto';
import { accessSync, constants, existsSync } from 'node:fs';
import { jetstreamManager, StorageType, type JetStreamManager } from '@nats-io/jetstream';
import type { NatsConnection } from '@nats-io/transport-node';
import {
  apiSubjects,
  busSubjects,
  captureStreamName,
  DEFAULT_LIMITS,
  decodeWith,
  pullResponseSchema,
  type DaemonConfig,
} from '@ferry/contracts';
import { policyBookFromConfig } from '@ferry/domain';
import { loadDaemonConfig } from '../config/load-config.js';
import { daemonDbPath } from '../observe/conflict-log.js';
import { checkSqliteFile } from '../observe/store-check.js';
import {
  CliFailure,
  EXIT_FAILURE,
  EXIT_OK,
  EXIT_USAGE,
  checkFlags,
  connectNats,
  flag,
  isNoResponders,
  palette,
  pickAuth,
  runCommand,
} from './common.js';
import { requestStatus } from './status-cli.js';

export const DOCTOR_HELP = `usage: ferry doctor --config FILE [--json] [--verbose]

Checks what the daemon configured in FILE needs, one line each:
  config       the file parses (names the key that is wrong)
  bus          the local NATS answers, and has JetStream (capture needs it)
  upstream     the upstream NATS answers, and the sync API answers on it
  stores       dataDir is writable; the daemon's SQLite file (and the app's,
               in SQLite mode) is readable and passes an integrity check
  clock        local clock against the NATS servers' (the API refuses actions
               more than 60 s ahead)
  daemon       a daemon answers on ferry.<app>.status (a warning if not)

  --config FILE   the daemon config to check     env FERRY_CONFIG
  --json          the checks as one JSON array
  --verbose       stack traces on failure

Exit status: 0 when nothing failed (warnings allowed), 1 when a check failed,
2 when the config itself is invalid.`;

type Verdict = 'ok' | 'warn' | 'fail' | 'skip';
interface Check {
  readonly check: string;
  readonly status: Verdict;
  readonly message: string;
}

/** Below this a drift is noise; at the API's limit actions are refused. */
const DRIFT_OK_MS = 1000;

export function runDoctorCli(argv: readonly string[]): Promise<number> {
  return runCommand('doctor', argv, async () => {
    if (argv.includes('--help') || argv.includes('-h')) {
      process.stdout.write(`${DOCTOR_HELP}\n`);
      return EXIT_OK;
    }
    checkFlags(argv, ['--config'], ['--json', '--verbose']);
    const json = argv.includes('--json');
    const report = new Report(json);
    const path = flag(argv, '--config') ?? process.env.FERRY_CONFIG;
    const loaded = loadDaemonConfig(path, process.env);
    if (!loaded.ok) {
      report.add('config', 'fail', loaded.message);
      report.finish();
      return EXIT_USAGE;
    }
    const config = loaded.config;
    const policies = policyBookFromConfig(config.collections);
    if (!policies.ok) {
      report.add('config', 'fail', policies.message);
      report.finish();
      return EXIT_USAGE;
    }
    const collections = Object.keys(config.collections).length;
    report.add(
      'config',
      'ok',
      `${path ?? ''} is valid (app ${config.app}, tenant ${config.tenant}, ${collections} configured collection${collections === 1 ? '' : 's'}, source ${config.source.kind})`,
    );
    checkStores(config, report);

    const bus = await tryConnect(config.bus.url, pickAuth(config.bus), 'bus', report);
    const upstream = await tryConnect(
      config.upstream.url,
      { ...pickAuth(config.upstream), inboxPrefix: `_INBOX_${config.tenant}` },
      'upstream',
      report,
    );
    try {
      if (bus !== null) await checkJetStream(bus, config, report);
      if (upstream !== null) await checkApi(upstream, config, report);
      await checkClock(bus, upstream, report);
      if (bus !== null) {
        try {
          const target = {
            url: config.bus.url,
            app: config.app,
            subjects: busSubjects(config.app, config.bus.prefix),
            auth: {},
            config,
          };
          const s = await requestStatus(bus, target, 2000);
          report.add(
            'daemon',
            'ok',
            `answers on ${target.subjects.status}: ${s.online ? 'online' : 'offline'}, ${s.pending} pending, cursor ${s.cursor}, lag ${s.lag}`,
          );
        } catch (err) {
          report.add('daemon', 'warn', err instanceof Error ? err.message : String(err));
        }
      } else report.add('daemon', 'skip', 'the bus is unreachable');
    } finally {
      await bus?.close().catch(() => undefined);
      await upstream?.close().catch(() => undefined);
    }
    report.finish();
    return report.failed ? EXIT_FAILURE : EXIT_OK;
  });
}

class Report {
  readonly #checks: Check[] = [];
  readonly #json: boolean;
  readonly #c = palette(process.stdout);

  constructor(json: boolean) {
    this.#json = json;
  }

  get failed(): boolean {
    return this.#checks.some((c) => c.status === 'fail');
  }

  add(check: string, status: Verdict, message: string): void {
    this.#checks.push({ check, status, message });
    if (this.#json) return;
    const c = this.#c;
    const mark = { ok: c.green('✓'), warn: c.yellow('!'), fail: c.red('✗'), skip: c.dim('-') }[status];
    process.stdout.write(`${mark} ${check.padEnd(10)} ${status === 'skip' ? c.dim(message) : message}\n`);
  }

  finish(): void {
    if (this.#json) {
      process.stdout.write(`${JSON.stringify(this.#checks)}\n`);
      return;
    }
    const fails = this.#checks.filter((c) => c.status === 'fail').length;
    const warns = this.#checks.filter((c) => c.status === 'warn').length;
    const summary =
      fails > 0 ? this.#c.red(`${fails} check${fails === 1 ? '' : 's'} failed`) : this.#c.green('all checks passed');
    process.stdout.write(`${summary}${warns > 0 ? `, ${warns} warning${warns === 1 ? '' : 's'}` : ''}\n`);
  }
}

async function tryConnect(
  url: string,
  options: Record<string, string>,
  what: 'bus' | 'upstream',
  report: Report,
): Promise<NatsConnection | null> {
  try {
    const nc = await connectNats(url, { ...options, name: `ferry-doctor-${what}`, what: `the ${what} NATS` });
    const info = nc.info;
    report.add(
      what,
      'ok',
      `${url} answers (nats-server ${info?.version ?? '?'}, max_payload ${Math.round((info?.max_payload ?? 0) / 1024)} KiB)`,
    );
    return nc;
  } catch (err) {
    report.add(what, 'fail', err instanceof CliFailure ? err.message : `${url}: ${String(err)}`);
    return null;
  }
}

function checkStores(config: DaemonConfig, report: Report): void {
  if (existsSync(config.dataDir)) {
    try {
      accessSync(config.dataDir, constants.W_OK);
    } catch {
      report.add('stores', 'fail', `dataDir ${config.dataDir} is not writable`);
    }
  }
  const files: [string, string, boolean][] = [[daemonDbPath(config.dataDir), 'daemon store', false]];
  if (config.source.kind === 'sqlite') files.push([config.source.path, 'app database', true]);
  for (const [path, label, mustExist] of files) {
    const store = checkSqliteFile(path, { thorough: true });
    if (!store.ok) report.add('stores', 'fail', `${label}: ${store.message}`);
    else if (!store.exists) {
      report.add(
        'stores',
        mustExist ? 'fail' : 'ok',
        mustExist ? `${label} ${path} does not exist` : `${label} ${path} not created yet (the daemon creates it)`,
      );
    } else report.add('stores', 'ok', `${label} ${path} readable (${store.bytes} bytes, ${store.detail})`);
  }
}

async function checkJetStream(bus: NatsConnection, config: DaemonConfig, report: Report): Promise<void> {
  let jsm: JetStreamManager;
  try {
    jsm = await jetstreamManager(bus, { timeout: 3000 });
  } catch (err) {
    report.add(
      'jetstream',
      'fail',
      `not available on the bus ${config.bus.url} (${err instanceof Error ? err.message : String(err)}); start nats-server with -js`,
    );
    return;
  }
  const stream = captureStreamName(config.app);
  try {
    const info = await jsm.streams.info(stream);
    report.add(
      'jetstream',
      'ok',
      `enabled; capture stream ${stream} holds ${info.state.messages} uncaptured message(s)`,
    );
  } catch {
    report.add('jetstream', 'ok', `enabled; capture stream ${stream} not created yet (the daemon creates it)`);
  }
}

async function checkApi(upstream: NatsConnection, config: DaemonConfig, report: Report): Promise<void> {
  const subject = apiSubjects.pull(config.tenant);
  // A cursor beyond any head: the API answers resetRequired, sends no data and records nothing.
  const probe = new TextEncoder().encode(JSON.stringify({ since: Number.MAX_SAFE_INTEGER, limit: 1 }));
  try {
    const reply = await upstream.request(subject, probe, { timeout: 3000 });
    const decoded = decodeWith(pullResponseSchema, reply.data, 'pull reply');
    if (!decoded.ok) report.add('api', 'fail', `unexpected reply on ${subject}: ${decoded.message}`);
    else if ('error' in decoded.value)
      report.add('api', 'fail', `${subject}: ${decoded.value.error.code}: ${decoded.value.error.message}`);
    else report.add('api', 'ok', `answers on ${subject}`);
  } catch (err) {
    report.add(
      'api',
      'fail',
      isNoResponders(err)
        ? `no sync API answers on ${subject} (is "ferry api" running against ${config.upstream.url}?)`
        : `${subject}: ${err instanceof Error ? err.message : String(err)}`,
    );
  }
}

type Drift = { ok: true; driftMs: number; boundMs: number } | { ok: false; reason: string };

/** Server time from a throw-away stream's creation time (see the module header). */
async function measureDrift(nc: NatsConnection): Promise<Drift> {
  let jsm: JetStreamManager;
  try {
    jsm = await jetstreamManager(nc, { timeout: 3000 });
  } catch (err) {
    return { ok: false, reason: `no JetStream for this user (${err instanceof Error ? err.message : String(err)})` };
  }
  const name = `FERRY_DOCTOR_${randomBytes(6).toString('hex').toUpperCase()}`;
  try {
    const t0 = Date.now();
    // No subjects given: the server binds the stream to its own (random) name, which nothing else uses.
    const info = await jsm.streams.add({ name, storage: StorageType.Memory, max_msgs: 1 });
    const t1 = Date.now();
    const created = Date.parse(info.created.replace(/(\.\d{3})\d+/, '$1'));
    if (!Number.isFinite(created)) return { ok: false, reason: `unreadable server time "${info.created}"` };
    return { ok: true, driftMs: Math.round((t0 + t1) / 2 - created), boundMs: Math.ceil((t1 - t0) / 2) };
  } catch (err) {
    return { ok: false, reason: `cannot create a probe stream (${err instanceof Error ? err.message : String(err)})` };
  } finally {
    await jsm.streams.delete(name).catch(() => undefined);
  }
}

async function checkClock(bus: NatsConnection | null, upstream: NatsConnection | null, report: Report): Promise<void> {
  const limit = DEFAULT_LIMITS.maxClockDriftMs;
  const parts: string[] = [];
  let worst = 0;
  let measured = 0;
  for (const [label, nc] of [
    ['upstream', upstream],
    ['bus', bus],
  ] as const) {
    if (nc === null) {
      parts.push(`${label}: unreachable`);
      continue;
    }
    const d = await measureDrift(nc);
    if (!d.ok) {
      parts.push(`${label}: not measured, ${d.reason}`);
      continue;
    }
    measured++;
    worst = Math.max(worst, Math.abs(d.driftMs) - d.boundMs);
    const sign = d.driftMs > 0 ? '+' : '';
    parts.push(`${label}: local clock ${sign}${d.driftMs} ms (±${d.boundMs} ms) against the server`);
  }
  const message = parts.join('; ');
  if (measured === 0) report.add('clock', 'warn', message);
  else if (worst >= limit) report.add('clock', 'fail', `${message} — the API refuses actions over ${limit} ms ahead`);
  else if (worst >= DRIFT_OK_MS) report.add('clock', 'warn', `${message} — keep clocks in sync (NTP)`);
  else report.add('clock', 'ok', message);
}
