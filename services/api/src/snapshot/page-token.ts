/**
 * The snapshot page token: opaque to clients, base64url of a small JSON that
 * pins the snapshot's seq and the last (collection, id) served.
 */
import { Buffer } from 'node:buffer';
import { collectionNameSchema, entityIdSchema, seqSchema } from '@ferry/contracts';
import type { SnapshotCursor } from '../store/store.js';

const TOKEN_VERSION = 1;

export function encodePageToken(cursor: SnapshotCursor): string {
  const json = JSON.stringify({ v: TOKEN_VERSION, s: cursor.seq, c: cursor.collection, i: cursor.id });
  return Buffer.from(json, 'utf8').toString('base64url');
}

/** null when the token was not made by `encodePageToken`. */
export function decodePageToken(token: string): SnapshotCursor | null {
  let raw: unknown;
  try {
    raw = JSON.parse(Buffer.from(token, 'base64url').toString('utf8'));
  } catch {
    return null;
  }
  if (typeof raw !== 'object' || raw === null) return null;
  const { v, s, c, i, ...rest } = raw as Record<string, unknown>;
  if (v !== TOKEN_VERSION || Object.keys(rest).length > 0) return null;
  const seq = seqSchema.safeParse(s);
  const collection = collectionNameSchema.safeParse(c);
  const id = entityIdSchema.safeParse(i);
  if (!seq.success || !collection.success || !id.success) return null;
  return { seq: seq.data, collection: collection.data, id: id.data };
}
