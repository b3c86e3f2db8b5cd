/**
 * What the uploader and downloader loops share: exponential backoff with full
 * jitter (attempt n waits a random time in [0, min(max, initial * 2^n)]; the
 * random source is a parameter), a sleep that news cuts short, and the
 * one-at-a-time drain on demand.
 */
export interface BackoffOptions {
  readonly initialMs: number;
  readonly maxMs: number;
  readonly random?: () => number;
}

export function backoffDelay(attempt: number, options: BackoffOptions): number {
  const cap = Math.min(options.maxMs, options.initialMs * 2 ** Math.min(attempt, 30));
  const random = options.random ?? Math.random;
  // Never zero: a tight retry loop against a dead server helps nobody.
  return Math.max(options.initialMs / 2, Math.floor(random() * cap));
}

/** A sleep that news can cut short (a reconnect, a feed message, stop()). */
export class Pause {
  #wake: (() => void) | null = null;

  sleep(ms: number): Promise<void> {
    return new Promise((resolve) => {
      const done = (): void => {
        clearTimeout(timer);
        this.#wake = null;
        resolve();
      };
      const timer = setTimeout(done, ms);
      this.#wake = done;
    });
  }

  wake(): void {
    this.#wake?.();
  }
}

/**
 * Runs `drain` on demand, one run at a time: a request while one runs makes
 * it run once more right after, so no request is lost between the run's last
 * look at its work and its end (which an rxjs `exhaustMap` would drop, since
 * it learns of the end a microtask later).
 */
export class DrainLoop {
  readonly #drain: () => Promise<void>;
  readonly #onError: (err: unknown) => void;
  #running = false;
  #again = false;

  constructor(drain: () => Promise<void>, onError: (err: unknown) => void) {
    this.#drain = drain;
    this.#onError = onError;
  }

  get running(): boolean {
    return this.#running;
  }

  request(): void {
    if (this.#running) {
      this.#again = true;
      return;
    }
    this.#running = true;
    void this.#run();
  }

  async #run(): Promise<void> {
    try {
      do {
        this.#again = false;
        await this.#drain();
      } while (this.#again);
    } catch (err) {
      this.#onError(err);
    } finally {
      this.#running = false;
    }
  }
}
