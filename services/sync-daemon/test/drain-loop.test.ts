// DrainLoop: the uploader's and downloader's "drain on demand" never loses a
// request, including one made as a drain finishes (which rxjs exhaustMap drops,
// since it hears of the drain's end a microtask later).
import { describe, expect, it } from 'vitest';
import { DrainLoop } from '../src/upload/backoff.js';

const settle = () => new Promise((resolve) => setImmediate(resolve));

describe('DrainLoop', () => {
  it('runs again for a request made after the drain last looked at its work, before it ended', async () => {
    let work = 0;
    let done = 0;
    let atEnd: (() => void) | null = null;
    const loop = new DrainLoop(
      async () => {
        await Promise.resolve(); // a drain awaits its I/O
        done += work;
        work = 0;
        const hook = atEnd;
        atEnd = null;
        hook?.(); // new work arrives after the last look, while the drain is still running
      },
      (err) => {
        throw err;
      },
    );
    atEnd = () => {
      work++;
      loop.request();
    };
    work = 1;
    loop.request();
    await settle();
    expect(done).toBe(2);
    expect(loop.running).toBe(false);
  });

  it('coalesces requests made during a drain into one more run', async () => {
    let runs = 0;
    let release: (() => void) | null = null;
    const loop = new DrainLoop(
      () => {
        runs++;
        return new Promise<void>((resolve) => (release = resolve));
      },
      () => undefined,
    );
    loop.request();
    loop.request();
    loop.request();
    expect(runs).toBe(1);
    (release as unknown as () => void)();
    await settle();
    expect(runs).toBe(2);
    (release as unknown as () => void)();
    await settle();
    expect(runs).toBe(2);
    expect(loop.running).toBe(false);
  });

  it('reports a failed drain and runs again on the next request', async () => {
    const errors: unknown[] = [];
    let fail = true;
    let runs = 0;
    const loop = new DrainLoop(
      () => {
        runs++;
        return fail ? Promise.reject(new Error('boom')) : Promise.resolve();
      },
      (err) => errors.push(err),
    );
    loop.request();
    await settle();
    expect(errors).toHaveLength(1);
    fail = false;
    loop.request();
    await settle();
    expect(runs).toBe(2);
    expect(errors).toHaveLength(1);
  });
});
