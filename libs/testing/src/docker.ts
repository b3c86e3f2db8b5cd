/**
 * A quick "is a Docker engine reachable?" probe (GET /_ping, short timeout),
 * so tests choose testcontainers or the local nats-server binary without
 * waiting on a dead socket.
 */
import { existsSync } from 'node:fs';
import { request } from 'node:http';

const DEFAULT_SOCKET = '/var/run/docker.sock';

/** Where the engine would listen: DOCKER_HOST (unix:// or tcp://) or the default socket. */
function engineTarget(env: NodeJS.ProcessEnv): { socketPath: string } | { host: string; port: number } | null {
  const dockerHost = env.DOCKER_HOST;
  if (dockerHost === undefined || dockerHost === '')
    return existsSync(DEFAULT_SOCKET) ? { socketPath: DEFAULT_SOCKET } : null;
  if (dockerHost.startsWith('unix://')) return { socketPath: dockerHost.slice('unix://'.length) };
  const tcp = /^tcp:\/\/([^:/]+):(\d+)/.exec(dockerHost);
  if (tcp !== null && tcp[1] !== undefined && tcp[2] !== undefined) return { host: tcp[1], port: Number(tcp[2]) };
  return null;
}

let cached: Promise<boolean> | null = null;

/** True when a Docker engine answers /_ping within `timeoutMs`; probed once per process. */
export function dockerAvailable(timeoutMs = 750, env: NodeJS.ProcessEnv = process.env): Promise<boolean> {
  cached ??= probe(timeoutMs, env);
  return cached;
}

function probe(timeoutMs: number, env: NodeJS.ProcessEnv): Promise<boolean> {
  const target = engineTarget(env);
  if (target === null) return Promise.resolve(false);
  return new Promise((resolve) => {
    const req = request({ ...target, path: '/_ping', method: 'GET', timeout: timeoutMs }, (res) => {
      res.resume();
      resolve(res.statusCode === 200);
    });
    req.on('timeout', () => req.destroy(new Error('timeout')));
    req.on('error', () => resolve(false));
    req.end();
  });
}
