/**
 * Hybrid logical clock encoded as one safe integer: `wallMillis * 4096 + counter`.
 *
 *   send:    next = max(last + 1, wall * 4096)
 *   receive: next = max(last + 1, remote + 1, wall * 4096)   (refused beyond maxDriftMs)
 *
 * Invariants: I1 a clock never returns a value <= one it returned before;
 * I2 after receive(r) the clock is > r. A counter past 4095 carries into the
 * millis (plain integer +1). The wall clock is a parameter: no Date.now here.
 * The encoding holds until wall time 2^53 / 4096 ms (September 2039).
 *
 * The drift bound is for whoever owns the reference clock (the API, against
 * server time). A daemon receives server-vetted actions with an infinite bound:
 * a device whose own clock runs behind must still accept them.
 */

export const HLC_COUNTER_BITS = 12;
export const HLC_COUNTER_SPAN = 1 << HLC_COUNTER_BITS; // 4096
export const MAX_HLC_WALL_MILLIS = Math.floor(Number.MAX_SAFE_INTEGER / HLC_COUNTER_SPAN);

export function encodeHlc(wallMillis: number, counter = 0): number {
  return wallMillis * HLC_COUNTER_SPAN + counter;
}

export function hlcWallMillis(hlc: number): number {
  return Math.floor(hlc / HLC_COUNTER_SPAN);
}

export function hlcCounter(hlc: number): number {
  return hlc % HLC_COUNTER_SPAN;
}

export type HlcResult =
  | { ok: true; hlc: number }
  | { ok: false; code: 'clock_drift'; aheadMs: number; message: string }
  | { ok: false; code: 'clock_overflow'; message: string }
  | { ok: false; code: 'clock_invalid'; message: string };

/** A NaN or fractional reading would poison the clock for good: refuse it instead. */
function invalid(last: number, wallMillis: number, remote = 0): HlcResult | null {
  if (!Number.isSafeInteger(last) || last < 0)
    return { ok: false, code: 'clock_invalid', message: `last hlc ${last} is not a safe integer` };
  if (!Number.isFinite(wallMillis))
    return { ok: false, code: 'clock_invalid', message: `wall clock reading ${wallMillis} is not finite` };
  if (!Number.isSafeInteger(remote) || remote < 0)
    return { ok: false, code: 'clock_invalid', message: `remote hlc ${remote} is not a safe integer` };
  return null;
}

/** The next local timestamp after `last` given the wall clock reading. */
export function sendHlc(last: number, wallMillis: number): HlcResult {
  const bad = invalid(last, wallMillis);
  if (bad !== null) return bad;
  const next = Math.max(last + 1, encodeHlc(Math.floor(wallMillis)));
  if (next > Number.MAX_SAFE_INTEGER) {
    return { ok: false, code: 'clock_overflow', message: 'hlc exceeds the safe-integer range' };
  }
  return { ok: true, hlc: next };
}

/** How far `hlc` runs ahead of `wallMillis`; ok when within `maxDriftMs`. */
export function checkDrift(
  hlc: number,
  wallMillis: number,
  maxDriftMs: number,
): { ok: true } | { ok: false; aheadMs: number } {
  const aheadMs = hlcWallMillis(hlc) - Math.floor(wallMillis);
  return aheadMs > maxDriftMs ? { ok: false, aheadMs } : { ok: true };
}

/** Advances past a remote timestamp, unless it is implausibly far in the future. */
export function receiveHlc(last: number, remote: number, wallMillis: number, maxDriftMs: number): HlcResult {
  const bad = invalid(last, wallMillis, remote);
  if (bad !== null) return bad;
  const drift = checkDrift(remote, wallMillis, maxDriftMs);
  if (!drift.ok) {
    return {
      ok: false,
      code: 'clock_drift',
      aheadMs: drift.aheadMs,
      message: `remote hlc is ${drift.aheadMs} ms ahead of local time (limit ${maxDriftMs} ms)`,
    };
  }
  const next = Math.max(last + 1, remote + 1, encodeHlc(Math.floor(wallMillis)));
  if (next > Number.MAX_SAFE_INTEGER) {
    return { ok: false, code: 'clock_overflow', message: 'hlc exceeds the safe-integer range' };
  }
  return { ok: true, hlc: next };
}

export interface HlcClockOptions {
  /** Wall clock in epoch millis; the caller passes Date.now or a fake. */
  now: () => number;
  maxDriftMs: number;
  /** The last value issued before a restart (persisted by the caller). */
  last?: number;
}

/** A stateful clock over the pure functions above. */
export class HlcClock {
  #last: number;
  readonly #now: () => number;
  readonly #maxDriftMs: number;

  constructor(options: HlcClockOptions) {
    this.#now = options.now;
    this.#maxDriftMs = options.maxDriftMs;
    this.#last = options.last ?? 0;
  }

  get last(): number {
    return this.#last;
  }

  /** A fresh timestamp for a local event. */
  send(): HlcResult {
    const result = sendHlc(this.#last, this.#now());
    if (result.ok) this.#last = result.hlc;
    return result;
  }

  /** Observes a remote timestamp; refuses (and ignores) one beyond the drift bound. */
  receive(remote: number): HlcResult {
    const result = receiveHlc(this.#last, remote, this.#now(), this.#maxDriftMs);
    if (result.ok) this.#last = result.hlc;
    return result;
  }
}
