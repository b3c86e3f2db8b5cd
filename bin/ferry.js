#!/usr/bin/env node
// `ferry <role> …`: dispatches to the service that owns the role. Each service
// exports its own `./cli` entry; the two services never import each other.
const ROLES = {
  api: '@ferry/api/cli',
  daemon: '@ferry/sync-daemon/cli',
  attach: '@ferry/sync-daemon/cli',
  detach: '@ferry/sync-daemon/cli',
  status: '@ferry/sync-daemon/cli',
  watch: '@ferry/sync-daemon/cli',
  doctor: '@ferry/sync-daemon/cli',
  demo: '@ferry/sync-daemon/cli',
  start: '@ferry/sync-daemon/cli',
};

const USAGE = `usage: ferry <command> [options]

commands:
  api      --nats-url URL --data-dir DIR [--config FILE]   run the sync API
  daemon   --config FILE                                    run the sync sidecar
  attach   --db FILE [--tables a,b]                         install capture triggers
  detach   --db FILE                                        remove everything attach added
  status   --config FILE [--json]                           one screen of sync status
  watch    --config FILE [--json]                           live sync events
  doctor   --config FILE                                    check NATS, JetStream, stores, clock
  demo                                                      two devices converging
  start    [--dir DIR]                                      NATS, the API and one daemon, locally

run 'ferry <command> --help' for a command's options`;

const [role, ...rest] = process.argv.slice(2);
if (role === undefined || role === '--help' || role === '-h' || role === 'help') {
  process.stdout.write(`${USAGE}\n`);
  process.exit(role === undefined ? 1 : 0);
}
const target = ROLES[role];
if (target === undefined) {
  process.stderr.write(`ferry: unknown command "${role}"\n\n${USAGE}\n`);
  process.exit(2);
}
let mod;
try {
  mod = await import(target);
} catch (err) {
  if (err && err.code === 'ERR_PACKAGE_PATH_NOT_EXPORTED') {
    process.stderr.write(`ferry: ${target} does not export its cli entry; reinstall with "npm ci"\n`);
    process.exit(2);
  }
  if (err && (err.code === 'ERR_MODULE_NOT_FOUND' || err.code === 'MODULE_NOT_FOUND')) {
    process.stderr.write(`ferry: ${target} is not built; run "npm ci" (or "npm run build") first\n`);
    process.exit(2);
  }
  throw err;
}
const code = await mod.runCli(role, rest);
// The role has finished (a service has drained and stopped): exit now, even if a
// library still holds the event loop (e.g. a first connection that never came up).
process.exit(typeof code === 'number' ? code : 0);
