// An in-process API on a real nats-server and a real store file, with its log
// lines captured, plus small request helpers that parse replies with the contracts.
import { Writable } from 'node:stream';
import { apiConfigSchema, apiSubjects, type ApiConfigInput } from '@ferry/contracts';
import { connect, type NatsConnection, type NodeConnectionOptions } from '@nats-io/transport-node';
import { makeTempDir, type TempDir } from '@ferry/testing';
import { ApiApp } from '../../src/service/api-app.js';
import { createLogger } from '../../src/observe/logger.js';

export interface InProcessApi {
  readonly app: ApiApp;
  readonly dataDir: TempDir;
  readonly logs: string[];
  stop(): Promise<void>;
}

export async function startInProcessApi(
  natsUrl: string,
  overrides: Partial<ApiConfigInput> = {},
  now?: () => number,
): Promise<InProcessApi> {
  const dataDir = await makeTempDir('ferry-api-data-');
  const logs: string[] = [];
  const sink = new Writable({
    write(chunk: Buffer, _enc, done) {
      logs.push(
        ...chunk
          .toString('utf8')
          .split('\n')
          .filter((l) => l !== ''),
      );
      done();
    },
  });
  const config = apiConfigSchema.parse({ natsUrl, dataDir: dataDir.path, ...overrides });
  const options = now === undefined ? {} : { now };
  const app = new ApiApp({ config, logger: createLogger({ level: 'debug', destination: sink }), ...options });
  await app.run();
  return {
    app,
    dataDir,
    logs,
    async stop() {
      await app.stop();
      await dataDir.remove();
    },
  };
}

export function client(url: string, options: Omit<NodeConnectionOptions, 'servers'> = {}): Promise<NatsConnection> {
  return connect({ servers: url, ...options });
}

/** Sends a request (object → JSON, string/bytes as is) and returns the parsed reply. */
export async function ask(
  nc: NatsConnection,
  subject: string,
  body: unknown,
  timeout = 5000,
): Promise<Record<string, unknown>> {
  const payload = typeof body === 'string' || body instanceof Uint8Array ? body : JSON.stringify(body);
  const reply = await nc.request(subject, payload, { timeout });
  return reply.json<Record<string, unknown>>();
}

export const subjects = (tenant: string) => ({
  push: apiSubjects.push(tenant),
  pull: apiSubjects.pull(tenant),
  snapshot: apiSubjects.snapshot(tenant),
  feed: apiSubjects.feed(tenant),
});
