// The store's pure push rules: clientSeq classification and the action as folded.
import { describe, expect, it } from 'vitest';
import { actionSchema, type Action } from '@ferry/contracts';
import { classifyClientSeq, withSeq } from '../src/store/push-rules.js';

describe('classifyClientSeq', () => {
  it('next, seen or gap against the high-water mark', () => {
    expect([
      classifyClientSeq(3, 4),
      classifyClientSeq(3, 3),
      classifyClientSeq(3, 1),
      classifyClientSeq(3, 5),
    ]).toEqual(['next', 'seen', 'seen', 'gap']);
  });
});

describe('withSeq', () => {
  it('copies every key an action can have, and sets the seq', () => {
    const full = Object.fromEntries(
      Object.keys(actionSchema.shape).map((key, i) => [key, `v${i}`]),
    ) as unknown as Action;
    expect(withSeq(full, 7)).toEqual({ ...full, seq: 7 });
    // A new key in the schema that withSeq does not copy fails here.
    expect(Object.keys(withSeq(full, 7)).sort()).toEqual(Object.keys(actionSchema.shape).sort());
  });

  it('leaves the action itself alone', () => {
    const action = { id: 'a', op: 'create', fields: { x: 1 } } as unknown as Action;
    withSeq(action, 3);
    expect(action).toEqual({ id: 'a', op: 'create', fields: { x: 1 } });
  });
});
