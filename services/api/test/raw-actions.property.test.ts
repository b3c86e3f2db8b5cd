// The push request's action text is passed on to the log only where every
// JSON parser reads it as the parsed action: the located text, completed with
// its seq, parses to exactly the parsed action with that seq; text with a key
// twice or a number JavaScript would print differently is never passed on.
// Seed and run count come from FC_SEED / FC_RUNS so a failure replays.
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { uuidv7 } from 'uuidv7';
import type { Action } from '@ferry/contracts';
import { locateRawActions, rawActionsOf, splitPushRequest } from '../src/push/raw-actions.js';
import { decodeJson, decodePushJson } from '../src/push/validate-push.js';

const params = {
  numRuns: Number(process.env.FC_RUNS ?? 1000),
  ...(process.env.FC_SEED === undefined ? {} : { seed: Number(process.env.FC_SEED) }),
};

const CLIENT = uuidv7();
const enc = new TextEncoder();
const dec = new TextDecoder();

const action = fc.record(
  {
    id: fc.constant(null).map(() => uuidv7()),
    clientId: fc.constant(CLIENT),
    clientSeq: fc.integer({ min: 1, max: Number.MAX_SAFE_INTEGER }),
    collection: fc.constantFrom('notes', '_a1'),
    entityId: fc.string({ minLength: 1, maxLength: 8, unit: 'binary' }),
    op: fc.constantFrom('create', 'update'),
    fields: fc.dictionary(
      fc.string({ minLength: 1, maxLength: 6, unit: 'binary' }).filter((k) => k !== '__proto__'),
      fc.jsonValue({ maxDepth: 3 }),
      { minKeys: 1, maxKeys: 4 },
    ),
    hlc: fc.integer({ min: 0, max: Number.MAX_SAFE_INTEGER }),
    baseVersion: fc.nat(),
  },
  { requiredKeys: ['id', 'clientId', 'clientSeq', 'collection', 'entityId', 'op', 'fields', 'hlc'] },
);

/** The stored row the writer makes from a located action (writer.ts, insertRawAction). */
function storedText(bytes: Uint8Array, start: number, end: number, seq: number): string {
  return `${dec.decode(bytes.subarray(start, end))},"seq":${seq}}`;
}

function locate(text: string) {
  const bytes = enc.encode(text);
  const parsed = JSON.parse(text) as { actions: Action[] };
  return { bytes, parsed, raw: locateRawActions(bytes, parsed.actions) };
}

describe('locateRawActions', () => {
  it('passes on text that reads back as the parsed action, however the request was spaced', () => {
    let passedOn = 0;
    fc.assert(
      fc.property(fc.array(action, { minLength: 1, maxLength: 4 }), fc.constantFrom(0, 1, '\t'), (actions, space) => {
        const { bytes, parsed, raw } = locate(JSON.stringify({ clientId: CLIENT, actions }, null, space));
        expect(raw).not.toBeNull();
        parsed.actions.forEach((a, i) => {
          const start = raw?.starts[i] as number;
          if (start < 0) return; // a number JavaScript prints differently (e.g. 1e+21): serialised instead
          passedOn++;
          const seq = i + 1;
          expect(JSON.parse(storedText(bytes, start, raw?.ends[i] as number, seq))).toStrictEqual({ ...a, seq });
        });
      }),
      params,
    );
    expect(passedOn).toBeGreaterThan(params.numRuns);
  });

  const base = `"id":"${uuidv7()}","clientId":"${CLIENT}","clientSeq":1,"collection":"notes","entityId":"e","op":"create","hlc":7`;
  it.each([
    ['a key twice in the action', `{${base},"hlc":8,"fields":{"a":1}}`],
    ['a key twice in the fields', `{${base},"fields":{"a":1,"a":2}}`],
    ['a key twice deep in a value', `{${base},"fields":{"a":{"b":[{"c":1,"c":1}]}}}`],
    ['a key twice, once escaped', `{${base},"fields":{"a":1,"\\u0061":2}}`],
    ['1.0', `{${base},"fields":{"a":1.0}}`],
    ['1e2', `{${base},"fields":{"a":1e2}}`],
    ['1E2', `{${base},"fields":{"a":1E2}}`],
    ['-0', `{${base},"fields":{"a":-0}}`],
    ['0.10', `{${base},"fields":{"a":0.10}}`],
    ['an integer beyond 2^53', `{${base},"fields":{"a":9007199254740993}}`],
    ['digits JavaScript rounds', `{${base},"fields":{"a":12345678901234567890}}`],
    ['a seq sent by the client', `{${base},"seq":99,"fields":{"a":1}}`],
  ])('does not pass on an action with %s', (_name, actionText) => {
    const { bytes, parsed, raw } = locate(`{"clientId":"${CLIENT}","actions":[${actionText}]}`);
    expect(raw?.starts[0]).toBe(-1);
    // Nor does the split's own reading of it (the large-request path).
    const pieces = splitPushRequest(bytes);
    expect(pieces && rawActionsOf(bytes, pieces, parsed.actions)?.starts[0]).toBe(-1);
  });

  it.each([
    ['strings with quotes, backslashes and brackets', `{${base},"fields":{"a":"x\\"}{[\\\\","b\\\\":"\\\\"}}`],
    ['escapes and non-ASCII text', `{${base},"fields":{"a":"\\u00e9\\n\\/ é 😀"}}`],
    ['canonical numbers', `{${base},"fields":{"a":[0,-1,1.5,-2.25e-7,9007199254740991,1e+21,true,false,null]}}`],
    ['whitespace everywhere', `{ ${base.replaceAll(',', ' ,\n ')} , "fields" : { "a" : [ 1 , { } ] } }`],
  ])('passes on an action with %s, reading back the same', (_name, actionText) => {
    const { bytes, parsed, raw } = locate(`{"actions":[${actionText}],"clientId":"${CLIENT}"}`);
    const start = raw?.starts[0] as number;
    expect(start).toBeGreaterThanOrEqual(0);
    expect(JSON.parse(storedText(bytes, start, raw?.ends[0] as number, 5))).toStrictEqual({
      ...parsed.actions[0],
      seq: 5,
    });
  });

  it('gives up on a request with "actions" twice (JSON.parse kept the last)', () => {
    const a = `{${base},"fields":{"a":1}}`;
    expect(locate(`{"clientId":"${CLIENT}","actions":[${a}],"actions":[${a}]}`).raw).toBeNull();
  });

  it('gives up on a top-level key written with escapes (JSON.parse reads "\\u0061ctions" as "actions")', () => {
    const a = `{${base},"fields":{"a":1}}`;
    const b = `{${base},"fields":{"b":2}}`;
    const located = locate(`{"clientId":"${CLIENT}","actions":[${a}],"\\u0061ctions":[${b}]}`);
    expect(located.raw).toBeNull();
  });
});

describe('decodePushJson', () => {
  /** A request's text, spaced at random, with now and then one byte changed, dropped or doubled. */
  const requestText = fc
    .tuple(
      fc.array(action, { maxLength: 5 }),
      fc.constantFrom(0, 1, '\t', ' \r\n'),
      fc.boolean(),
      fc.oneof(
        { weight: 3, arbitrary: fc.constant(null) },
        fc.record({
          at: fc.nat(),
          op: fc.constantFrom('drop', 'double', 'set'),
          byte: fc.constantFrom(0x2c, 0x5d, 0x7d, 0x22, 0x20, 0x5c, 0x61, 0x30, 0xff),
        }),
      ),
      fc.constantFrom('', ',"x":1', ',"actions":[]', ',"clientId":"y"'),
    )
    .map(([actions, space, actionsFirst, edit, extra]) => {
      const body = actionsFirst ? { actions, clientId: CLIENT } : { clientId: CLIENT, actions };
      let text = JSON.stringify(body, null, space);
      if (extra !== '') text = `${text.slice(0, text.lastIndexOf('}'))}${extra}}`;
      const bytes = [...enc.encode(text)];
      if (edit !== null && bytes.length > 0) {
        const at = edit.at % bytes.length;
        if (edit.op === 'drop') bytes.splice(at, 1);
        else if (edit.op === 'double') bytes.splice(at, 0, bytes[at] as number);
        else bytes[at] = edit.byte;
      }
      return Uint8Array.from(bytes);
    });

  it('reads every request as decoding the whole text does: the same value, or the same error', () => {
    let pieced = 0;
    fc.assert(
      fc.property(requestText, fc.integer({ min: 1, max: 400 }), (bytes, pieceBytes) => {
        const whole = decodeJson(bytes);
        const inPieces = decodePushJson(bytes, pieceBytes, 0);
        if (splitPushRequest(bytes) !== null && whole.ok) pieced++;
        expect(inPieces.ok).toBe(whole.ok);
        if (whole.ok && inPieces.ok) expect(inPieces.value).toStrictEqual(whole.value);
        if (!whole.ok && !inPieces.ok) expect(inPieces.error.message).toBe(whole.error.message);
      }),
      params,
    );
    expect(pieced).toBeGreaterThan(params.numRuns / 8); // the piecewise path was taken, not only the fallback
  });

  it('finds the action text exactly where locateRawActions does, from the split alone', () => {
    fc.assert(
      fc.property(fc.array(action, { minLength: 1, maxLength: 4 }), fc.constantFrom(0, 1, '\t'), (actions, space) => {
        const { bytes, parsed, raw } = locate(JSON.stringify({ clientId: CLIENT, actions }, null, space));
        const pieces = splitPushRequest(bytes);
        expect(pieces).not.toBeNull();
        expect(rawActionsOf(bytes, pieces as NonNullable<typeof pieces>, parsed.actions)).toEqual(raw);
      }),
      params,
    );
  });

  it('keeps the key order of the text, and refuses a trailing comma or text after the object as JSON.parse does', () => {
    const text = `{"actions":[{"a":1} , {"b":[2]}],"clientId":"${CLIENT}"}`;
    const read = decodePushJson(enc.encode(text), 8, 0);
    expect(read.ok && Object.keys(read.value as object)).toEqual(['actions', 'clientId']);
    for (const bad of [`{"clientId":"${CLIENT}","actions":[{"a":1},]}`, `{"clientId":"${CLIENT}","actions":[]} x`]) {
      expect(splitPushRequest(enc.encode(bad))).toBeNull();
      expect(decodePushJson(enc.encode(bad), 8, 0).ok).toBe(false);
    }
  });
});
