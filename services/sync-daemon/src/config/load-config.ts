/**
 * Reads the daemon's config: a JSON file (`--config` or FERRY_CONFIG) with
 * FERRY_* environment overrides, validated once by the contracts schema.
 * Errors name the file and the key; nothing here throws past the CLI.
 */
import { readFileSync } from 'node:fs';
import { daemonConfigSchema, parseWith, type DaemonConfig } from '@ferry/contracts';

export type LoadResult = { ok: true; config: DaemonConfig } | { ok: false; message: string };

export function loadDaemonConfig(path: string | undefined, env: NodeJS.ProcessEnv): LoadResult {
  const file = path ?? env.FERRY_CONFIG;
  if (file === undefined || file === '')
    return { ok: false, message: 'config: required (give --config FILE or set FERRY_CONFIG)' };
  let raw: unknown;
  try {
    raw = JSON.parse(readFileSync(file, 'utf8'));
  } catch (err) {
    const reason = err instanceof Error ? err.message : String(err);
    return { ok: false, message: `${file}: cannot read a JSON config (${reason})` };
  }
  if (typeof raw !== 'object' || raw === null || Array.isArray(raw))
    return { ok: false, message: `${file}: must hold a JSON object` };
  const merged: Record<string, unknown> = { ...(raw as Record<string, unknown>) };
  // Environment overrides for the values operators most often change per host.
  if (env.FERRY_DATA_DIR !== undefined) merged.dataDir = env.FERRY_DATA_DIR;
  if (env.FERRY_BUS_URL !== undefined) merged.bus = { ...(merged.bus as object), url: env.FERRY_BUS_URL };
  if (env.FERRY_UPSTREAM_URL !== undefined)
    merged.upstream = { ...(merged.upstream as object), url: env.FERRY_UPSTREAM_URL };
  // Setting either turns the HTTP side on (metrics, status page); FERRY_HTTP_PORT=0 picks a free port.
  if (env.FERRY_HTTP_HOST !== undefined || env.FERRY_HTTP_PORT !== undefined) {
    merged.http = {
      ...(merged.http as object),
      ...(env.FERRY_HTTP_HOST === undefined ? {} : { host: env.FERRY_HTTP_HOST }),
      ...(env.FERRY_HTTP_PORT === undefined ? {} : { port: Number(env.FERRY_HTTP_PORT) }),
    };
  }
  const parsed = parseWith(daemonConfigSchema, merged, file);
  return parsed.ok ? { ok: true, config: parsed.value } : { ok: false, message: parsed.message };
}
