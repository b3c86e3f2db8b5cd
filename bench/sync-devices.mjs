// A device of the sync benches: its own JetStream nats-server (the local bus),
// a `ferry daemon` process on it for app "notes" of tenant "acme", and the
// app's connection, returned once the daemon answers its status request.
// Shared by bench:sync and bench:sync:threads.
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { connect } from '@nats-io/transport-node';
import { busSubjects } from '@ferry/contracts';
import { FERRY_BIN, startNatsServer } from '../libs/testing/dist/index.js';

const subjects = busSubjects('notes');

/**
 * Starts a device. What it starts goes into `servers` and `conns` (and the
 * daemon into `procs`) at once, so the caller's cleanup stops it even when
 * the start fails half way.
 *   natsOptions  for startNatsServer, e.g. { mode: 'local' } where a pid is needed
 *   nodeArgs     node flags for the daemon process (a profiler, say)
 */
export async function startDevice({ procs, servers, conns, dir, name, upstreamUrl, natsOptions = {}, nodeArgs = [] }) {
  const bus = await startNatsServer({ ...natsOptions, jetstream: true });
  servers.push(bus);
  const configPath = join(dir, `${name}.json`);
  writeFileSync(
    configPath,
    JSON.stringify({
      app: 'notes',
      tenant: 'acme',
      bus: { url: bus.url },
      upstream: { url: upstreamUrl },
      dataDir: join(dir, name),
    }),
  );
  const daemon = procs.spawn({
    name,
    args: [...nodeArgs, FERRY_BIN, 'daemon', '--config', configPath],
    env: { FERRY_LOG_LEVEL: 'warn' },
  });
  const app = await connect({ servers: bus.url });
  conns.push(app);
  // The daemon logs at warn, so readiness is its status reply.
  const readyBy = Date.now() + 30_000;
  for (;;) {
    try {
      await app.request(subjects.status, new TextEncoder().encode('{}'), { timeout: 500 });
      return { app, daemon, bus };
    } catch {
      if (!daemon.running || Date.now() > readyBy) {
        throw new Error(`${name} never answered its status request:\n${daemon.tail(20)}`);
      }
      await new Promise((r) => setTimeout(r, 50));
    }
  }
}
