/**
 * A local nats-server for `ferry start` and `ferry demo`: probe whether one
 * already answers (and has JetStream), find the binary, start one on loopback
 * with JetStream and its data in a given dir, stop or restart it on the same
 * port. (@ferry/testing has the test-side launcher; a service must not depend
 * on it.) Never binds beyond 127.0.0.1.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { accessSync, constants, existsSync, mkdirSync, writeFileSync } from 'node:fs';
import { connect as netConnect, createServer } from 'node:net';
import { delimiter, join } from 'node:path';

export const NATS_INSTALL_HINT =
  'nats-server is not installed. Install it, then run this again:\n' +
  '  Debian/Ubuntu:  sudo apt-get install nats-server\n' +
  '  macOS:          brew install nats-server\n' +
  '  other:          download a release from https://github.com/nats-io/nats-server/releases and put nats-server on PATH\n' +
  'or point FERRY_NATS_URL at a running nats-server started with JetStream (nats-server -js).';

/** nats-server on PATH, else Debian's /usr/sbin/nats-server; null when neither. */
export function findNatsServer(env: NodeJS.ProcessEnv = process.env): string | null {
  for (const dir of (env.PATH ?? '').split(delimiter)) {
    if (dir === '') continue;
    const candidate = join(dir, 'nats-server');
    try {
      accessSync(candidate, constants.X_OK);
      return candidate;
    } catch {
      // not in this directory
    }
  }
  return existsSync('/usr/sbin/nats-server') ? '/usr/sbin/nats-server' : null;
}

export type NatsProbe =
  { reachable: true; jetstream: boolean; version: string; maxPayload: number } | { reachable: false; reason: string };

/** Host and port of a `nats://host:port` URL (default port 4222). */
export function hostPort(url: string): { host: string; port: number } {
  const u = new URL(url.replace(/^(nats|tls|ws|wss):/, 'http:'));
  const host = u.hostname.replace(/^\[(.*)\]$/, '$1');
  return { host, port: u.port === '' ? 4222 : Number(u.port) };
}

/** Reads the server's INFO greeting over plain TCP: reachable? JetStream? (no client, no auth needed). */
export function probeNats(url: string, timeoutMs = 1500): Promise<NatsProbe> {
  const { host, port } = hostPort(url);
  return new Promise((resolve) => {
    const socket = netConnect({ host, port });
    let buffer = '';
    const done = (result: NatsProbe) => {
      clearTimeout(timer);
      socket.destroy();
      resolve(result);
    };
    const timer = setTimeout(() => done({ reachable: false, reason: 'no answer within the timeout' }), timeoutMs);
    socket.setEncoding('utf8');
    socket.on('data', (chunk: string) => {
      buffer += chunk;
      const end = buffer.indexOf('\r\n');
      if (end < 0) return;
      const line = buffer.slice(0, end);
      if (!line.startsWith('INFO ')) return done({ reachable: false, reason: 'not a NATS server' });
      try {
        const info = JSON.parse(line.slice(5)) as { jetstream?: boolean; version?: string; max_payload?: number };
        done({
          reachable: true,
          jetstream: info.jetstream === true,
          version: info.version ?? '?',
          maxPayload: info.max_payload ?? 0,
        });
      } catch {
        done({ reachable: false, reason: 'unreadable INFO greeting' });
      }
    });
    socket.on('error', (err: NodeJS.ErrnoException) =>
      done({ reachable: false, reason: err.code === 'ECONNREFUSED' ? 'connection refused' : err.message }),
    );
  });
}

/** Whether `port` can be bound on `host` right now. */
export function portIsFree(port: number, host = '127.0.0.1'): Promise<boolean> {
  return new Promise((resolve) => {
    const srv = createServer();
    srv.once('error', () => resolve(false));
    srv.listen(port, host, () => srv.close(() => resolve(true)));
  });
}

/** A port the OS says is free on loopback now. */
export function freePort(host = '127.0.0.1'): Promise<number> {
  return new Promise((resolve, reject) => {
    const srv = createServer();
    srv.once('error', reject);
    srv.listen(0, host, () => {
      const address = srv.address();
      const port = typeof address === 'object' && address !== null ? address.port : 0;
      srv.close(() => resolve(port));
    });
  });
}

export interface LocalNatsOptions {
  /** Config, JetStream store and log live here (kept across restarts). */
  readonly dir: string;
  readonly port: number;
  readonly jetstream: boolean;
  /** Called with the server's pid when it (re)starts, and with null once it has exited. */
  readonly onPid?: (pid: number | null) => void;
  readonly startTimeoutMs?: number;
}

const LOOPBACK = '127.0.0.1';

export class LocalNatsServer {
  readonly #o: LocalNatsOptions;
  readonly #binary: string;
  #proc: ChildProcess | null = null;
  #exited: Promise<void> = Promise.resolve();
  #log = '';

  private constructor(options: LocalNatsOptions, binary: string) {
    this.#o = options;
    this.#binary = binary;
  }

  /** Starts a server; throws with NATS_INSTALL_HINT when the binary is missing. */
  static async start(options: LocalNatsOptions): Promise<LocalNatsServer> {
    const binary = findNatsServer();
    if (binary === null) throw new Error(NATS_INSTALL_HINT);
    const server = new LocalNatsServer(options, binary);
    await server.#spawn();
    return server;
  }

  get url(): string {
    return `nats://${LOOPBACK}:${this.#o.port}`;
  }

  get port(): number {
    return this.#o.port;
  }

  get pid(): number | null {
    return this.#proc?.pid ?? null;
  }

  get running(): boolean {
    return this.#proc !== null;
  }

  /** The server's log so far (bounded), for error messages. */
  log(): string {
    return this.#log;
  }

  /** Graceful stop (SIGTERM; SIGKILL after 5 s). */
  async stop(): Promise<void> {
    await this.#terminate('SIGTERM');
  }

  /** Abrupt stop, as a network loss looks to clients. */
  async kill(): Promise<void> {
    await this.#terminate('SIGKILL');
  }

  /** Starts again on the same port with the same store. */
  async restart(): Promise<void> {
    await this.#terminate('SIGTERM');
    await this.#spawn();
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

  async #spawn(): Promise<void> {
    const { dir, port } = this.#o;
    mkdirSync(dir, { recursive: true });
    const lines = [`listen: "${LOOPBACK}:${port}"`, 'max_payload: 1MB'];
    if (this.#o.jetstream) lines.push('jetstream {', `  store_dir: "${join(dir, 'jetstream')}"`, '}');
    const confPath = join(dir, 'nats.conf');
    writeFileSync(confPath, `${lines.join('\n')}\n`);
    // Own process group: a Ctrl-C meant for the parent must not take NATS down before the daemon drains.
    const proc = spawn(this.#binary, ['-c', confPath], { stdio: ['ignore', 'ignore', 'pipe'], detached: true });
    this.#proc = proc;
    this.#exited = new Promise((resolve) =>
      proc.once('exit', () => {
        this.#o.onPid?.(null);
        resolve();
      }),
    );
    if (proc.pid !== undefined) this.#o.onPid?.(proc.pid);
    const timeoutMs = this.#o.startTimeoutMs ?? 10_000;
    try {
      await new Promise<void>((resolve, reject) => {
        const timer = setTimeout(
          () => reject(new Error(`nats-server did not start within ${timeoutMs} ms: ${this.#lastLine()}`)),
          timeoutMs,
        );
        proc.once('error', (err) => {
          clearTimeout(timer);
          reject(err);
        });
        proc.once('exit', (code) => {
          clearTimeout(timer);
          reject(new Error(`nats-server exited during start (code ${code}): ${this.#lastLine()}`));
        });
        // Only this run's output counts: the log of a previous run also says "ready".
        let thisRun = '';
        proc.stderr?.setEncoding('utf8');
        proc.stderr?.on('data', (chunk: string) => {
          this.#log = (this.#log + chunk).slice(-64 * 1024);
          thisRun = (thisRun + chunk).slice(-4096);
          if (thisRun.includes('Server is ready')) {
            clearTimeout(timer);
            resolve();
          }
        });
      });
    } catch (err) {
      proc.kill('SIGKILL');
      await this.#exited;
      this.#proc = null;
      throw err;
    }
  }

  #lastLine(): string {
    const lines = this.#log.trim().split('\n');
    return lines[lines.length - 1] ?? '(no output)';
  }
}
