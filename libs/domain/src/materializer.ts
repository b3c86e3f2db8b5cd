/**
 * The incremental materializer: the state one replica shows, kept as
 *
 *     materialized = confirmed ⊕ pending
 *
 *   confirmed  records folded from server-sequenced actions (applyRemote, confirm)
 *   pending    local actions not yet acknowledged, kept apart and overlaid per
 *              entity on read, so a download never overwrites an unacknowledged
 *              local change and a rejection simply drops the action
 *
 * Every call touches only the entities its actions name; nothing replays
 * history. Results are values: the entities that changed (as the app must now
 * see them) and the conflicts detected. Invariants M1–M4 in docs/invariants.md.
 */
import type { Action, ConflictRecord, ConflictSide, EntityState } from '@ferry/contracts';
import { ConflictResolution } from '@ferry/contracts';
import { applyAction } from './apply-action.js';
import { ClientSeqSet } from './client-seq-set.js';
import { MemoryPendingStore, MemoryRecordStore, type PendingStore, type RecordStore, type SeenSet } from './stores.js';
import {
  cloneRecord,
  emptyRecord,
  sameJson,
  viewRecord,
  type Cell,
  type ClashSink,
  type EntityRec,
  type FieldClash,
} from './entity-record.js';
import { compareStamps, type StampRef } from './order.js';
import { PolicyBook, type CollectionPolicy } from './policy.js';

export interface ApplyResult {
  /** Materialized state of each entity that changed; a vanished entity comes as a tombstone. */
  readonly changed: EntityState[];
  readonly conflicts: ConflictRecord[];
  /** Actions ignored because they had been folded in before. */
  readonly duplicates: number;
}

export interface Acknowledgement {
  readonly id: string;
  readonly seq: number;
}

export interface Rejection {
  readonly id: string;
  readonly reason: string;
}

export interface MaterializerOptions {
  readonly policies?: PolicyBook;
  /** Confirmed records; in memory by default. */
  readonly records?: RecordStore;
  /** Pending local actions; in memory by default. */
  readonly pending?: PendingStore;
  /** Dedupe of confirmed actions; in memory by default. */
  readonly seen?: SeenSet;
}

type Changed = Map<string, Set<string>>;

function markChanged(changed: Changed, collection: string, id: string): void {
  let ids = changed.get(collection);
  if (ids === undefined) changed.set(collection, (ids = new Set()));
  ids.add(id);
}

function sideOf(s: Cell | StampRef, field: string | null, deleted = false): ConflictSide {
  const side: { actionId: string; clientId: string; hlc: number; value?: unknown; deleted?: boolean } = {
    actionId: s.id,
    clientId: s.clientId,
    hlc: s.hlc,
  };
  if (field !== null && 'value' in s) side.value = s.value;
  if (deleted) side.deleted = true;
  return side as ConflictSide;
}

function sideOfAction(a: Action, field: string | null): ConflictSide {
  const side: { actionId: string; clientId: string; hlc: number; value?: unknown; deleted?: boolean } = {
    actionId: a.id,
    clientId: a.clientId,
    hlc: a.hlc,
  };
  if (a.op === 'delete') side.deleted = true;
  else if (field !== null && a.fields !== undefined && field in a.fields) side.value = a.fields[field];
  return side as ConflictSide;
}

export class Materializer {
  readonly #policies: PolicyBook;
  readonly #records: RecordStore;
  /** (clientId, clientSeq) of every action folded into confirmed. */
  readonly #seen: SeenSet;
  readonly #pending: PendingStore;
  #conflicts: ConflictRecord[] = [];
  #epoch = 0;
  readonly #sink: ClashSink = (rec, clash) => this.#conflicts.push(this.#clashRecord(rec, clash));

  constructor(options: MaterializerOptions = {}) {
    this.#policies = options.policies ?? new PolicyBook();
    this.#records = options.records ?? new MemoryRecordStore();
    this.#pending = options.pending ?? new MemoryPendingStore();
    this.#seen = options.seen ?? new ClientSeqSet();
  }

  get pendingCount(): number {
    return this.#pending.size;
  }

  /** Folds server-sequenced actions into confirmed state. A pending one is confirmed instead. */
  applyRemote(actions: readonly Action[]): ApplyResult {
    const epoch = ++this.#epoch;
    const touched: EntityRec[] = [];
    this.#conflicts = [];
    let duplicates = 0;
    let lastCollection: string | undefined;
    let policy: CollectionPolicy = this.#policies.for('');
    const records = this.#records;

    for (const a of actions) {
      const anyPending = this.#pending.size > 0;
      if (anyPending && this.#pending.get(a.id) !== undefined) {
        this.#confirmOne(a.id, a.seq ?? 0);
        continue;
      }
      if (!this.#seen.add(a.clientId, a.clientSeq)) {
        duplicates++;
        continue;
      }
      if (a.collection !== lastCollection) {
        lastCollection = a.collection;
        policy = this.#policies.for(a.collection);
      }
      let rec = records.get(a.collection, a.entityId);
      if (rec === undefined) records.put((rec = emptyRecord(a.collection, a.entityId)));
      if (anyPending) {
        const pending = this.#pending.forEntity(a.collection, a.entityId);
        if (pending !== undefined) this.#reportAgainstPending(a, pending);
      }
      applyAction(rec, a, policy, this.#sink);
      if (rec.mark !== epoch) {
        rec.mark = epoch;
        touched.push(rec);
      }
    }
    records.changed?.(touched);
    const changed: EntityState[] = [];
    for (const rec of touched) {
      // Remote actions only ever make an entity appear; one still unseen by the app is left out.
      const view = this.#pending.size === 0 ? viewRecord(rec) : this.#materialize(rec.collection, rec.id);
      if (view !== null) changed.push(view);
    }
    return { changed, conflicts: this.#takeConflicts(), duplicates };
  }

  /** Adds local actions, not yet acknowledged, on top of confirmed state. */
  addPending(actions: readonly Action[]): ApplyResult {
    const changed: Changed = new Map();
    let duplicates = 0;
    for (const a of actions) {
      if (this.#pending.get(a.id) !== undefined || this.#seen.has(a.clientId, a.clientSeq)) {
        duplicates++;
        continue;
      }
      this.#pending.add(a);
      markChanged(changed, a.collection, a.entityId);
    }
    return { changed: this.#views(changed), conflicts: [], duplicates };
  }

  /**
   * Moves acknowledged pending actions into confirmed state. The materialized
   * state cannot change (same actions, other side of the ⊕), so nothing is reported.
   */
  confirm(acks: readonly Acknowledgement[]): ApplyResult {
    for (const ack of acks) this.#confirmOne(ack.id, ack.seq);
    return { changed: [], conflicts: [], duplicates: 0 };
  }

  /** Drops rejected pending actions; their entities are re-materialized without them. */
  reject(rejections: readonly Rejection[]): ApplyResult {
    const changed: Changed = new Map();
    const conflicts: ConflictRecord[] = [];
    for (const r of rejections) {
      const a = this.#pending.remove(r.id, { reason: r.reason });
      if (a === undefined) continue;
      conflicts.push({
        collection: a.collection,
        entityId: a.entityId,
        field: null,
        winner: null,
        loser: sideOfAction(a, null),
        resolution: ConflictResolution.Rejected,
        reason: r.reason,
      });
      markChanged(changed, a.collection, a.entityId);
    }
    return { changed: this.#views(changed), conflicts, duplicates: 0 };
  }

  /** The materialized state of one entity, or null when it does not exist. */
  get(collection: string, id: string): EntityState | null {
    return this.#materialize(collection, id);
  }

  /**
   * The materialized state of the given entities, for a caller that put
   * actions into the pending store itself (a daemon's WAL); an entity that
   * exists nowhere comes back as a tombstone so the app drops it.
   */
  materialized(keys: Iterable<readonly [collection: string, id: string]>): EntityState[] {
    const changed: Changed = new Map();
    for (const [collection, id] of keys) markChanged(changed, collection, id);
    return this.#views(changed);
  }

  /** The confirmed record, without the pending overlay (for stores and tests). */
  confirmedRecord(collection: string, id: string): EntityRec | undefined {
    return this.#records.get(collection, id);
  }

  /** Every visible materialized entity, optionally of one collection. */
  *entities(collection?: string): Generator<EntityState> {
    const seen = new Set<string>();
    for (const source of [this.#records.keys(collection), this.#pending.keys(collection)]) {
      for (const [c, id] of source) {
        const key = `${c}\u0000${id}`;
        if (seen.has(key)) continue;
        seen.add(key);
        const view = this.#materialize(c, id);
        if (view !== null) yield view;
      }
    }
  }

  /** Pending actions still awaiting acknowledgement, in the order they were added. */
  pendingActions(): Action[] {
    return [...this.#pending.all()];
  }

  #confirmOne(id: string, seq: number): void {
    const a = this.#pending.remove(id, { seq });
    if (a === undefined || !this.#seen.add(a.clientId, a.clientSeq)) return;
    const confirmed: Action = seq > 0 ? { ...a, seq } : a;
    let rec = this.#records.get(a.collection, a.entityId);
    if (rec === undefined) this.#records.put((rec = emptyRecord(a.collection, a.entityId)));
    // The local user saw what they overwrote: no clash reporting for their own writes.
    applyAction(rec, confirmed, this.#policies.for(a.collection));
    this.#records.changed?.([rec]);
  }

  #gone(collection: string, id: string): EntityState {
    const rec = this.#records.get(collection, id);
    return { collection, id, fields: {}, deleted: true, version: rec?.version ?? 0, hlc: rec?.hlc ?? 0 } as EntityState;
  }

  #materialize(collection: string, id: string): EntityState | null {
    const rec = this.#records.get(collection, id);
    const pending = this.#pending.forEntity(collection, id);
    if (pending === undefined) return rec === undefined ? null : viewRecord(rec);
    const overlay = rec === undefined ? emptyRecord(collection, id) : cloneRecord(rec);
    const policy = this.#policies.for(collection);
    for (const p of pending) applyAction(overlay, p, policy);
    return viewRecord(overlay);
  }

  #views(changed: Changed): EntityState[] {
    const out: EntityState[] = [];
    for (const [collection, ids] of changed) {
      for (const id of ids) {
        // An entity that exists nowhere any more (its only create was rejected) is shown as gone.
        out.push(this.#materialize(collection, id) ?? this.#gone(collection, id));
      }
    }
    return out;
  }

  /** A remote action meets unacknowledged local ones on the same entity. */
  #reportAgainstPending(remote: Action, pending: readonly Action[]): void {
    const localDelete = pending.find((p) => p.op === 'delete');
    if (remote.op === 'delete') {
      const lost = pending.filter((p) => p.op !== 'delete');
      const latest = lost.reduce<Action | undefined>(
        (m, p) => (m === undefined || compareStamps(p, m) > 0 ? p : m),
        undefined,
      );
      if (latest !== undefined)
        this.#conflicts.push(
          this.#record(
            remote,
            null,
            sideOfAction(remote, null),
            sideOfAction(latest, null),
            ConflictResolution.DeleteWins,
          ),
        );
      return;
    }
    if (localDelete !== undefined) {
      this.#conflicts.push(
        this.#record(
          remote,
          null,
          sideOfAction(localDelete, null),
          sideOfAction(remote, null),
          ConflictResolution.DeleteWins,
        ),
      );
      return;
    }
    const fields = remote.fields;
    if (fields === undefined) return;
    for (const field in fields) {
      let latest: Action | undefined;
      for (const p of pending) {
        if (p.fields !== undefined && field in p.fields && (latest === undefined || compareStamps(p, latest) > 0))
          latest = p;
      }
      if (latest === undefined || sameJson(latest.fields?.[field] ?? null, fields[field] ?? null)) continue;
      const remoteWins = compareStamps(remote, latest) > 0;
      const winner = remoteWins ? remote : latest;
      const loser = remoteWins ? latest : remote;
      this.#conflicts.push(
        this.#record(
          remote,
          field,
          sideOfAction(winner, field),
          sideOfAction(loser, field),
          ConflictResolution.LastWriterWins,
        ),
      );
    }
  }

  #record(
    a: Action,
    field: string | null,
    winner: ConflictSide,
    loser: ConflictSide,
    resolution: ConflictRecord['resolution'],
  ): ConflictRecord {
    return { collection: a.collection, entityId: a.entityId, field, winner, loser, resolution };
  }

  #clashRecord(rec: EntityRec, clash: FieldClash): ConflictRecord {
    const deleteWins = clash.kind === 'delete-wins';
    return {
      collection: rec.collection,
      entityId: rec.id,
      field: clash.field,
      winner: sideOf(clash.winner, clash.field, deleteWins),
      loser: sideOf(clash.loser, deleteWins ? 'value' : clash.field),
      resolution: deleteWins ? ConflictResolution.DeleteWins : ConflictResolution.LastWriterWins,
    } as ConflictRecord;
  }

  #takeConflicts(): ConflictRecord[] {
    const out = this.#conflicts;
    this.#conflicts = [];
    return out;
  }
}
