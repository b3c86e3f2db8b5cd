// `ferry api`: option precedence and error lines (pure), and the real process
// started through bin/ferry.js: readiness, clear failures, SIGTERM drains and exits 0.
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { pushReplySchema } from '@ferry/contracts';
import { makeTempDir, ProcessGroup, startNatsServer, type NatsServerHandle, type TempDir } from '@ferry/testing';
import { parseApiArgs, resolveApiOptions, type ApiArgs, type Env } from '../src/cli/api-args.js';
import { ask, client, subjects } from './support/api-fixture.js';
import { simClient } from './support/actions.js';

const noFile = (path: string): string => {
  throw Object.assign(new Error(`ENOENT: ${path}`), { code: 'ENOENT' });
};
const files =
  (content: Record<string, string>) =>
  (path: string): string => {
    const text = content[path];
    return text === undefined ? noFile(path) : text;
  };
const args = (argv: string[]): ApiArgs => {
  const parsed = parseApiArgs(argv);
  if (!parsed.ok) throw new Error(parsed.message);
  return parsed.value;
};

describe('ferry api options', () => {
  it('takes flags over environment over the config file', () => {
    const file = files({
      'c.json': JSON.stringify({ natsUrl: 'nats://file:4222', dataDir: '/file', queueGroup: 'q-file' }),
    });
    const env: Env = { FERRY_CONFIG: 'c.json', FERRY_NATS_URL: 'nats://env:4222', FERRY_DATA_DIR: '/env' };
    const fromEnv = resolveApiOptions(args([]), env, file);
    expect(fromEnv.ok && fromEnv.value.config).toMatchObject({
      natsUrl: 'nats://env:4222',
      dataDir: '/env',
      queueGroup: 'q-file',
    });
    const fromFlags = resolveApiOptions(args(['--nats-url', 'nats://flag:4222', '--data-dir', '/flag']), env, file);
    expect(fromFlags.ok && fromFlags.value.config).toMatchObject({ natsUrl: 'nats://flag:4222', dataDir: '/flag' });
    const onlyFile = resolveApiOptions(args(['--config', 'c.json']), {}, file);
    expect(onlyFile.ok && onlyFile.value.config).toMatchObject({ natsUrl: 'nats://file:4222', queueGroup: 'q-file' });
  });

  it('fills defaults from the contracts schema, credentials from the environment', () => {
    const r = resolveApiOptions(
      args(['--nats-url', 'nats://h:1', '--data-dir', 'd']),
      { FERRY_NATS_USER: 'u', FERRY_NATS_PASS: 'p' },
      noFile,
    );
    expect(r.ok && r.value.config).toMatchObject({
      queueGroup: 'ferry-api',
      nats: { user: 'u', pass: 'p' },
      retention: { windowDays: 30 },
    });
  });

  it.each([
    [[], {}, noFile, 'natsUrl: required (give --nats-url, set FERRY_NATS_URL'],
    [['--nats-url', 'nats://h:1'], {}, noFile, 'dataDir: required'],
    [['--nats-url', 'http://h:1', '--data-dir', 'd'], {}, noFile, 'natsUrl: must be a nats://'],
    [['--config', 'missing.json'], {}, noFile, 'config missing.json: cannot read it (ENOENT)'],
    [['--config', 'c.json'], {}, files({ 'c.json': '{ nope' }), 'config c.json: not valid JSON'],
    [['--config', 'c.json'], {}, files({ 'c.json': '[]' }), 'config c.json: must be a JSON object'],
    [
      ['--config', 'c.json', '--nats-url', 'nats://h:1', '--data-dir', 'd'],
      {},
      files({ 'c.json': '{"queue":"x"}' }),
      'unknown key "queue"',
    ],
    [
      ['--config', 'c.json', '--nats-url', 'nats://h:1', '--data-dir', 'd'],
      {},
      files({ 'c.json': '{"limits":{"maxPullLimit":"many"}}' }),
      'limits.maxPullLimit: expected number',
    ],
    [
      ['--config', 'c.json', '--nats-url', 'nats://h:1', '--data-dir', 'd'],
      {},
      files({ 'c.json': '{"collections":{"notes":{"policy":"custom","merge":"m"}}}' }),
      'collections.notes.policy: "custom" is not supported by the API',
    ],
  ] as [string[], Env, (p: string) => string, string][])(
    'refuses %j with one line naming the problem',
    (argv, env, read, message) => {
      const r = resolveApiOptions(args(argv), env, read);
      expect(r.ok).toBe(false);
      if (!r.ok) {
        expect(r.message).toContain(message);
        expect(r.message).not.toContain('\n');
      }
    },
  );

  it('refuses unknown flags and positionals', () => {
    expect(parseApiArgs(['--bogus']).ok).toBe(false);
    expect(parseApiArgs(['extra']).ok).toBe(false);
  });
});

describe('ferry api process', () => {
  let nats: NatsServerHandle;
  let dir: TempDir;
  const procs = new ProcessGroup();

  beforeAll(async () => {
    nats = await startNatsServer();
  });
  afterEach(async () => {
    await procs.killAll();
    await dir?.remove();
  });
  afterAll(async () => {
    await nats?.stop();
  });

  it('starts from environment variables, answers, and drains on SIGTERM with exit 0', async () => {
    dir = await makeTempDir('ferry-cli-');
    const api = procs.spawnFerry('api', [], {
      env: { FERRY_NATS_URL: nats.url, FERRY_DATA_DIR: join(dir.path, 'data') },
    });
    await api.waitForLine(/"msg":"api ready"/);
    const nc = await client(nats.url);
    try {
      const c = simClient();
      const reply = pushReplySchema.parse(
        await ask(nc, subjects('cli').push, { clientId: c.clientId, actions: [c.create('n', {})] }),
      );
      expect(reply.headSeq).toBe(1);
    } finally {
      await nc.close();
    }
    expect(await api.stop()).toEqual({ code: 0, signal: null });
    expect(api.output()).toContain('"msg":"api stopped"');
  });

  it('a bad configuration is one line on stderr and exit code 2, without a stack trace', async () => {
    dir = await makeTempDir('ferry-cli-');
    const config = join(dir.path, 'api.json');
    await writeFile(config, JSON.stringify({ natsUrl: nats.url, dataDir: dir.path, retention: { windowDays: -1 } }));
    const api = procs.spawnFerry('api', ['--config', config]);
    const exit = await api.exited;
    expect(exit.code).toBe(2);
    expect(api.output().trim()).toBe(
      'ferry api: invalid configuration: retention.windowDays: Too small: expected number to be >0',
    );
  });

  it('an unreachable NATS server is one clear line and exit code 1', async () => {
    dir = await makeTempDir('ferry-cli-');
    const api = procs.spawnFerry('api', ['--nats-url', 'nats://127.0.0.1:1', '--data-dir', dir.path]);
    const exit = await api.exited;
    expect(exit.code).toBe(1);
    const stderrLine = api
      .output()
      .split('\n')
      .find((l) => l.startsWith('ferry api:'));
    expect(stderrLine).toMatch(/^ferry api: cannot connect to NATS at nats:\/\/127\.0\.0\.1:1/);
    expect(api.output()).not.toMatch(/\n\s+at /);
  });

  it('--help prints the options and exits 0', async () => {
    const api = procs.spawnFerry('api', ['--help']);
    expect((await api.exited).code).toBe(0);
    expect(api.output()).toContain('--nats-url URL');
    expect(api.output()).toContain('FERRY_DATA_DIR');
  });
});
