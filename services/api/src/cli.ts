/**
 * The API's `main`: `ferry api …`. The only module that reads process.env,
 * writes to stderr and installs signal handlers. SIGTERM/SIGINT drain and
 * exit 0; a second signal exits at once.
 */
import { readFileSync } from 'node:fs';
import { API_USAGE, parseApiArgs, resolveApiOptions } from './cli/api-args.js';
import { createLogger } from './observe/logger.js';
import { ApiApp } from './service/api-app.js';

const EXIT_OK = 0;
const EXIT_FAILURE = 1;
const EXIT_USAGE = 2;

export async function runCli(role: string, argv: string[]): Promise<number> {
  if (role !== 'api') {
    process.stderr.write(`ferry: "${role}" is not served by @ferry/api\n`);
    return EXIT_USAGE;
  }
  const args = parseApiArgs(argv);
  if (!args.ok) {
    process.stderr.write(`ferry api: ${args.message}\nrun 'ferry api --help' for the options\n`);
    return EXIT_USAGE;
  }
  if (args.value.help) {
    process.stdout.write(`${API_USAGE}\n`);
    return EXIT_OK;
  }
  const resolved = resolveApiOptions(args.value, process.env, (path) => readFileSync(path, 'utf8'));
  if (!resolved.ok) {
    process.stderr.write(`ferry api: ${resolved.message}\n`);
    return EXIT_USAGE;
  }
  const { config, verbose } = resolved.value;
  const logger = createLogger({ level: verbose ? 'debug' : 'info' });
  const app = new ApiApp({ config, logger });

  let signalled: (signal: NodeJS.Signals) => void = () => undefined;
  const stopRequested = new Promise<NodeJS.Signals>((resolve) => (signalled = resolve));
  let signals = 0;
  const onSignal = (signal: NodeJS.Signals): void => {
    signals++;
    if (signals > 1) {
      logger.warn({ signal }, 'second signal: exiting without draining');
      process.exit(EXIT_FAILURE);
    }
    logger.info({ signal }, 'stopping: draining requests');
    signalled(signal);
  };
  const onFatal = (err: unknown): void => {
    logger.fatal({ err }, 'uncaught error; exiting');
    process.exit(EXIT_FAILURE);
  };
  process.on('SIGTERM', onSignal);
  process.on('SIGINT', onSignal);
  process.on('uncaughtException', onFatal);
  process.on('unhandledRejection', onFatal);
  try {
    try {
      await app.run();
    } catch (err) {
      const message = err instanceof Error ? err.message : String(err);
      process.stderr.write(`ferry api: ${message}\n`);
      if (verbose && err instanceof Error && err.stack !== undefined) process.stderr.write(`${err.stack}\n`);
      return EXIT_FAILURE;
    }
    logger.info({ natsUrl: config.natsUrl, dataDir: config.dataDir, queue: config.queueGroup }, 'api ready');

    const outcome = await Promise.race([
      stopRequested.then((signal) => ({ kind: 'signal' as const, signal })),
      app.closed().then((err) => ({ kind: 'closed' as const, err })),
    ]);
    if (outcome.kind === 'closed') {
      logger.error({ err: outcome.err }, 'nats connection closed unexpectedly');
      await app.stop();
      return EXIT_FAILURE;
    }
    await app.stop();
    return EXIT_OK;
  } finally {
    process.off('SIGTERM', onSignal);
    process.off('SIGINT', onSignal);
    process.off('uncaughtException', onFatal);
    process.off('unhandledRejection', onFatal);
  }
}
