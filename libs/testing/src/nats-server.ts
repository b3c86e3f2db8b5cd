/**
 * Starts a real nats-server for tests and benchmarks, on loopback and a free
 * port: in a testcontainers container when a Docker engine is reachable,
 * otherwise the local binary (as nats.js `nst/src/launcher.ts` does). Never
 * reaches the public network; every handle must be stopped (or disposed).
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { accessSync, constants, existsSync } from 'node:fs';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { connect as netConnect, createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { delimiter, join } from 'node:path';
import { dockerAvailable } from './docker.js';

export interface NatsServerOptions {
  /** Enable JetStream with a store in the server's temp dir (kept across restart()). */
  readonly jetstream?: boolean;
  /** Extra nats-server config appended verbatim, e.g. an `authorization { … }` block. */
  readonly config?: string;
  /** Environment for the server, e.g. the passwords an auth config refers to as `$NAME`. */
  readonly env?: Readonly<Record<string, string>>;
  /** `auto` (default; env FERRY_TEST_NATS=local|docker overrides) picks Docker when reachable. */
  readonly mode?: 'auto' | 'local' | 'docker';
  /** Echo the server log to stderr. */
  readonly debug?: boolean;
  readonly startTimeoutMs?: number;
}

export interface NatsServerHandle extends AsyncDisposable {
  readonly kind: 'local' | 'docker';
  readonly hostname: string;
  readonly port: number;
  /** `nats://127.0.0.1:<port>` */
  readonly url: string;
  /** Config, ports file and JetStream store of a local server (removed by stop()); null in Docker. */
  readonly tempDir: string | null;
  /** The local server's process id while it runs (for CPU accounting in benchmarks); null in Docker or when stopped. */
  readonly pid: number | null;
  /** Graceful stop, then the temp files go. Idempotent; the handle is finished. */
  stop(): Promise<void>;
  /** Stops (if running) and starts again on the same port with the same JetStream store. */
  restart(): Promise<void>;
  /** SIGKILL (or a zero-timeout container stop); restart() brings it back. */
  kill(): Promise<void>;
  /** The server's log so far (bounded). */
  log(): string;
}

const LOOPBACK = '127.0.0.1';
const MAX_LOG_CHARS = 1 << 20;

export async function startNatsServer(options: NatsServerOptions = {}): Promise<NatsServerHandle> {
  const forced = process.env.FERRY_TEST_NATS;
  const mode = options.mode ?? (forced === 'local' || forced === 'docker' ? forced : 'auto');
  const useDocker = mode === 'docker' || (mode === 'auto' && (await dockerAvailable()));
  return useDocker ? DockerNats.start(options) : LocalNats.start(options);
}

/** Finds nats-server on PATH, else the Debian location. */
export function findNatsServerBinary(env: NodeJS.ProcessEnv = process.env): string {
  for (const dir of (env.PATH ?? '').split(delimiter)) {
    if (dir === '') continue;
    const candidate = join(dir, 'nats-server');
    try {
      accessSync(candidate, constants.X_OK);
      return candidate;
    } catch {
      // not here
    }
  }
  if (existsSync('/usr/sbin/nats-server')) return '/usr/sbin/nats-server';
  throw new Error('nats-server not found on PATH nor at /usr/sbin/nats-server (apt-get install nats-server)');
}

function serverConfig(listen: string, dir: string, storeDir: string | null, extra: string | undefined): string {
  const lines = [`listen: "${listen}"`, `ports_file_dir: "${dir}"`];
  if (storeDir !== null) lines.push(`jetstream {`, `  store_dir: "${storeDir}"`, `}`);
  if (extra !== undefined) lines.push(extra);
  return `${lines.join('\n')}\n`;
}

class LocalNats implements NatsServerHandle {
  readonly kind = 'local' as const;
  readonly hostname = LOOPBACK;
  #port = 0;
  #proc: ChildProcess | null = null;
  #exited: Promise<void> = Promise.resolve();
  #log = '';
  #finished = false;

  get pid(): number | null {
    return this.#proc?.pid ?? null;
  }

  private constructor(
    private readonly dir: string,
    private readonly options: NatsServerOptions,
  ) {}

  static async start(options: NatsServerOptions): Promise<LocalNats> {
    const dir = await mkdtemp(join(tmpdir(), 'ferry-nats-'));
    const server = new LocalNats(dir, options);
    try {
      await server.#spawn(-1);
    } catch (err) {
      await rm(dir, { recursive: true, force: true });
      throw err;
    }
    return server;
  }

  get port(): number {
    return this.#port;
  }

  get tempDir(): string {
    return this.dir;
  }

  get url(): string {
    return `nats://${LOOPBACK}:${this.#port}`;
  }

  log(): string {
    return this.#log;
  }

  async stop(): Promise<void> {
    if (this.#finished) return;
    this.#finished = true;
    await this.#terminate('SIGTERM');
    await rm(this.dir, { recursive: true, force: true });
  }

  async restart(): Promise<void> {
    if (this.#finished) throw new Error('nats-server handle was stopped');
    await this.#terminate('SIGTERM');
    await this.#spawn(this.#port);
  }

  async kill(): Promise<void> {
    await this.#terminate('SIGKILL');
  }

  [Symbol.asyncDispose](): Promise<void> {
    return this.stop();
  }

  async #terminate(signal: NodeJS.Signals): Promise<void> {
    const proc = this.#proc;
    if (proc === null) return;
    const timer = setTimeout(() => proc.kill('SIGKILL'), 5000);
    proc.kill(signal);
    await this.#exited;
    clearTimeout(timer);
    this.#proc = null;
  }

  async #spawn(port: number): Promise<void> {
    const storeDir = this.options.jetstream === true ? join(this.dir, 'jetstream') : null;
    const confPath = join(this.dir, 'nats.conf');
    await writeFile(confPath, serverConfig(`${LOOPBACK}:${port}`, this.dir, storeDir, this.options.config));
    const proc = spawn(findNatsServerBinary(), ['-c', confPath], {
      stdio: ['ignore', 'ignore', 'pipe'],
      env: { ...process.env, ...this.options.env },
    });
    this.#proc = proc;
    this.#exited = new Promise((resolve) => proc.once('exit', () => resolve()));

    const timeoutMs = this.options.startTimeoutMs ?? 10_000;
    const listening = new Promise<number>((resolve, reject) => {
      let pending = '';
      const timer = setTimeout(
        () => reject(new Error(`nats-server did not start within ${timeoutMs} ms:\n${this.#log}`)),
        timeoutMs,
      );
      proc.once('exit', (code, sig) => {
        clearTimeout(timer);
        reject(new Error(`nats-server exited during start (code ${code}, signal ${sig}):\n${this.#log}`));
      });
      proc.once('error', (err) => {
        clearTimeout(timer);
        reject(err);
      });
      proc.stderr?.setEncoding('utf8');
      proc.stderr?.on('data', (chunk: string) => {
        this.#appendLog(chunk);
        pending += chunk;
        const lines = pending.split('\n');
        pending = lines.pop() ?? '';
        for (const line of lines) {
          const m = /Listening for client connections on [^\s]+:(\d+)/.exec(line);
          if (m?.[1] !== undefined) {
            clearTimeout(timer);
            resolve(Number(m[1]));
          }
        }
      });
    });
    try {
      this.#port = await listening;
      await probeTcp(LOOPBACK, this.#port, timeoutMs);
    } catch (err) {
      proc.kill('SIGKILL');
      await this.#exited;
      this.#proc = null;
      throw err;
    }
  }

  #appendLog(chunk: string): void {
    if (this.options.debug === true) process.stderr.write(chunk);
    this.#log += chunk;
    if (this.#log.length > MAX_LOG_CHARS) this.#log = this.#log.slice(-MAX_LOG_CHARS / 2);
  }
}

/** Resolves when the server greets a TCP client with its INFO line. */
function probeTcp(host: string, port: number, timeoutMs: number): Promise<void> {
  return new Promise((resolve, reject) => {
    const socket = netConnect({ host, port });
    const timer = setTimeout(() => {
      socket.destroy();
      reject(new Error(`nats-server on ${host}:${port} sent no INFO within ${timeoutMs} ms`));
    }, timeoutMs);
    socket.once('data', (data) => {
      clearTimeout(timer);
      socket.destroy();
      if (data.toString('utf8').startsWith('INFO')) resolve();
      else reject(new Error(`unexpected greeting from ${host}:${port}`));
    });
    socket.once('error', (err) => {
      clearTimeout(timer);
      reject(err);
    });
  });
}

/** A free loopback port, for a container's fixed host binding (so restart() keeps it). */
function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const srv = createServer();
    srv.once('error', reject);
    srv.listen(0, LOOPBACK, () => {
      const address = srv.address();
      const port = typeof address === 'object' && address !== null ? address.port : 0;
      srv.close(() => resolve(port));
    });
  });
}

interface StartedContainer {
  getMappedPort(port: number): number;
  getHost(): string;
  stop(options?: { timeout?: number; remove?: boolean }): Promise<unknown>;
  restart(): Promise<void>;
  logs(): Promise<NodeJS.ReadableStream>;
}

class DockerNats implements NatsServerHandle {
  readonly kind = 'docker' as const;
  readonly hostname = LOOPBACK;
  readonly tempDir = null;
  readonly pid = null;
  #log = '';
  #running = true;
  #finished = false;

  private constructor(
    private readonly container: StartedContainer,
    readonly port: number,
  ) {}

  static async start(options: NatsServerOptions): Promise<DockerNats> {
    // Loaded only here: the local path must not pay for (or depend on) testcontainers.
    const { GenericContainer, Wait } = await import('testcontainers');
    // Docker publishes on every interface by default; tests must stay on loopback.
    class LoopbackContainer extends GenericContainer {
      bindLoopbackOnly(): this {
        const all = (this.hostConfig.PortBindings ?? {}) as Record<string, { HostIp?: string }[] | undefined>;
        for (const bindings of Object.values(all)) {
          for (const binding of bindings ?? []) binding.HostIp = LOOPBACK;
        }
        return this;
      }
    }
    const hostPort = await freePort();
    const config = serverConfig(
      '0.0.0.0:4222',
      '/tmp',
      options.jetstream === true ? '/data/jetstream' : null,
      options.config,
    );
    const container = (await new LoopbackContainer('nats:2.10-alpine')
      .withCopyContentToContainer([{ content: config, target: '/etc/ferry/nats.conf' }])
      .withCommand(['-c', '/etc/ferry/nats.conf'])
      .withExposedPorts({ container: 4222, host: hostPort })
      .bindLoopbackOnly()
      .withEnvironment({ ...options.env })
      .withWaitStrategy(Wait.forLogMessage(/Server is ready/))
      .withStartupTimeout(options.startTimeoutMs ?? 30_000)
      .start()) as unknown as StartedContainer;
    const server = new DockerNats(container, hostPort);
    await probeTcp(LOOPBACK, hostPort, options.startTimeoutMs ?? 10_000);
    return server;
  }

  get url(): string {
    return `nats://${LOOPBACK}:${this.port}`;
  }

  log(): string {
    return this.#log;
  }

  async stop(): Promise<void> {
    if (this.#finished) return;
    this.#finished = true;
    await this.container.stop({ remove: true });
  }

  async restart(): Promise<void> {
    await this.container.restart();
    this.#running = true;
    await probeTcp(LOOPBACK, this.port, 10_000);
  }

  async kill(): Promise<void> {
    if (!this.#running) return;
    this.#running = false;
    await this.container.stop({ timeout: 0, remove: false });
  }

  [Symbol.asyncDispose](): Promise<void> {
    return this.stop();
  }
}
