/**
 * What the operator commands (status, watch, doctor, demo, start) share: flag
 * parsing, the one-line failure with an exit code, finding the daemon's bus
 * from `--config` or `--bus-url` + `--app`, and connecting to it. A failure is
 * one line on stderr (a stack trace only with --verbose), never an exception.
 */
import { connect, type ConnectionOptions, type NatsConnection } from '@nats-io/transport-node';
import { appNameSchema, busSubjects, DEFAULT_BUS_PREFIX, type BusSubjects, type DaemonConfig } from '@ferry/contracts';
import { loadDaemonConfig } from '../config/load-config.js';

export const EXIT_OK = 0;
/** The thing checked or asked for failed: NATS unreachable, no daemon answering, a store unreadable. */
export const EXIT_FAILURE = 1;
/** The command line or the config is wrong. */
export const EXIT_USAGE = 2;

/** A failure the command reports as one line; `exitCode` tells usage errors from runtime ones. */
export class CliFailure extends Error {
  override readonly name = 'CliFailure';
  constructor(
    message: string,
    readonly exitCode: number = EXIT_FAILURE,
    options?: { cause?: unknown },
  ) {
    super(message, options);
  }
}

export function flag(argv: readonly string[], name: string): string | undefined {
  const at = argv.indexOf(name);
  if (at >= 0) return argv[at + 1];
  const eq = argv.find((a) => a.startsWith(`${name}=`));
  return eq?.slice(name.length + 1);
}

/** Refuses flags the command does not know, naming the first one (a typo must not be ignored). */
export function checkFlags(argv: readonly string[], valued: readonly string[], booleans: readonly string[]): void {
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i] ?? '';
    const name = arg.includes('=') ? arg.slice(0, arg.indexOf('=')) : arg;
    if (valued.includes(name)) {
      if (!arg.includes('=')) {
        const value = argv[i + 1];
        if (value === undefined || value.startsWith('--')) throw new CliFailure(`${name} needs a value`, EXIT_USAGE);
        i++;
      }
      continue;
    }
    if (booleans.includes(arg)) continue;
    throw new CliFailure(`unknown option "${arg}"`, EXIT_USAGE);
  }
}

/**
 * Runs a command body and turns every failure into one line on stderr and an
 * exit code; only --verbose adds the stack.
 */
export async function runCommand(role: string, argv: readonly string[], body: () => Promise<number>): Promise<number> {
  const verbose = argv.includes('--verbose');
  try {
    return await body();
  } catch (err) {
    const message = err instanceof Error ? err.message : String(err);
    process.stderr.write(`ferry ${role}: ${message.split('\n')[0]}\n`);
    if (verbose && err instanceof Error && err.stack !== undefined) process.stderr.write(`${err.stack}\n`);
    return err instanceof CliFailure ? err.exitCode : EXIT_FAILURE;
  }
}

/** Where a running daemon listens: its bus and subjects, and its config when given one. */
export interface BusTarget {
  readonly url: string;
  readonly app: string;
  readonly subjects: BusSubjects;
  readonly auth: { user?: string; pass?: string; token?: string };
  readonly config: DaemonConfig | null;
}

export const BUS_TARGET_FLAGS = ['--config', '--bus-url', '--app', '--prefix'] as const;

/** `--config FILE` (or FERRY_CONFIG), else `--bus-url URL --app NAME` (or FERRY_BUS_URL, FERRY_APP). */
export function resolveBusTarget(argv: readonly string[], env: NodeJS.ProcessEnv): BusTarget {
  const busUrl = flag(argv, '--bus-url');
  const configPath = flag(argv, '--config') ?? (busUrl === undefined ? env.FERRY_CONFIG : undefined);
  if (configPath !== undefined) {
    const loaded = loadDaemonConfig(configPath, env);
    if (!loaded.ok) throw new CliFailure(loaded.message, EXIT_USAGE);
    const config = loaded.config;
    return {
      url: busUrl ?? config.bus.url,
      app: config.app,
      subjects: busSubjects(config.app, config.bus.prefix),
      auth: pickAuth(config.bus),
      config,
    };
  }
  const url = busUrl ?? env.FERRY_BUS_URL;
  const app = flag(argv, '--app') ?? env.FERRY_APP;
  if (url === undefined || app === undefined) {
    throw new CliFailure('give --config FILE (the daemon config), or --bus-url URL and --app NAME', EXIT_USAGE);
  }
  if (!/^(nats|tls|ws|wss):\/\/\S+$/.test(url)) {
    throw new CliFailure(`--bus-url: must be a nats:// (or tls://, ws://, wss://) URL, got "${url}"`, EXIT_USAGE);
  }
  const parsedApp = appNameSchema.safeParse(app);
  if (!parsedApp.success) throw new CliFailure(`--app: must match [a-z0-9][a-z0-9_-]{0,63}, got "${app}"`, EXIT_USAGE);
  const prefix = flag(argv, '--prefix') ?? env.FERRY_BUS_PREFIX ?? DEFAULT_BUS_PREFIX;
  return { url, app, subjects: busSubjects(app, prefix), auth: {}, config: null };
}

export function pickAuth(c: { user?: string | undefined; pass?: string | undefined; token?: string | undefined }): {
  user?: string;
  pass?: string;
  token?: string;
} {
  return {
    ...(c.user === undefined ? {} : { user: c.user }),
    ...(c.pass === undefined ? {} : { pass: c.pass }),
    ...(c.token === undefined ? {} : { token: c.token }),
  };
}

/** Why a NATS connect failed, in words an operator can act on. */
export function describeConnectError(err: unknown): string {
  if (!(err instanceof Error)) return String(err);
  const code = (err as { code?: unknown }).code;
  if (err.name === 'TimeoutError') return 'no answer (timed out)';
  if (code === 'ENOTFOUND' || code === 'EAI_AGAIN') return `unknown host (${err.message})`;
  if (err.name === 'AuthorizationError' || /authorization/i.test(err.message)) return 'authorization refused';
  return err.message;
}

/**
 * Connects once, failing fast with one clear line when the server is not
 * there. `follow: true` then keeps reconnecting for long-running commands.
 */
export async function connectNats(
  url: string,
  options: Partial<ConnectionOptions> & { follow?: boolean; what?: string } = {},
): Promise<NatsConnection> {
  const { follow, what, ...rest } = options;
  try {
    return await connect({
      servers: url,
      timeout: 3000,
      maxReconnectAttempts: follow === true ? -1 : 0,
      ...rest,
    });
  } catch (err) {
    throw new CliFailure(`cannot reach ${what ?? 'NATS'} at ${url}: ${describeConnectError(err)}`, EXIT_FAILURE, {
      cause: err,
    });
  }
}

/** nats.js v3 throws a RequestError whose cause is a NoResponders error; match by name, not class. */
function errorOrCauseNamed(err: unknown, pattern: RegExp): boolean {
  if (!(err instanceof Error)) return false;
  if (pattern.test(err.name)) return true;
  const cause = (err as { cause?: unknown }).cause;
  return cause instanceof Error && pattern.test(cause.name);
}

export function isNoResponders(err: unknown): boolean {
  return errorOrCauseNamed(err, /^NoResponders/);
}

export function isTimeout(err: unknown): boolean {
  return errorOrCauseNamed(err, /^Timeout/);
}

/** ANSI styling only on a terminal (and never under NO_COLOR). */
export function palette(stream: NodeJS.WriteStream): {
  bold: (s: string) => string;
  dim: (s: string) => string;
  green: (s: string) => string;
  red: (s: string) => string;
  yellow: (s: string) => string;
  cyan: (s: string) => string;
} {
  const on = stream.isTTY === true && process.env.NO_COLOR === undefined;
  const wrap = (open: number, close: number) => (s: string) => (on ? `\u001b[${open}m${s}\u001b[${close}m` : s);
  return {
    bold: wrap(1, 22),
    dim: wrap(2, 22),
    green: wrap(32, 39),
    red: wrap(31, 39),
    yellow: wrap(33, 39),
    cyan: wrap(36, 39),
  };
}
