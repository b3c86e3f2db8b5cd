// Property (d) of issue 2 and unit rules of the hybrid logical clock.
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import {
  checkDrift,
  encodeHlc,
  HLC_COUNTER_SPAN,
  HlcClock,
  hlcCounter,
  hlcWallMillis,
  MAX_HLC_WALL_MILLIS,
  receiveHlc,
  sendHlc,
} from '../src/index.js';
import { fcParams } from './arbitraries.js';

const BASE = 1_763_000_000_000; // a November 2025 wall clock, in ms
const DRIFT = 60_000;

type Step =
  | { kind: 'send'; wallDelta: number }
  | { kind: 'receive'; wallDelta: number; remoteOffset: number; remoteCounter: number };

const stepArb: fc.Arbitrary<Step> = fc.oneof(
  fc.record({ kind: fc.constant('send' as const), wallDelta: fc.integer({ min: -5_000, max: 5_000 }) }),
  fc.record({
    kind: fc.constant('receive' as const),
    wallDelta: fc.integer({ min: -5_000, max: 5_000 }),
    // Mostly within the bound, sometimes far beyond it.
    remoteOffset: fc.oneof(fc.integer({ min: -120_000, max: 59_000 }), fc.integer({ min: 61_000, max: 10_000_000 })),
    remoteCounter: fc.integer({ min: 0, max: HLC_COUNTER_SPAN - 1 }),
  }),
);

describe('hybrid logical clock', () => {
  it('(d) is strictly increasing, passes every accepted remote, and refuses drift beyond the bound', () => {
    fc.assert(
      fc.property(fc.array(stepArb, { minLength: 1, maxLength: 200 }), (steps) => {
        let wall = BASE;
        const clock = new HlcClock({ now: () => wall, maxDriftMs: DRIFT });
        let previous = clock.last;
        for (const step of steps) {
          wall += step.wallDelta; // wall clocks jump backwards too
          if (step.kind === 'send') {
            const r = clock.send();
            expect(r.ok).toBe(true);
            if (r.ok) expect(r.hlc).toBeGreaterThan(previous);
          } else {
            const remote = encodeHlc(wall + step.remoteOffset, step.remoteCounter);
            const r = clock.receive(remote);
            if (step.remoteOffset > DRIFT) {
              expect(r).toMatchObject({ ok: false, code: 'clock_drift' });
              expect(clock.last).toBe(previous); // a refused remote leaves the clock alone
            } else {
              expect(r.ok).toBe(true);
              if (r.ok) {
                expect(r.hlc).toBeGreaterThan(previous);
                expect(r.hlc).toBeGreaterThan(remote);
              }
            }
          }
          expect(clock.last).toBeGreaterThanOrEqual(previous);
          previous = clock.last;
        }
      }),
      fcParams(),
    );
  });

  it('(d) a clock one hour behind still orders its events after those it has seen', () => {
    fc.assert(
      fc.property(
        fc.integer({ min: 0, max: HLC_COUNTER_SPAN - 1 }),
        fc.integer({ min: 1, max: 50 }),
        (counter, sends) => {
          const ahead = encodeHlc(BASE, counter);
          // The server bounds drift against its own clock; a daemon receiving
          // server-vetted actions must not refuse them for being ahead of its
          // slow wall clock, so its bound is infinite.
          const behind = new HlcClock({ now: () => BASE - 3_600_000, maxDriftMs: Number.POSITIVE_INFINITY });
          expect(behind.receive(ahead).ok).toBe(true);
          for (let i = 0; i < sends; i++) {
            const r = behind.send();
            expect(r.ok && r.hlc > ahead).toBe(true);
          }
        },
      ),
      fcParams(),
    );
  });

  it('encodes wallMillis * 4096 + counter as one safe integer', () => {
    const hlc = encodeHlc(BASE, 17);
    expect(hlc).toBe(BASE * 4096 + 17);
    expect(hlcWallMillis(hlc)).toBe(BASE);
    expect(hlcCounter(hlc)).toBe(17);
    expect(Number.isSafeInteger(encodeHlc(MAX_HLC_WALL_MILLIS, HLC_COUNTER_SPAN - 1))).toBe(true);
  });

  it('carries a counter overflow into the millis', () => {
    const last = encodeHlc(BASE, HLC_COUNTER_SPAN - 1);
    const r = sendHlc(last, BASE); // wall clock has not moved
    expect(r).toEqual({ ok: true, hlc: encodeHlc(BASE + 1, 0) });
  });

  it('uses the wall clock when it is ahead and the counter when it is not', () => {
    expect(sendHlc(encodeHlc(BASE, 5), BASE + 10)).toEqual({ ok: true, hlc: encodeHlc(BASE + 10, 0) });
    expect(sendHlc(encodeHlc(BASE, 5), BASE - 10)).toEqual({ ok: true, hlc: encodeHlc(BASE, 6) });
  });

  it('receive jumps past a remote ahead of local time, within the bound', () => {
    const remote = encodeHlc(BASE + 30_000, 3);
    expect(receiveHlc(encodeHlc(BASE, 0), remote, BASE, DRIFT)).toEqual({ ok: true, hlc: remote + 1 });
  });

  it('checkDrift reports how far ahead a timestamp is', () => {
    expect(checkDrift(encodeHlc(BASE + 60_000), BASE, DRIFT)).toEqual({ ok: true });
    expect(checkDrift(encodeHlc(BASE + 60_001), BASE, DRIFT)).toEqual({ ok: false, aheadMs: 60_001 });
  });

  it('refuses to issue past the safe-integer range instead of losing precision', () => {
    const r = sendHlc(Number.MAX_SAFE_INTEGER, BASE);
    expect(r).toMatchObject({ ok: false, code: 'clock_overflow' });
  });

  it('resumes after a restart from the persisted last value', () => {
    const clock = new HlcClock({ now: () => BASE - 1_000, maxDriftMs: DRIFT, last: encodeHlc(BASE, 9) });
    expect(clock.send()).toEqual({ ok: true, hlc: encodeHlc(BASE, 10) });
  });
});
