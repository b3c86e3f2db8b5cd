/**
 * The main thread's handle on the writer thread (sqlite-writer.ts): posts
 * write-sets, resolves each when its transaction committed, rejects it with a
 * `WriterFailure` when it did not (or the thread died). It holds the process
 * open only while something is in flight.
 */
import { existsSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { Worker } from 'node:worker_threads';
import type { PurgeResult, WriterData, WriterReply, WriterRequest } from './writer-protocol.js';

/** A write-set that was not committed: its transaction rolled back, or was never run. */
export class WriterFailure extends Error {
  readonly code: string | null;
  constructor(code: string | null, message: string) {
    super(message);
    this.name = 'WriterFailure';
    this.code = code;
  }
}

type Request = WriterRequest extends infer R ? (R extends WriterRequest ? Omit<R, 'n'> : never) : never;

interface Pending {
  resolve(reply: PurgeResult | undefined): void;
  reject(err: WriterFailure): void;
}

export class WriterClient {
  readonly #data: WriterData;
  #worker: Worker | null = null;
  readonly #pending = new Map<number, Pending>();
  #n = 0;
  #idle: (() => void)[] = [];
  /** Set once the thread died or failed to start; every request fails with it until `restart()`. */
  #dead: WriterFailure | null = null;

  constructor(data: WriterData) {
    this.#data = data;
    this.#start();
  }

  get inFlight(): number {
    return this.#pending.size;
  }

  /** Posts a write-set; resolves once it committed (with the purge report for a purge). */
  post(request: Request, transfer?: ArrayBuffer[]): Promise<PurgeResult | undefined> {
    const worker = this.#worker;
    if (this.#dead !== null || worker === null) {
      return Promise.reject(this.#dead ?? new WriterFailure(null, 'the writer thread is not running'));
    }
    const n = ++this.#n;
    return new Promise<PurgeResult | undefined>((resolve, reject) => {
      if (this.#pending.size === 0) worker.ref();
      this.#pending.set(n, { resolve, reject });
      worker.postMessage({ ...request, n }, transfer);
    });
  }

  /** Resolves once nothing is in flight (whatever the outcomes). */
  drain(): Promise<void> {
    if (this.#pending.size === 0) return Promise.resolve();
    return new Promise((resolve) => this.#idle.push(resolve));
  }

  get dead(): boolean {
    return this.#dead !== null;
  }

  /** Replaces a dead thread with a fresh one. */
  restart(): void {
    if (this.#dead === null) return;
    void this.#worker?.terminate();
    this.#start();
  }

  /** Closes the writer's connection and ends the thread. */
  async close(): Promise<void> {
    const worker = this.#worker;
    if (worker === null) return;
    if (this.#dead === null) {
      try {
        await this.post({ op: 'close' });
      } catch {
        // Closing anyway.
      }
    }
    this.#worker = null;
    await worker.terminate();
  }

  #start(): void {
    this.#dead = null;
    const worker = new Worker(writerScript(), { workerData: this.#data });
    this.#worker = worker;
    worker.unref();
    worker.on('message', (reply: unknown) => {
      // Same build on both sides, but a reply that is not one (a stale dist/ worker) must not leave pushes hanging.
      if (isWriterReply(reply)) this.#settle(reply);
      else this.#die(worker, new Error('the writer thread sent something that is not a reply'));
    });
    worker.on('messageerror', (err) => this.#die(worker, err));
    worker.on('error', (err) => this.#die(worker, err));
    worker.on('exit', (code) => this.#die(worker, new Error(`the writer thread exited (${code})`)));
  }

  #settle(reply: WriterReply): void {
    const pending = this.#pending.get(reply.n);
    if (pending === undefined) return;
    this.#pending.delete(reply.n);
    if (reply.ok) pending.resolve(reply.purge);
    else pending.reject(new WriterFailure(reply.code, reply.message));
    this.#afterSettle();
  }

  #die(worker: Worker, err: Error): void {
    if (worker !== this.#worker || this.#dead !== null) return;
    this.#dead = new WriterFailure(null, `writer thread: ${err.message}`);
    const pending = [...this.#pending.values()];
    this.#pending.clear();
    for (const p of pending) p.reject(this.#dead);
    this.#afterSettle();
  }

  #afterSettle(): void {
    if (this.#pending.size > 0) return;
    this.#worker?.unref();
    const idle = this.#idle;
    this.#idle = [];
    for (const resolve of idle) resolve();
  }
}

/**
 * The built worker script beside this module; when this module runs from the
 * TypeScript sources (vitest), the built one in dist, which `tsc -b` keeps in step.
 */
function writerScript(): URL {
  const here = new URL('./sqlite-writer.js', import.meta.url);
  if (existsSync(fileURLToPath(here))) return here;
  return new URL('../../dist/store/sqlite-writer.js', import.meta.url);
}

function isWriterReply(value: unknown): value is WriterReply {
  if (typeof value !== 'object' || value === null) return false;
  const r = value as { n?: unknown; ok?: unknown };
  return typeof r.n === 'number' && typeof r.ok === 'boolean';
}
