/**
 * Child processes of `ferry start` and `ferry demo`: `ferry api` and `ferry
 * daemon` run as real processes (the services meet only on the wire), their
 * output kept in a log file and watched for a ready line. Every pid is listed
 * in `<dir>/pids.json` while it runs, so whoever started the parent can clean
 * up after a parent that was killed outright.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { createWriteStream, existsSync, writeFileSync, type WriteStream } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

/** bin/ferry.js of this checkout: from dist/local (or src/local), four levels up is the repository root. */
export function ferryBin(): string {
  const here = dirname(fileURLToPath(import.meta.url));
  const candidate = resolve(here, '..', '..', '..', '..', 'bin', 'ferry.js');
  if (existsSync(candidate)) return candidate;
  const invoked = process.argv[1];
  if (invoked !== undefined && existsSync(invoked)) return invoked;
  throw new Error(`cannot find bin/ferry.js (looked at ${candidate})`);
}

/** The pids a parent command has running, by name, persisted as it changes. */
export class PidFile {
  readonly #path: string;
  readonly #pids = new Map<string, number>();

  constructor(dir: string) {
    this.#path = join(dir, 'pids.json');
  }

  set(name: string, pid: number | null): void {
    if (pid === null) this.#pids.delete(name);
    else this.#pids.set(name, pid);
    writeFileSync(this.#path, `${JSON.stringify(Object.fromEntries(this.#pids))}\n`);
  }

  /**
   * SIGKILL to every child still listed (its process group, since children
   * run detached): the way out when a clean stop was given up on.
   */
  killAll(): void {
    for (const pid of this.#pids.values()) {
      for (const target of [-pid, pid]) {
        try {
          process.kill(target, 'SIGKILL');
          break;
        } catch {
          // Gone already, or not a group leader: try the pid itself.
        }
      }
    }
  }
}

export interface ChildOptions {
  readonly name: string;
  readonly role: string;
  readonly args: readonly string[];
  readonly env?: Readonly<Record<string, string>>;
  /** Output goes here (appended); otherwise it is only kept in memory. */
  readonly logFile?: string;
  readonly pids?: PidFile;
  /**
   * Own process group: a Ctrl-C in the terminal then reaches only the parent,
   * which stops its children in order instead of all at once.
   */
  readonly detached?: boolean;
  /** Called with each output line (pino JSON from the services). */
  readonly onLine?: (line: string) => void;
}

export class FerryChild {
  readonly name: string;
  readonly exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
  readonly #proc: ChildProcess;
  readonly #log: WriteStream | null;
  readonly #lines: string[] = [];
  readonly #waiters = new Set<{ pattern: RegExp; resolve: (line: string) => void }>();
  #running = true;

  constructor(options: ChildOptions) {
    this.name = options.name;
    this.#log = options.logFile === undefined ? null : createWriteStream(options.logFile, { flags: 'a' });
    this.#proc = spawn(process.execPath, [ferryBin(), options.role, ...options.args], {
      stdio: ['ignore', 'pipe', 'pipe'],
      env: { ...process.env, ...options.env },
      detached: options.detached === true,
    });
    const pid = this.#proc.pid;
    if (pid !== undefined) options.pids?.set(options.name, pid);
    const split = () => {
      let pending = '';
      return (chunk: string) => {
        this.#log?.write(chunk);
        pending += chunk;
        const parts = pending.split('\n');
        pending = parts.pop() ?? '';
        for (const line of parts) {
          this.#lines.push(line);
          if (this.#lines.length > 200) this.#lines.shift();
          options.onLine?.(line);
          for (const w of this.#waiters) {
            if (w.pattern.test(line)) {
              this.#waiters.delete(w);
              w.resolve(line);
            }
          }
        }
      };
    };
    this.#proc.stdout?.setEncoding('utf8');
    this.#proc.stderr?.setEncoding('utf8');
    this.#proc.stdout?.on('data', split());
    this.#proc.stderr?.on('data', split());
    this.exited = new Promise((resolveExit) => {
      this.#proc.once('exit', (code, signal) => {
        this.#running = false;
        options.pids?.set(options.name, null);
        this.#log?.end();
        resolveExit({ code, signal });
      });
    });
  }

  get running(): boolean {
    return this.#running;
  }

  /** The last output lines, for a failure message. */
  tail(n = 15): string {
    return this.#lines.slice(-n).join('\n');
  }

  /** Resolves with the first line matching `pattern`; rejects when the child exits first or on timeout. */
  waitForLine(pattern: RegExp, timeoutMs: number): Promise<string> {
    const seen = this.#lines.find((l) => pattern.test(l));
    if (seen !== undefined) return Promise.resolve(seen);
    return new Promise((resolveLine, reject) => {
      const waiter = {
        pattern,
        resolve: (line: string) => {
          clearTimeout(timer);
          resolveLine(line);
        },
      };
      const timer = setTimeout(() => {
        this.#waiters.delete(waiter);
        reject(new Error(`${this.name} did not become ready within ${timeoutMs} ms:\n${this.tail()}`));
      }, timeoutMs);
      this.#waiters.add(waiter);
      void this.exited.then(({ code }) => {
        if (!this.#waiters.delete(waiter)) return;
        clearTimeout(timer);
        reject(new Error(`${this.name} exited (code ${code}) before it was ready:\n${this.tail()}`));
      });
    });
  }

  /** SIGTERM (the services drain and exit), SIGKILL after `graceMs`. */
  async stop(graceMs = 8000): Promise<void> {
    if (!this.#running) return;
    const timer = setTimeout(() => this.#proc.kill('SIGKILL'), graceMs);
    this.#proc.kill('SIGTERM');
    await this.exited;
    clearTimeout(timer);
  }
}

/** The `msg` and fields of a pino JSON line, or null for any other line. */
export function parseLogLine(line: string): ({ msg?: string; level?: number } & Record<string, unknown>) | null {
  if (!line.startsWith('{')) return null;
  try {
    const value: unknown = JSON.parse(line);
    return typeof value === 'object' && value !== null ? (value as Record<string, unknown>) : null;
  } catch {
    return null;
  }
}
