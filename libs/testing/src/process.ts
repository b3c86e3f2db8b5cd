/**
 * Child processes for integration tests: spawn a node service (e.g.
 * `bin/ferry.js api …`), await a log line instead of sleeping, kill it by pid,
 * and make sure a test leaves nothing running (`ProcessGroup.stopAll`).
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { dirname, resolve } from 'node:path';

/** The repository root (this file is libs/testing/{src,dist}/process.*). */
export const REPO_ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '..', '..', '..');
export const FERRY_BIN = resolve(REPO_ROOT, 'bin', 'ferry.js');

export interface SpawnServiceOptions {
  /** Executable; node by default. */
  readonly command?: string;
  readonly args: readonly string[];
  /** Merged over process.env; a value of undefined removes the variable. */
  readonly env?: Readonly<Record<string, string | undefined>>;
  readonly cwd?: string;
  /** Label for error messages. */
  readonly name?: string;
  /** Echo the child's output to stderr. */
  readonly debug?: boolean;
}

export interface Exit {
  readonly code: number | null;
  readonly signal: NodeJS.Signals | null;
}

interface LineWaiter {
  readonly pattern: RegExp;
  readonly resolve: (line: string) => void;
  readonly reject: (err: Error) => void;
}

const MAX_OUTPUT_CHARS = 4 << 20;

export class ServiceProcess {
  readonly name: string;
  readonly pid: number;
  /** Resolves when the process has exited, with its code or signal. */
  readonly exited: Promise<Exit>;
  #exit: Exit | null = null;
  #output = '';
  #lines: string[] = [];
  #waiters = new Set<LineWaiter>();

  constructor(options: SpawnServiceOptions) {
    this.name = options.name ?? options.args.join(' ');
    const env: Record<string, string | undefined> = { ...process.env, ...options.env };
    for (const key of Object.keys(env)) if (env[key] === undefined) delete env[key];
    const child: ChildProcess = spawn(options.command ?? process.execPath, [...options.args], {
      cwd: options.cwd ?? REPO_ROOT,
      env,
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    if (child.pid === undefined) throw new Error(`${this.name}: spawn failed`);
    this.pid = child.pid;
    const debug = options.debug === true;
    // One line splitter per stream, so a line is never spliced from both.
    const onChunk = () => {
      let pending = '';
      return (chunk: string) => {
        if (debug) process.stderr.write(chunk);
        this.#appendOutput(chunk);
        pending += chunk;
        const parts = pending.split('\n');
        pending = parts.pop() ?? '';
        for (const line of parts) this.#onLine(line);
      };
    };
    child.stdout?.setEncoding('utf8');
    child.stderr?.setEncoding('utf8');
    child.stdout?.on('data', onChunk());
    child.stderr?.on('data', onChunk());
    this.exited = new Promise((resolveExit) => {
      child.once('exit', (code, signal) => {
        this.#exit = { code, signal };
        for (const w of this.#waiters) {
          w.reject(
            new Error(
              `${this.name} exited (code ${code}, signal ${signal}) before logging ${w.pattern}:\n${this.tail()}`,
            ),
          );
        }
        this.#waiters.clear();
        resolveExit(this.#exit);
      });
    });
  }

  get running(): boolean {
    return this.#exit === null;
  }

  /** Everything the process wrote to stdout and stderr so far (bounded). */
  output(): string {
    return this.#output;
  }

  /** The last lines of output, for failure messages. */
  tail(lines = 30): string {
    return this.#lines.slice(-lines).join('\n');
  }

  /** Resolves with the first line (already seen or future) matching `pattern`; rejects on exit or timeout. */
  waitForLine(pattern: RegExp, timeoutMs = 15_000): Promise<string> {
    const seen = this.#lines.find((l) => pattern.test(l));
    if (seen !== undefined) return Promise.resolve(seen);
    if (this.#exit !== null) {
      return Promise.reject(new Error(`${this.name} has exited; never logged ${pattern}:\n${this.tail()}`));
    }
    return new Promise((resolveLine, reject) => {
      const timer = setTimeout(() => {
        this.#waiters.delete(waiter);
        reject(new Error(`${this.name} did not log ${pattern} within ${timeoutMs} ms:\n${this.tail()}`));
      }, timeoutMs);
      const waiter: LineWaiter = {
        pattern,
        resolve: (line) => {
          clearTimeout(timer);
          resolveLine(line);
        },
        reject: (err) => {
          clearTimeout(timer);
          reject(err);
        },
      };
      this.#waiters.add(waiter);
    });
  }

  /** Sends `signal` to the pid (SIGKILL by default) and waits for the exit. */
  async kill(signal: NodeJS.Signals = 'SIGKILL'): Promise<Exit> {
    if (this.#exit !== null) return this.#exit;
    try {
      process.kill(this.pid, signal);
    } catch (err) {
      if ((err as { code?: string }).code !== 'ESRCH') throw err;
    }
    return this.exited;
  }

  /** SIGTERM, then SIGKILL if it has not exited within `graceMs`. */
  async stop(graceMs = 5000): Promise<Exit> {
    if (this.#exit !== null) return this.#exit;
    const timer = setTimeout(() => void this.kill('SIGKILL'), graceMs);
    try {
      return await this.kill('SIGTERM');
    } finally {
      clearTimeout(timer);
    }
  }

  #appendOutput(chunk: string): void {
    this.#output += chunk;
    if (this.#output.length > MAX_OUTPUT_CHARS) this.#output = this.#output.slice(-MAX_OUTPUT_CHARS / 2);
  }

  #onLine(line: string): void {
    this.#lines.push(line);
    if (this.#lines.length > 10_000) this.#lines.splice(0, 5_000);
    for (const w of this.#waiters) {
      if (w.pattern.test(line)) {
        this.#waiters.delete(w);
        w.resolve(line);
      }
    }
  }
}

/** Every process a test started, so afterEach/afterAll can stop them all. */
export class ProcessGroup {
  readonly #procs = new Set<ServiceProcess>();

  spawn(options: SpawnServiceOptions): ServiceProcess {
    const proc = new ServiceProcess(options);
    this.#procs.add(proc);
    void proc.exited.then(() => this.#procs.delete(proc));
    return proc;
  }

  /** `node bin/ferry.js <role> …args` from the repository root. */
  spawnFerry(
    role: string,
    args: readonly string[],
    options: Omit<SpawnServiceOptions, 'args' | 'command'> = {},
  ): ServiceProcess {
    return this.spawn({ name: `ferry ${role}`, ...options, args: [FERRY_BIN, role, ...args] });
  }

  /** SIGKILLs whatever is still running; for afterEach/afterAll. */
  async killAll(): Promise<void> {
    await Promise.all([...this.#procs].map((p) => p.kill('SIGKILL')));
  }

  async [Symbol.asyncDispose](): Promise<void> {
    await this.killAll();
  }
}
