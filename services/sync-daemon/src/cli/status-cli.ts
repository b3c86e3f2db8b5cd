/**
 * `ferry status`: one screen about a running daemon — online, pending,
 * cursor, lag, last sync (asked on `ferry.<app>.status`) and its recent
 * conflicts (read from the daemon's conflict log when --config names its
 * dataDir). `--json` prints the same as one JSON object. Never changes anything.
 */
import type { NatsConnection } from '@nats-io/transport-node';
import { decodeWith, statusReplySchema, type StatusReply } from '@ferry/contracts';
import { daemonDbPath, readConflictLog, type ConflictLogRead } from '../observe/conflict-log.js';
import {
  BUS_TARGET_FLAGS,
  CliFailure,
  EXIT_OK,
  EXIT_USAGE,
  checkFlags,
  connectNats,
  flag,
  isNoResponders,
  isTimeout,
  palette,
  resolveBusTarget,
  runCommand,
  type BusTarget,
} from './common.js';
import { ago, clockTime, describeConflict } from './format.js';

export const STATUS_HELP = `usage: ferry status (--config FILE | --bus-url URL --app NAME) [--json] [--conflicts N] [--verbose]

One screen about a running daemon: online, pending changes, cursor, lag, last
sync, and its most recent conflicts. Asks the daemon on ferry.<app>.status over
its local bus; the conflicts come from the daemon's conflict log in its dataDir
(so they need --config, on the daemon's host).

  --config FILE     the daemon's config (bus URL, app, dataDir)   env FERRY_CONFIG
  --bus-url URL     the daemon's local NATS, instead of --config  env FERRY_BUS_URL
  --app NAME        the app the daemon serves, with --bus-url      env FERRY_APP
  --prefix P        bus subject prefix (default "ferry")           env FERRY_BUS_PREFIX
  --conflicts N     how many recent conflicts to show (default 5)
  --json            one JSON object: the status reply plus recentConflicts
  --verbose         stack traces on failure

Exit status: 0 when the daemon answered, 1 when it or its bus is unreachable,
2 for a bad command line or config.`;

/** Asks the daemon for its status; a missing daemon is one clear line. */
export async function requestStatus(nc: NatsConnection, target: BusTarget, timeoutMs = 3000): Promise<StatusReply> {
  let data: Uint8Array;
  try {
    data = (await nc.request(target.subjects.status, new TextEncoder().encode('{}'), { timeout: timeoutMs })).data;
  } catch (err) {
    if (isNoResponders(err)) {
      throw new CliFailure(
        `no daemon answers on ${target.subjects.status} at ${target.url} (is "ferry daemon" running for app "${target.app}"?)`,
      );
    }
    if (isTimeout(err))
      throw new CliFailure(`the daemon did not answer on ${target.subjects.status} within ${timeoutMs} ms`);
    throw err;
  }
  const reply = decodeWith(statusReplySchema, data, 'status reply');
  if (!reply.ok) throw new CliFailure(reply.message);
  return reply.value;
}

export function runStatusCli(argv: readonly string[]): Promise<number> {
  return runCommand('status', argv, async () => {
    if (argv.includes('--help') || argv.includes('-h')) {
      process.stdout.write(`${STATUS_HELP}\n`);
      return EXIT_OK;
    }
    checkFlags(argv, [...BUS_TARGET_FLAGS, '--conflicts'], ['--json', '--verbose']);
    const limit = Number(flag(argv, '--conflicts') ?? '5');
    if (!Number.isInteger(limit) || limit < 0) throw new CliFailure('--conflicts: must be a whole number', EXIT_USAGE);
    const target = resolveBusTarget(argv, process.env);
    const nc = await connectNats(target.url, { ...target.auth, name: 'ferry-status', what: 'the bus' });
    let status: StatusReply;
    try {
      status = await requestStatus(nc, target);
    } finally {
      await nc.close().catch(() => undefined);
    }
    const log =
      target.config === null
        ? ({ ok: false, message: 'give --config to read the conflict log' } as const)
        : readConflictLog(target.config.dataDir, limit);
    if (argv.includes('--json')) {
      process.stdout.write(
        `${JSON.stringify({
          app: target.app,
          bus: target.url,
          ...status,
          recentConflicts: log.ok ? log.conflicts : null,
          ...(log.ok
            ? log.damaged.length > 0
              ? { damagedConflictRows: log.damaged }
              : {}
            : { conflictLogError: log.message }),
        })}\n`,
      );
      return EXIT_OK;
    }
    process.stdout.write(render(target, status, log, limit, Date.now()));
    return EXIT_OK;
  });
}

function render(target: BusTarget, s: StatusReply, log: ConflictLogRead, limit: number, now: number): string {
  const c = palette(process.stdout);
  const row = (label: string, value: string) => `  ${label.padEnd(16)}${value}\n`;
  let out = `${c.bold(`Ferry daemon — app ${target.app}`)} ${c.dim(`(bus ${target.url})`)}\n`;
  out += row('online', s.online ? c.green('yes') : c.red('no — changes queue until the API is reachable'));
  out += row('pending', `${s.pending} change${s.pending === 1 ? '' : 's'} not yet acknowledged by the server`);
  out += row('cursor', `${s.cursor} (server head ${s.cursor + s.lag})`);
  out += row('lag', s.lag === 0 ? 'caught up' : c.yellow(`${s.lag} server action${s.lag === 1 ? '' : 's'} behind`));
  out += row('last sync', s.lastSyncAt === null ? 'never' : `${clockTime(s.lastSyncAt)} (${ago(s.lastSyncAt, now)})`);
  if (limit === 0) return out;
  if (!log.ok) return out + row('conflicts', c.dim(`unavailable: ${log.message}`));
  for (const message of log.damaged) out += row('damaged row', c.red(message));
  if (log.conflicts.length === 0) return out + row('conflicts', 'none recorded');
  out += `  recent conflicts ${c.dim(`(newest first, from ${daemonDbPath(target.config?.dataDir ?? '.')})`)}\n`;
  for (const { at, conflict } of log.conflicts) out += `    ${c.dim(clockTime(at))}  ${describeConflict(conflict)}\n`;
  return out;
}
