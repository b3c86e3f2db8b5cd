// Action builders for API tests: one simulated client with its own clientSeq
// and a strictly increasing hlc, as a daemon would produce them.
import { uuidv7 } from 'uuidv7';
import type { Action, ClientId, Fields, Hlc } from '@ferry/contracts';

/** A wall-clock-based hlc (`millis * 4096`) near `now`, as clients make them. */
export function hlcAt(millis: number): Hlc {
  return (millis * 4096) as Hlc;
}

export interface SimClient {
  readonly clientId: ClientId;
  /** The clientSeq of the last action made. */
  readonly lastSeq: number;
  create(entityId: string, fields: Fields, extra?: Partial<Action>): Action;
  update(entityId: string, fields: Fields, extra?: Partial<Action>): Action;
  remove(entityId: string, extra?: Partial<Action>): Action;
}

export function simClient(options: { collection?: string; hlcBase?: number } = {}): SimClient {
  const clientId = uuidv7() as ClientId;
  const collection = options.collection ?? 'notes';
  let seq = 0;
  let hlc = options.hlcBase ?? hlcAt(Date.now());
  const make = (
    op: Action['op'],
    entityId: string,
    fields: Fields | undefined,
    extra: Partial<Action> = {},
  ): Action => {
    const action: Record<string, unknown> = {
      id: uuidv7(),
      clientId,
      clientSeq: ++seq,
      collection,
      entityId,
      op,
      hlc: ++hlc,
      ...extra,
    };
    if (fields !== undefined) action.fields = fields;
    return action as Action;
  };
  return {
    clientId,
    get lastSeq() {
      return seq;
    },
    create: (entityId, fields, extra) => make('create', entityId, fields, extra),
    update: (entityId, fields, extra) => make('update', entityId, fields, extra),
    remove: (entityId, extra) => make('delete', entityId, undefined, extra),
  };
}
