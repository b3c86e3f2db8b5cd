/**
 * What the attach mode keeps in the daemon's own SQLite file, beside the WAL:
 * the outbox watermark (committed with the actions it covers), the durable
 * queue of entities to write back to the app, and for tables whose keys SQLite
 * mints, the first create of each entity and the id collisions found. Never
 * touches the app's file.
 */
import { createHash } from 'node:crypto';
import type Database from 'better-sqlite3';
import {
  ConflictResolution,
  decodeStored,
  seqSchema,
  type Action,
  type ConflictRecord,
  type Fields,
} from '@ferry/contracts';
import type { WalStore } from '../wal/wal-store.js';

const LEDGER_SQL = `
CREATE TABLE IF NOT EXISTS attach_write_back (
  collection TEXT NOT NULL,
  entity_id  TEXT NOT NULL,
  PRIMARY KEY (collection, entity_id)
) WITHOUT ROWID;
-- First create seen of each entity of a table with INTEGER PRIMARY KEY (local or remote).
-- written: the entity has been written into the app's table, so the app can see it.
CREATE TABLE IF NOT EXISTS attach_creators (
  collection TEXT NOT NULL,
  entity_id  TEXT NOT NULL,
  client_id  TEXT NOT NULL,
  action_id  TEXT NOT NULL,
  hlc        INTEGER NOT NULL,
  fields_hash TEXT NOT NULL,
  written    INTEGER NOT NULL DEFAULT 0,
  PRIMARY KEY (collection, entity_id)
) WITHOUT ROWID;
-- Entities two devices minted independently: never written back (each device keeps its row).
CREATE TABLE IF NOT EXISTS attach_collisions (
  collection TEXT NOT NULL,
  entity_id  TEXT NOT NULL,
  at         INTEGER NOT NULL,
  record     TEXT NOT NULL,
  PRIMARY KEY (collection, entity_id)
) WITHOUT ROWID;
`;

/**
 * Temp triggers on the reconciler's record table queue every entity whose
 * confirmed record changes, in the reconciler's own transaction, so a crash
 * between a pulled page's commit and its write-back loses nothing.
 */
const QUEUE_TRIGGERS_SQL = ['INSERT', 'UPDATE', 'DELETE'].map(
  (ev) => `CREATE TEMP TRIGGER IF NOT EXISTS ferry_write_back_${ev.toLowerCase()} AFTER ${ev} ON main.entities
  WHEN ferry_write_back_enabled()
  BEGIN INSERT OR IGNORE INTO main.attach_write_back (collection, entity_id)
    VALUES (${ev === 'DELETE' ? 'OLD' : 'NEW'}.collection, ${ev === 'DELETE' ? 'OLD' : 'NEW'}.entity_id); END`,
);

export interface Creator {
  readonly clientId: string;
  readonly actionId: string;
  readonly hlc: number;
  readonly fieldsHash: string;
  readonly written: boolean;
}

export type EntityKey = readonly [collection: string, entityId: string];

export class AttachLedger {
  readonly #wal: WalStore;
  readonly #db: Database.Database;
  readonly #collided = new Set<string>();
  #queueing = true;
  readonly #s;

  constructor(wal: WalStore) {
    this.#wal = wal;
    const db = (this.#db = wal.db);
    db.exec(LEDGER_SQL);
    db.function('ferry_write_back_enabled', { deterministic: false }, () => (this.#queueing ? 1 : 0));
    for (const sql of QUEUE_TRIGGERS_SQL) db.exec(sql);
    this.#s = {
      enqueue: db.prepare<[string, string]>(
        'INSERT OR IGNORE INTO attach_write_back (collection, entity_id) VALUES (?, ?)',
      ),
      queued: db.prepare<[number], { collection: string; entity_id: string }>(
        'SELECT collection, entity_id FROM attach_write_back LIMIT ?',
      ),
      queuedCount: db.prepare<[], { n: number }>('SELECT count(*) AS n FROM attach_write_back'),
      dequeue: db.prepare<[string, string]>('DELETE FROM attach_write_back WHERE collection = ? AND entity_id = ?'),
      creator: db.prepare<
        [string, string],
        { client_id: string; action_id: string; hlc: number; fields_hash: string; written: number }
      >(
        'SELECT client_id, action_id, hlc, fields_hash, written FROM attach_creators WHERE collection = ? AND entity_id = ?',
      ),
      putCreator: db.prepare<[string, string, string, string, number, string]>(
        `INSERT OR IGNORE INTO attach_creators (collection, entity_id, client_id, action_id, hlc, fields_hash)
         VALUES (?, ?, ?, ?, ?, ?)`,
      ),
      markWritten: db.prepare<[string, string]>(
        'UPDATE attach_creators SET written = 1 WHERE collection = ? AND entity_id = ? AND written = 0',
      ),
      collide: db.prepare<[string, string, number, string]>(
        'INSERT OR IGNORE INTO attach_collisions (collection, entity_id, at, record) VALUES (?, ?, ?, ?)',
      ),
      collisions: db.prepare<[], { collection: string; entity_id: string }>(
        'SELECT collection, entity_id FROM attach_collisions',
      ),
      logConflict: db.prepare<[number, string, string, string]>(
        'INSERT INTO conflicts (at, collection, entity_id, record) VALUES (?, ?, ?, ?)',
      ),
    };
    for (const r of this.#s.collisions.iterate()) this.#collided.add(key(r.collection, r.entity_id));
  }

  /** The highest outbox row of attachment `attachId` whose change is in the WAL. */
  watermark(attachId: string): number {
    const key = `attach_outbox:${attachId}`;
    // Damaged (NaN would stop capture silently): an internal error naming the row.
    return decodeStored(seqSchema, this.#wal.getMeta(key) ?? '0', `meta ${key}`);
  }

  /** Call inside the transaction that appends the covered actions. */
  setWatermark(attachId: string, id: number): void {
    this.#wal.setMeta(`attach_outbox:${attachId}`, String(id));
  }

  /** Runs `fn` without queueing record changes (acknowledgements: the app already has its own writes). */
  withoutQueueing<T>(fn: () => T): T {
    const was = this.#queueing;
    this.#queueing = false;
    try {
      return fn();
    } finally {
      this.#queueing = was;
    }
  }

  enqueue(keys: Iterable<EntityKey>): void {
    this.#db.transaction(() => {
      for (const [c, id] of keys) this.#s.enqueue.run(c, id);
    })();
  }

  queued(limit: number): EntityKey[] {
    return this.#s.queued.all(limit).map((r) => [r.collection, r.entity_id] as const);
  }

  queuedCount(): number {
    return this.#s.queuedCount.get()?.n ?? 0;
  }

  /** After the app's transaction committed: the entities are written, and seen by the app. */
  settle(keys: readonly EntityKey[]): void {
    this.#db.transaction(() => {
      for (const [c, id] of keys) {
        this.#s.dequeue.run(c, id);
        this.#s.markWritten.run(c, id);
      }
    })();
  }

  creator(collection: string, entityId: string): Creator | undefined {
    const r = this.#s.creator.get(collection, entityId);
    return r === undefined
      ? undefined
      : {
          clientId: r.client_id,
          actionId: r.action_id,
          hlc: r.hlc,
          fieldsHash: r.fields_hash,
          written: r.written === 1,
        };
  }

  recordCreator(collection: string, entityId: string, c: Omit<Creator, 'written'>): void {
    this.#s.putCreator.run(collection, entityId, c.clientId, c.actionId, c.hlc, c.fieldsHash);
  }

  /**
   * The bookkeeping of one create of an entity of a table whose keys SQLite
   * mints, local (capture) or pulled (reconciler): the first create seen is
   * recorded; a later one by another client with other fields is an id
   * collision, recorded and returned, unless already known (`found`: the
   * collisions of the same transaction, not remembered yet). `kept`: which of
   * the two creates this device's table keeps, this one (our own insert) or
   * the first (a pulled create of an id we already have). Call inside the
   * transaction that applies the create.
   */
  checkCreate(
    create: Pick<Action, 'id' | 'clientId' | 'collection' | 'entityId' | 'hlc' | 'fields'>,
    kept: 'this' | 'first',
    at: number,
    found: readonly ConflictRecord[] = [],
  ): ConflictRecord | null {
    const { collection, entityId } = create;
    const hash = fieldsHash(create.fields);
    const first = this.creator(collection, entityId);
    if (first === undefined) {
      this.recordCreator(collection, entityId, {
        clientId: create.clientId,
        actionId: create.id,
        hlc: create.hlc,
        fieldsHash: hash,
      });
      return null;
    }
    if (first.clientId === create.clientId || first.fieldsHash === hash) return null;
    if (
      this.collided(collection, entityId) ||
      found.some((c) => c.collection === collection && c.entityId === entityId)
    )
      return null;
    const self = { actionId: create.id, clientId: create.clientId, hlc: create.hlc };
    const conflict =
      kept === 'this' ? idCollision(collection, entityId, self, first) : idCollision(collection, entityId, first, self);
    this.recordCollision(conflict, at);
    return conflict;
  }

  collided(collection: string, entityId: string): boolean {
    return this.#collided.has(key(collection, entityId));
  }

  /** Records a collision and logs it with the conflicts; call inside the transaction that found it. */
  recordCollision(conflict: ConflictRecord, at: number): void {
    const json = JSON.stringify(conflict);
    this.#s.collide.run(conflict.collection, conflict.entityId, at, json);
    this.#s.logConflict.run(at, conflict.collection, conflict.entityId, json);
  }

  /** After the transaction that recorded collisions committed. */
  rememberCollisions(conflicts: readonly ConflictRecord[]): void {
    for (const c of conflicts) this.#collided.add(key(c.collection, c.entityId));
  }
}

const key = (collection: string, id: string): string => `${collection}\u0000${id}`;

/** A stable digest of a create's fields: two creates of one row by two devices have equal digests. */
export function fieldsHash(fields: Fields | undefined): string {
  return createHash('sha256')
    .update(canonicalJson(fields ?? {}))
    .digest('base64url')
    .slice(0, 22);
}

function canonicalJson(v: unknown): string {
  if (typeof v !== 'object' || v === null) return JSON.stringify(v);
  if (Array.isArray(v)) return `[${v.map(canonicalJson).join(',')}]`;
  const o = v as Record<string, unknown>;
  return `{${Object.keys(o)
    .sort()
    .map((k) => `${JSON.stringify(k)}:${canonicalJson(o[k])}`)
    .join(',')}}`;
}

/**
 * The conflict record of an id collision. `winner` is the row this device's
 * table keeps, `loser` the other device's create, which is not merged into it.
 */
export function idCollision(
  collection: string,
  entityId: string,
  kept: { actionId: string; clientId: string; hlc: number },
  other: { actionId: string; clientId: string; hlc: number },
): ConflictRecord {
  return {
    collection,
    entityId,
    field: null,
    winner: { actionId: kept.actionId, clientId: kept.clientId, hlc: kept.hlc },
    loser: { actionId: other.actionId, clientId: other.clientId, hlc: other.hlc },
    resolution: ConflictResolution.IdCollision,
    reason: `table ${collection} has an INTEGER PRIMARY KEY and clients ${kept.clientId} and ${other.clientId} both created id ${entityId} with different rows; each device keeps its own row (use TEXT/uuid keys, see docs/attach.md)`,
  } as ConflictRecord;
}
