// Shared by the end-to-end tests: JSON over NATS, a deadline poller for
// convergence across processes, and spawning a daemon process from a config.
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { FERRY_BIN, type ProcessGroup, type ServiceProcess } from '@ferry/testing';

export const enc = (v: unknown): Uint8Array => new TextEncoder().encode(JSON.stringify(v));
export const dec = <T>(d: Uint8Array): T => JSON.parse(new TextDecoder().decode(d)) as T;

/**
 * Polls `check` until it holds. Convergence spans processes, so there is no
 * single event to await; the deadline turns a hang into a failure that says
 * what it waited for (and, with `describe`, what it saw).
 */
export async function eventually(
  what: string,
  check: () => Promise<boolean> | boolean,
  options: { timeoutMs?: number; describe?: () => Promise<string> } = {},
): Promise<void> {
  const deadline = Date.now() + (options.timeoutMs ?? 20_000);
  for (;;) {
    if (await check()) return;
    if (Date.now() > deadline) {
      const seen = options.describe === undefined ? '' : `: ${await options.describe()}`;
      throw new Error(`timed out waiting for ${what}${seen}`);
    }
    await new Promise((r) => setTimeout(r, 50));
  }
}

/** Writes a daemon config for app "notes" of tenant "acme" and returns its path. */
export function writeDaemonConfig(
  dir: string,
  name: string,
  urls: { bus: string; upstream: string },
  extra: Record<string, unknown> = {},
): string {
  const path = join(dir, `${name}.json`);
  writeFileSync(
    path,
    JSON.stringify({
      app: 'notes',
      tenant: 'acme',
      bus: { url: urls.bus },
      upstream: { url: urls.upstream },
      dataDir: join(dir, name),
      ...extra,
    }),
  );
  return path;
}

/** Spawns `ferry daemon --config` and resolves once it says it is ready. */
export async function spawnDaemon(
  procs: ProcessGroup,
  name: string,
  configPath: string,
  env: Record<string, string> = {},
): Promise<ServiceProcess> {
  const daemon = procs.spawn({ name, args: [FERRY_BIN, 'daemon', '--config', configPath], env });
  await daemon.waitForLine(/daemon ready/, 20_000);
  return daemon;
}

/** Spawns `ferry api` on `natsUrl` with its store under `dataDir`, resolving once it is ready. */
export async function spawnApi(
  procs: ProcessGroup,
  natsUrl: string,
  dataDir: string,
  extraArgs: readonly string[] = [],
): Promise<ServiceProcess> {
  const api = procs.spawn({
    name: 'api',
    args: [FERRY_BIN, 'api', '--nats-url', natsUrl, '--data-dir', dataDir, ...extraArgs],
  });
  await api.waitForLine(/api ready/, 20_000);
  return api;
}
