/**
 * `ferry api` options: flags over environment over config file, validated by
 * the contracts `apiConfigSchema`. Pure apart from the injected file reader;
 * every failure is one line that names the flag, variable or key.
 */
import { parseArgs } from 'node:util';
import { apiConfigSchema, formatIssues, type ApiConfig } from '@ferry/contracts';
import { resolvePolicies } from '../config/limits.js';

export const API_USAGE = `usage: ferry api --nats-url URL --data-dir DIR [--config FILE] [--verbose]

options:
  --nats-url URL    NATS server to serve on                   (env FERRY_NATS_URL)
  --data-dir DIR    where the store file lives (created)      (env FERRY_DATA_DIR)
  --config FILE     JSON config: collections, limits,         (env FERRY_CONFIG)
                    retention, queueGroup, nats credentials
  --verbose         debug logs, stack traces on errors        (env FERRY_VERBOSE=1)
  --help            this text

environment only: FERRY_NATS_USER, FERRY_NATS_PASS, FERRY_NATS_TOKEN (NATS credentials)
precedence: flags > environment > config file`;

export interface ApiArgs {
  readonly help: boolean;
  readonly verbose: boolean;
  readonly natsUrl?: string;
  readonly dataDir?: string;
  readonly config?: string;
}

export type Parsed<T> = { ok: true; value: T } | { ok: false; message: string };

export function parseApiArgs(argv: readonly string[]): Parsed<ApiArgs> {
  try {
    const { values } = parseArgs({
      args: [...argv],
      strict: true,
      allowPositionals: false,
      options: {
        'nats-url': { type: 'string' },
        'data-dir': { type: 'string' },
        config: { type: 'string' },
        verbose: { type: 'boolean', short: 'v' },
        help: { type: 'boolean', short: 'h' },
      },
    });
    const args: { -readonly [K in keyof ApiArgs]: ApiArgs[K] } = {
      help: values.help === true,
      verbose: values.verbose === true,
    };
    if (values['nats-url'] !== undefined) args.natsUrl = values['nats-url'];
    if (values['data-dir'] !== undefined) args.dataDir = values['data-dir'];
    if (values.config !== undefined) args.config = values.config;
    return { ok: true, value: args };
  } catch (err) {
    return { ok: false, message: err instanceof Error ? err.message : String(err) };
  }
}

export type Env = Readonly<Record<string, string | undefined>>;
export type ReadFile = (path: string) => string;

export interface ResolvedApiOptions {
  readonly config: ApiConfig;
  readonly verbose: boolean;
}

export function resolveApiOptions(args: ApiArgs, env: Env, readFile: ReadFile): Parsed<ResolvedApiOptions> {
  const verbose = args.verbose || env.FERRY_VERBOSE === '1' || env.FERRY_VERBOSE === 'true';
  const configPath = args.config ?? nonEmpty(env.FERRY_CONFIG);
  let fromFile: Record<string, unknown> = {};
  if (configPath !== undefined) {
    const loaded = loadConfigFile(configPath, readFile);
    if (!loaded.ok) return loaded;
    fromFile = loaded.value;
  }

  const merged: Record<string, unknown> = { ...fromFile };
  const natsUrl = args.natsUrl ?? nonEmpty(env.FERRY_NATS_URL);
  if (natsUrl !== undefined) merged.natsUrl = natsUrl;
  const dataDir = args.dataDir ?? nonEmpty(env.FERRY_DATA_DIR);
  if (dataDir !== undefined) merged.dataDir = dataDir;
  const credentials = credentialsFromEnv(env);
  if (credentials !== null) {
    const fileNats = typeof fromFile.nats === 'object' && fromFile.nats !== null ? fromFile.nats : {};
    merged.nats = { ...fileNats, ...credentials };
  }

  if (merged.natsUrl === undefined) return missing('natsUrl', '--nats-url', 'FERRY_NATS_URL');
  if (merged.dataDir === undefined) return missing('dataDir', '--data-dir', 'FERRY_DATA_DIR');
  const parsed = apiConfigSchema.safeParse(merged);
  if (!parsed.success) return { ok: false, message: formatIssues(parsed.error.issues, 'invalid configuration') };
  const policies = resolvePolicies(parsed.data.collections);
  if (!policies.ok) return { ok: false, message: `invalid configuration: ${policies.message}` };
  return { ok: true, value: { config: parsed.data, verbose } };
}

function loadConfigFile(path: string, readFile: ReadFile): Parsed<Record<string, unknown>> {
  let text: string;
  try {
    text = readFile(path);
  } catch (err) {
    const code = (err as { code?: unknown }).code;
    return { ok: false, message: `config ${path}: cannot read it (${typeof code === 'string' ? code : String(err)})` };
  }
  let raw: unknown;
  try {
    raw = JSON.parse(text);
  } catch (err) {
    return {
      ok: false,
      message: `config ${path}: not valid JSON (${err instanceof Error ? err.message : String(err)})`,
    };
  }
  if (typeof raw !== 'object' || raw === null || Array.isArray(raw)) {
    return { ok: false, message: `config ${path}: must be a JSON object` };
  }
  return { ok: true, value: raw as Record<string, unknown> };
}

function credentialsFromEnv(env: Env): Record<string, string> | null {
  const out: Record<string, string> = {};
  const user = nonEmpty(env.FERRY_NATS_USER);
  const pass = nonEmpty(env.FERRY_NATS_PASS);
  const token = nonEmpty(env.FERRY_NATS_TOKEN);
  if (user !== undefined) out.user = user;
  if (pass !== undefined) out.pass = pass;
  if (token !== undefined) out.token = token;
  return Object.keys(out).length === 0 ? null : out;
}

function missing(key: string, flag: string, envName: string): Parsed<never> {
  return { ok: false, message: `${key}: required (give ${flag}, set ${envName}, or put "${key}" in the config file)` };
}

function nonEmpty(value: string | undefined): string | undefined {
  return value === undefined || value === '' ? undefined : value;
}
