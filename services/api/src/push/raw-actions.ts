/**
 * Finds each action's JSON text in the push request's bytes, so the store can
 * keep the text as received instead of serialising the parsed action again.
 * Text is only handed on where every JSON parser reads it as the parsed
 * action: no key twice in any object (JSON.parse would keep the last one
 * silently), and every number written exactly as JavaScript prints it (no
 * `1.0`, `1e2`, `-0`, or digits beyond double precision). Anything else, or
 * anything unexpected, is left to JSON.stringify: this never decides validity.
 */
import type { Action } from '@ferry/contracts';

export interface RawActions {
  /** The request as received (UTF-8 JSON). */
  readonly bytes: Uint8Array;
  /** Per action: byte offset of its opening `{`, or -1 when its text must not be passed on. */
  readonly starts: Int32Array;
  /** Per action: byte offset of its closing `}`. */
  readonly ends: Int32Array;
}

const QUOTE = 0x22;
const BACKSLASH = 0x5c;
const OPEN_BRACE = 0x7b;
const CLOSE_BRACE = 0x7d;
const OPEN_BRACKET = 0x5b;
const CLOSE_BRACKET = 0x5d;
const COLON = 0x3a;
const COMMA = 0x2c;
const MINUS = 0x2d;
const ZERO = 0x30;
const NINE = 0x39;
const ACTIONS_KEY = [0x61, 0x63, 0x74, 0x69, 0x6f, 0x6e, 0x73]; // actions

/**
 * Locates the actions of a request that JSON.parse already accepted and the
 * fast path validated; null when the request is not shaped as expected.
 */
export function locateRawActions(bytes: Uint8Array, actions: readonly Action[]): RawActions | null {
  const scan = new Scanner(bytes);
  const starts = new Int32Array(actions.length).fill(-1);
  const ends = new Int32Array(actions.length);
  let i = scan.ws(0);
  if (bytes[i] !== OPEN_BRACE) return null;
  i = scan.ws(i + 1);
  let found = false;
  while (bytes[i] !== CLOSE_BRACE) {
    if (bytes[i] !== QUOTE) return null;
    const keyEnd = scan.string(i);
    if (keyEnd < 0) return null;
    // JSON.parse decodes escapes in keys ("\u0061ctions" is "actions"): a top-level
    // key written with one could hide a second "actions" from the byte comparison.
    if (bytes.subarray(i + 1, keyEnd - 1).includes(BACKSLASH)) return null;
    const isActions = isKey(bytes, i + 1, keyEnd - 1, ACTIONS_KEY);
    i = scan.ws(keyEnd);
    if (bytes[i] !== COLON) return null;
    i = scan.ws(i + 1);
    if (!isActions) {
      i = scan.value(i);
      if (i < 0) return null;
    } else {
      if (found || bytes[i] !== OPEN_BRACKET) return null; // a second "actions" key: JSON.parse kept the last
      found = true;
      i = scan.ws(i + 1);
      let k = 0;
      while (bytes[i] !== CLOSE_BRACKET) {
        if (k >= actions.length || bytes[i] !== OPEN_BRACE) return null;
        scan.keys = 0;
        scan.canonical = true;
        const end = scan.value(i);
        if (end < 0) return null;
        const action = actions[k] as Action;
        if (scan.canonical && action.seq === undefined && scan.keys === countKeys(action)) {
          starts[k] = i;
          ends[k] = end - 1;
        }
        k++;
        i = scan.ws(end);
        if (bytes[i] === COMMA) i = scan.ws(i + 1);
        else if (bytes[i] !== CLOSE_BRACKET) return null;
      }
      if (k !== actions.length) return null;
      i++;
    }
    i = scan.ws(i);
    if (bytes[i] === COMMA) i = scan.ws(i + 1);
    else if (bytes[i] !== CLOSE_BRACE) return null;
  }
  return found ? { bytes, starts, ends } : null;
}

const CLIENT_ID_KEY = [0x63, 0x6c, 0x69, 0x65, 0x6e, 0x74, 0x49, 0x64]; // clientId

/** Byte ranges of a push request's parts: `[from, to)` of the clientId value and of each action. */
export interface PushPieces {
  /** The top-level keys in the order written: `clientId` and `actions`, once each. */
  readonly order: readonly ('clientId' | 'actions')[];
  readonly clientId: readonly [number, number];
  readonly actions: readonly (readonly [number, number])[];
  /** Per action, what locateRawActions' scan learns of it: every number canonical, and the keys written. */
  readonly canonical: readonly boolean[];
  readonly keys: readonly number[];
}

/**
 * Splits raw bytes shaped as `{"clientId": …, "actions": [{…}, …]}` (any JSON
 * whitespace, keys in either order, each once and without escapes) into the
 * byte ranges of its values, so each can be parsed on its own; null for
 * anything else. This does not validate the values: only JSON.parse of each
 * range does. The bytes between ranges are checked here (whitespace, `,`, the
 * brackets and the two keys), so when every range parses, the whole text is
 * valid JSON and reads as the parts put together.
 */
export function splitPushRequest(bytes: Uint8Array): PushPieces | null {
  const scan = new Scanner(bytes);
  const order: ('clientId' | 'actions')[] = [];
  let clientId: readonly [number, number] | null = null;
  const actions: (readonly [number, number])[] = [];
  const canonical: boolean[] = [];
  const keys: number[] = [];
  let i = scan.ws(0);
  if (bytes[i] !== OPEN_BRACE) return null;
  i = scan.ws(i + 1);
  for (;;) {
    if (bytes[i] !== QUOTE) return null;
    const keyEnd = scan.string(i);
    if (keyEnd < 0) return null;
    const key = isKey(bytes, i + 1, keyEnd - 1, ACTIONS_KEY)
      ? 'actions'
      : isKey(bytes, i + 1, keyEnd - 1, CLIENT_ID_KEY)
        ? 'clientId'
        : null;
    if (key === null || order.includes(key)) return null;
    order.push(key);
    i = scan.ws(keyEnd);
    if (bytes[i] !== COLON) return null;
    i = scan.ws(i + 1);
    if (key === 'clientId') {
      if (bytes[i] !== QUOTE) return null;
      const end = scan.string(i);
      if (end < 0) return null;
      clientId = [i, end];
      i = end;
    } else {
      if (bytes[i] !== OPEN_BRACKET) return null;
      i = scan.ws(i + 1);
      while (bytes[i] !== CLOSE_BRACKET) {
        if (bytes[i] !== OPEN_BRACE) return null;
        scan.keys = 0;
        scan.canonical = true;
        const end = scan.value(i);
        if (end < 0) return null;
        actions.push([i, end]);
        canonical.push(scan.canonical);
        keys.push(scan.keys);
        i = scan.ws(end);
        if (bytes[i] === COMMA) {
          i = scan.ws(i + 1);
          if (bytes[i] === CLOSE_BRACKET) return null; // a trailing comma
        } else if (bytes[i] !== CLOSE_BRACKET) return null;
      }
      i++;
    }
    i = scan.ws(i);
    if (bytes[i] === COMMA) {
      i = scan.ws(i + 1);
      continue;
    }
    if (bytes[i] !== CLOSE_BRACE) return null;
    break;
  }
  if (scan.ws(i + 1) !== bytes.length || clientId === null || order.length !== 2) return null;
  return { order, clientId, actions, canonical, keys };
}

/**
 * locateRawActions for a request that splitPushRequest split and whose every
 * piece parsed into `actions`: the split's scan already holds what it needs.
 */
export function rawActionsOf(bytes: Uint8Array, pieces: PushPieces, actions: readonly Action[]): RawActions | null {
  if (pieces.actions.length !== actions.length) return null;
  const starts = new Int32Array(actions.length).fill(-1);
  const ends = new Int32Array(actions.length);
  for (let k = 0; k < actions.length; k++) {
    const action = actions[k] as Action;
    const [from, to] = pieces.actions[k] as readonly [number, number];
    if (pieces.canonical[k] === true && action.seq === undefined && pieces.keys[k] === countKeys(action)) {
      starts[k] = from;
      ends[k] = to - 1;
    }
  }
  return { bytes, starts, ends };
}

function isKey(bytes: Uint8Array, from: number, to: number, key: readonly number[]): boolean {
  if (to - from !== key.length) return false;
  for (let j = 0; j < key.length; j++) if (bytes[from + j] !== key[j]) return false;
  return true;
}

/** Keys of every object in a parsed JSON value (duplicates in the text collapsed into one). */
function countKeys(value: object): number {
  let n = 0;
  if (Array.isArray(value)) {
    for (const item of value as unknown[]) if (typeof item === 'object' && item !== null) n += countKeys(item);
    return n;
  }
  const obj = value as Record<string, unknown>;
  for (const key in obj) {
    n++;
    const v = obj[key];
    if (typeof v === 'object' && v !== null) n += countKeys(v);
  }
  return n;
}

/** Byte-level walk over JSON text that JSON.parse accepted; -1 for anything it does not expect. */
class Scanner {
  readonly #b: Uint8Array;
  /** Keys met by `value` since last reset. */
  keys = 0;
  /** False once `value` met a number JavaScript would print differently. */
  canonical = true;

  constructor(bytes: Uint8Array) {
    this.#b = bytes;
  }

  ws(i: number): number {
    const b = this.#b;
    for (;;) {
      const c = b[i];
      if (c !== 0x20 && c !== 0x0a && c !== 0x0d && c !== 0x09) return i;
      i++;
    }
  }

  /** `i` at an opening quote: the offset after the closing one. */
  string(i: number): number {
    const b = this.#b;
    const n = b.length;
    for (i++; i < n; i++) {
      const c = b[i];
      if (c === QUOTE) return i + 1;
      if (c === BACKSLASH) i++; // the escaped character (or the u of \uXXXX) cannot end the string
    }
    return -1;
  }

  /** `i` at the start of a value: the offset after it; counts keys and checks numbers on the way. */
  value(i: number): number {
    const b = this.#b;
    let depth = 0;
    for (;;) {
      const c = b[i] as number;
      if (c === QUOTE) {
        i = this.string(i);
        if (i < 0) return -1;
        const after = this.ws(i);
        if (b[after] === COLON) {
          this.keys++;
          i = after + 1;
          continue;
        }
      } else if (c === OPEN_BRACE || c === OPEN_BRACKET) {
        depth++;
        i++;
        continue;
      } else if (c === CLOSE_BRACE || c === CLOSE_BRACKET) {
        depth--;
        i++;
      } else if (c === MINUS || (c >= ZERO && c <= NINE)) {
        i = this.#number(i);
      } else if (c === 0x74 || c === 0x6e) {
        i += 4; // true, null
      } else if (c === 0x66) {
        i += 5; // false
      } else if (c === COMMA || c === 0x20 || c === 0x0a || c === 0x0d || c === 0x09) {
        i++;
        continue;
      } else {
        return -1;
      }
      if (depth === 0) return i;
      if (depth < 0) return -1;
    }
  }

  #number(i: number): number {
    const b = this.#b;
    const start = i;
    let plain = true;
    let value = 0;
    if (b[i] === MINUS) i++;
    const digitsFrom = i;
    for (;;) {
      const c = b[i] as number;
      if (c >= ZERO && c <= NINE) {
        value = value * 10 + (c - ZERO);
        i++;
      } else if (c === 0x2e || c === 0x65 || c === 0x45 || c === 0x2b || c === MINUS) {
        plain = false;
        i++;
      } else break;
    }
    // An integer without a leading zero prints as written while it is exact (below 2^53: the
    // running value never rounded); "-0" prints as "0".
    if (plain && (b[digitsFrom] !== ZERO || i - digitsFrom === 1) && value <= Number.MAX_SAFE_INTEGER) {
      if (value === 0 && start !== digitsFrom) this.canonical = false;
      return i;
    }
    let text = '';
    for (let j = start; j < i; j++) text += String.fromCharCode(b[j] as number);
    if (String(Number(text)) !== text) this.canonical = false;
    return i;
  }
}
