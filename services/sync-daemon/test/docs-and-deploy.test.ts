// What can be checked of the docs and deploy files without a Docker engine or
// systemd: the README documents every sync event field, metric and config key
// there is; the nats-server configs pass `nats-server -t`, and run for real (a
// daemon on a device leaf node syncs through the hub's per-tenant auth);
// docker-compose.yml parses and runs only roles and files that exist; the
// systemd units start roles that exist.
import { execFile } from 'node:child_process';
import { copyFileSync, existsSync, readFileSync, readdirSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { join } from 'node:path';
import { parse as parseYaml } from 'yaml';
import { describe, expect, it } from 'vitest';
import { daemonConfigSchema, syncEventSchema } from '@ferry/contracts';
import { FERRY_BIN, ProcessGroup, REPO_ROOT, findNatsServerBinary, makeTempDir } from '@ferry/testing';
import { loadDaemonConfig } from '../src/config/load-config.js';
import { METRIC_NAMES } from '../src/http/metrics.js';
import { eventually } from './support/e2e.js';

const readme = readFileSync(join(REPO_ROOT, 'README.md'), 'utf8');
const ROLES = ['api', 'daemon', 'attach', 'detach', 'status', 'watch', 'doctor', 'demo', 'start'];

/** The README's table row that documents `key` (a line starting with `| \`key\``). */
function row(key: string): string | undefined {
  return readme.split('\n').find((line) => line.startsWith(`| \`${key}\``));
}

describe('README', () => {
  it('documents every sync event type with all of its fields', () => {
    for (const option of syncEventSchema.options) {
      const type = option.shape.type.value;
      const line = row(type);
      expect(line, `README row for event "${type}"`).toBeDefined();
      for (const field of Object.keys(option.shape)) {
        if (field === 'type' || field === 'at') continue;
        expect(line, `README row for "${type}" names "${field}"`).toContain(`\`${field}\``);
      }
    }
  });

  it('documents every metric with its type', () => {
    for (const [name, type] of Object.entries(METRIC_NAMES)) {
      const line = readme.split('\n').find((l) => l.startsWith(`| \`${name}`));
      expect(line, `README row for ${name}`).toBeDefined();
      expect(line).toContain(`| ${type} |`);
    }
  });

  it('documents every daemon config key', () => {
    for (const key of Object.keys(daemonConfigSchema.shape)) {
      expect(readme, `config key ${key}`).toMatch(new RegExp(`^\\| \`${key}[.\` /]`, 'm'));
    }
  });

  it('keeps the test command CI relies on', () => {
    expect(readme).toContain('npm test    # builds, then runs every workspace');
  });
});

function natsCheck(config: string, env: Record<string, string>): Promise<{ ok: boolean; output: string }> {
  return new Promise((resolve) => {
    execFile(
      findNatsServerBinary(),
      ['-t', '-c', config],
      { cwd: join(REPO_ROOT, 'deploy', 'nats'), env: { ...process.env, ...env } },
      (err, stdout, stderr) => resolve({ ok: err === null, output: `${stdout}${stderr}` }),
    );
  });
}

describe('deploy/', () => {
  it('nats-server accepts the server-side and the device-side configs', async () => {
    const server = await natsCheck('nats.conf', {
      FERRY_API_PASS: 'apiPw',
      FERRY_ACME_PASS: 'acmePw',
      FERRY_GLOBEX_PASS: 'globexPw',
    });
    expect(server.ok, server.output).toBe(true);
    const leaf = await natsCheck('leaf.conf', { FERRY_HUB_URL: 'nats-leaf://acme:acmePw@127.0.0.1:7422' });
    expect(leaf.ok, leaf.output).toBe(true);
  });

  it('docker-compose.yml parses and runs only ferry roles and files that exist', () => {
    const compose = parseYaml(readFileSync(join(REPO_ROOT, 'docker-compose.yml'), 'utf8')) as {
      services: Record<
        string,
        { build?: { dockerfile: string }; command?: string[]; entrypoint?: string[]; volumes?: string[] }
      >;
    };
    expect(Object.keys(compose.services).sort()).toEqual(['api', 'app', 'daemon', 'nats']);
    const dockerfile = compose.services.api?.build?.dockerfile ?? '';
    expect(existsSync(join(REPO_ROOT, dockerfile))).toBe(true);
    for (const name of ['api', 'daemon']) {
      expect(ROLES).toContain(compose.services[name]?.command?.[0]);
    }
    for (const volume of compose.services.daemon?.volumes ?? []) {
      const host = volume.split(':')[0] ?? '';
      if (!host.startsWith('./')) continue;
      const path = join(REPO_ROOT, host);
      expect(existsSync(path), path).toBe(true);
      // The mounted daemon config is valid as it stands.
      if (path.endsWith('.json')) expect(loadDaemonConfig(path, {})).toMatchObject({ ok: true });
    }
    const script = compose.services.app?.entrypoint?.[1] ?? '';
    expect(existsSync(join(REPO_ROOT, script.replace('/opt/ferry/', '')))).toBe(true);
    // Every COPY source of the Dockerfile exists in the build context.
    for (const line of readFileSync(join(REPO_ROOT, dockerfile), 'utf8').split('\n')) {
      const copy = /^COPY (?!--from)(.+) \S+$/.exec(line);
      for (const src of copy?.[1]?.split(' ') ?? []) expect(existsSync(join(REPO_ROOT, src)), src).toBe(true);
    }
  });

  it('the systemd units start ferry roles that exist', () => {
    const dir = join(REPO_ROOT, 'deploy', 'systemd');
    const units = readdirSync(dir).filter((f) => f.endsWith('.service'));
    expect(units.sort()).toEqual(['ferry-api.service', 'ferry-daemon@.service', 'ferry-nats-leaf.service']);
    for (const unit of units) {
      const exec = /^ExecStart=(.*)$/m.exec(readFileSync(join(dir, unit), 'utf8'))?.[1] ?? '';
      const role = /bin\/ferry\.js (\S+)/.exec(exec)?.[1];
      if (role !== undefined) expect(ROLES, unit).toContain(role);
      else expect(exec).toMatch(/nats-server -c /);
    }
  });
});

function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const srv = createServer();
    srv.once('error', reject);
    srv.listen(0, '127.0.0.1', () => {
      const address = srv.address();
      const port = typeof address === 'object' && address !== null ? address.port : 0;
      srv.close(() => resolve(port));
    });
  });
}

describe('deploy/nats, run for real', () => {
  it('a daemon on a device leaf node (leaf.conf) syncs through the hub (nats.conf + auth.conf) as its tenant', async () => {
    await using dir = await makeTempDir('ferry-leaf-');
    await using procs = new ProcessGroup();
    const [client, leafnodes, device] = await Promise.all([freePort(), freePort(), freePort()]);
    const src = join(REPO_ROOT, 'deploy', 'nats');
    // The shipped files with only the addresses and store paths moved to this test's loopback ports and temp dir.
    const hub = readFileSync(join(src, 'nats.conf'), 'utf8')
      .replace('listen: "0.0.0.0:4222"', `listen: "127.0.0.1:${client}"`)
      .replace(/^http: .*$/m, '')
      .replace('/var/lib/ferry/nats', join(dir.path, 'hub-js'))
      .replace('listen: "0.0.0.0:7422"', `listen: "127.0.0.1:${leafnodes}"`);
    const leaf = readFileSync(join(src, 'leaf.conf'), 'utf8')
      .replace('listen: "127.0.0.1:4222"', `listen: "127.0.0.1:${device}"`)
      .replace('/var/lib/ferry/nats-leaf', join(dir.path, 'leaf-js'));
    expect(hub).toContain(`127.0.0.1:${leafnodes}`);
    expect(leaf).toContain(`127.0.0.1:${device}`);
    writeFileSync(join(dir.path, 'hub.conf'), hub);
    writeFileSync(join(dir.path, 'leaf.conf'), leaf);
    copyFileSync(join(src, 'auth.conf'), join(dir.path, 'auth.conf'));
    const passwords = { FERRY_API_PASS: 'apiPw', FERRY_ACME_PASS: 'acmePw', FERRY_GLOBEX_PASS: 'globexPw' };
    const nats = findNatsServerBinary();
    const hubProc = procs.spawn({
      name: 'hub',
      command: nats,
      args: ['-c', join(dir.path, 'hub.conf')],
      env: passwords,
    });
    await hubProc.waitForLine(/Server is ready/, 15_000);
    const leafProc = procs.spawn({
      name: 'leaf',
      command: nats,
      args: ['-c', join(dir.path, 'leaf.conf')],
      env: { FERRY_HUB_URL: `nats-leaf://acme:acmePw@127.0.0.1:${leafnodes}` },
    });
    await leafProc.waitForLine(/Leafnode connection created/, 15_000);

    writeFileSync(
      join(dir.path, 'api.json'),
      JSON.stringify({
        natsUrl: `nats://127.0.0.1:${client}`,
        dataDir: join(dir.path, 'api'),
        nats: { user: 'ferry-api', pass: 'apiPw' },
      }),
    );
    const api = procs.spawn({ name: 'api', args: [FERRY_BIN, 'api', '--config', join(dir.path, 'api.json')] });
    await api.waitForLine(/api ready/, 20_000);
    const local = `nats://127.0.0.1:${device}`;
    const config = join(dir.path, 'device.json');
    writeFileSync(
      config,
      JSON.stringify({
        app: 'notes',
        tenant: 'acme',
        bus: { url: local },
        upstream: { url: local },
        dataDir: join(dir.path, 'daemon'),
      }),
    );
    const daemon = procs.spawn({ name: 'daemon', args: [FERRY_BIN, 'daemon', '--config', config] });
    await daemon.waitForLine(/daemon ready/, 20_000);

    const notes = join(REPO_ROOT, 'examples', 'notes-bus', 'notes.mjs');
    const add = procs.spawn({ name: 'notes', args: [notes, '--config', config, 'add', 'via the leaf node'] });
    expect((await add.exited).code, add.output()).toBe(0);
    const status = () =>
      new Promise<{ cursor?: number; pending?: number; online?: boolean }>((resolve) => {
        execFile(process.execPath, [FERRY_BIN, 'status', '--config', config, '--json'], (err, stdout) =>
          resolve(err === null ? (JSON.parse(stdout) as { cursor: number }) : {}),
        );
      });
    // Acknowledged by the API behind the hub, and pulled back: the round trip crossed the leaf connection.
    await eventually('the change to reach the API through the leaf', async () => {
      const s = await status();
      return s.online === true && s.pending === 0 && s.cursor === 1;
    });
    await daemon.stop();
    await api.stop();
  }, 90_000);
});
