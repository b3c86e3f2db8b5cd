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
import { applyCustom } from './custom-merge.js';
import { entityKey } from './oracle.js';
import {
  MemoryPendingStore,
  MemoryRecordStore,
  type EntityKey,
  type PendingStore,
  type RecordStore,
  type SeenSet,
} from './stores.js';
import {
  applyLww,
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
  else if (field !== null && a.fields !== undefined && Object.hasOwn(a.fields, field)) side.value = a.fields[field];
  return side as ConflictSide;
}

export class Materializer {
  readonly #policies: PolicyBook;
  readonly #records: RecordStore;
  /** (clientId, clientSeq) of every action folded into confirmed. */
  readonly #seen: SeenSet;
  readonly #pending: PendingStore;
  #conflicts: ConflictRecord[] = [];
  /** Records touched by the current applyRemote carry `mark = #markBase + their index in it`. */
  #markBase = 1;
  /** What the pending-overlay report already covered for the action being applied. */
  #covered: Set<string> | 'entity' | null = null;
  /** applyRemote's scratch: the record of each action, looked up ahead (kept to spare an allocation per call). */
  readonly #found: (EntityRec | undefined)[] = [];
  readonly #sink: ClashSink = (rec, clash) => {
    const covered = this.#covered;
    if (covered === 'entity' || (covered !== null && clash.field !== null && covered.has(clash.field))) return;
    if (covered !== null && clash.field === null && covered.size > 0) return;
    this.#conflicts.push(this.#clashRecord(rec, clash));
  };

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
    const base = this.#markBase;
    // Marks of earlier calls stay below the next base; one left by another
    // instance is caught by the identity check below.
    this.#markBase = base > 0x3fffffff ? 1 : base + actions.length + 1;
    const touched: EntityRec[] = [];
    // The view of each touched record, taken while the record is in cache;
    // undefined when it must wait for the end (pending actions overlay it).
    const views: (EntityState | null | undefined)[] = [];
    let count = 0;
    /** Whether this call has created a record: only then can one found absent above exist now. */
    let created = false;
    this.#conflicts = [];
    let duplicates = 0;
    let lastCollection: string | undefined;
    let policy: CollectionPolicy = this.#policies.for('');
    const records = this.#records;
    const pendingStore = this.#pending;
    const seen = this.#seen;
    const sink = this.#sink;
    // Only a confirmation below can change the pending set during this call.
    let anyPending = pendingStore.size > 0;
    if (records.prefetch !== undefined) records.prefetch(actions.map((a): EntityKey => [a.collection, a.entityId]));
    // Every record is looked up before any is written: independent lookups let
    // the CPU overlap their cache misses, which a lookup followed by its merge
    // does not (bench:domain (1): about a quarter faster). `get` is an identity
    // map (stores.ts), so a record found here is the one the merge must update;
    // one absent here may still be created by an earlier action of the batch.
    const found = this.#found;
    for (let i = 0; i < actions.length; i++) {
      const a = actions[i] as Action;
      found[i] = records.get(a.collection, a.entityId);
    }

    for (let i = 0; i < actions.length; i++) {
      const a = actions[i] as Action;
      if (anyPending && pendingStore.get(a.id) !== undefined) {
        this.#confirmOne(a.id, a.seq ?? 0);
        anyPending = pendingStore.size > 0;
        created = true; // its record may be new
        continue;
      }
      if (!seen.add(a.clientId, a.clientSeq)) {
        duplicates++;
        continue;
      }
      if (a.collection !== lastCollection) {
        lastCollection = a.collection;
        policy = this.#policies.for(a.collection);
      }
      let rec = found[i] ?? (created ? records.get(a.collection, a.entityId) : undefined);
      if (rec === undefined) {
        records.put((rec = emptyRecord(a.collection, a.entityId)));
        created = true;
      }
      if (policy.kind === 'custom') {
        // Custom merges decide for themselves: no last-writer-wins conflicts are claimed for them.
        applyCustom(rec, a, policy.merge);
      } else if (anyPending) {
        const pending = pendingStore.forEntity(a.collection, a.entityId);
        if (pending !== undefined) this.#covered = this.#reportAgainstPending(a, pending, rec);
        applyLww(rec, a, sink);
        this.#covered = null;
      } else {
        applyLww(rec, a, sink);
      }
      const view = anyPending ? undefined : viewRecord(rec);
      const at = rec.mark - base;
      if (at >= 0 && at < count && touched[at] === rec) {
        views[at] = view; // touched again: the view taken before is stale
      } else {
        rec.mark = base + count;
        touched[count] = rec;
        views[count++] = view;
      }
    }
    records.changed?.(touched);
    found.fill(undefined, 0, actions.length); // hold no record past the call
    const changed: EntityState[] = [];
    const overlay = pendingStore.size > 0;
    for (let i = 0; i < count; i++) {
      let view = views[i];
      if (view === undefined) {
        const rec = touched[i] as EntityRec;
        view = overlay ? this.#materialize(rec.collection, rec.id) : viewRecord(rec);
      }
      // Remote actions only ever make an entity appear; one still unseen by the app is left out.
      if (view !== null) changed.push(view);
    }
    return { changed, conflicts: this.#takeConflicts(), duplicates };
  }

  /** Adds local actions, not yet acknowledged, on top of confirmed state. */
  addPending(actions: readonly Action[]): ApplyResult {
    const changed: Changed = new Map();
    const conflicts: ConflictRecord[] = [];
    let duplicates = 0;
    for (const a of actions) {
      if (this.#pending.get(a.id) !== undefined || this.#seen.has(a.clientId, a.clientSeq)) {
        duplicates++;
        continue;
      }
      this.#pending.add(a);
      markChanged(changed, a.collection, a.entityId);
      // A local write onto an entity already deleted elsewhere is lost to the delete: say so.
      const tombstone = this.#records.get(a.collection, a.entityId)?.deleted;
      if (tombstone != null && a.op !== 'delete' && this.#policies.for(a.collection).kind !== 'custom') {
        conflicts.push(
          this.#record(a, null, sideOf(tombstone, null, true), sideOfAction(a, null), ConflictResolution.DeleteWins),
        );
      }
    }
    return { changed: this.#views(changed), conflicts, duplicates };
  }

  /**
   * Moves acknowledged pending actions into confirmed state. The materialized
   * state cannot change (same actions, other side of the ⊕), so nothing is reported.
   */
  confirm(acks: readonly Acknowledgement[]): ApplyResult {
    const pending = this.#pending;
    const removed = pending.removeMany?.(acks);
    if (removed !== undefined && this.#records.prefetch !== undefined) {
      this.#records.prefetch([...removed.values()].map((a): EntityKey => [a.collection, a.entityId]));
    }
    // One write-back per record, however many of its actions were acknowledged together.
    const folded = new Set<EntityRec>();
    const taken: [Action, number][] = [];
    for (const ack of acks) {
      const a = removed === undefined ? pending.remove(ack.id, { seq: ack.seq }) : removed.get(ack.id);
      if (a !== undefined) taken.push([a, ack.seq]);
    }
    // Folded in clientSeq order whatever the order of the acks: a seen set that
    // keeps only a floor per client (the daemon's) would otherwise take an
    // earlier action, confirmed after a later one, for one seen before.
    // (Acks nearly always come in order: the sort then only checks it.)
    taken.sort(([x], [y]) => x.clientSeq - y.clientSeq);
    for (const [a, seq] of taken) {
      const rec = this.#foldConfirmed(a, seq);
      if (rec !== undefined) folded.add(rec);
    }
    if (folded.size > 0) this.#records.changed?.([...folded]);
    return { changed: [], conflicts: [], duplicates: 0 };
  }

  /** Drops rejected pending actions; their entities are re-materialized without them. */
  reject(rejections: readonly Rejection[]): ApplyResult {
    const changed: Changed = new Map();
    const conflicts: ConflictRecord[] = [];
    const wasVisible = new Set<string>();
    for (const r of rejections) {
      const before = this.#pending.get(r.id);
      if (before !== undefined && this.#materialize(before.collection, before.entityId) !== null) {
        wasVisible.add(entityKey(before.collection, before.entityId));
      }
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
    return { changed: this.#views(changed, wasVisible), conflicts, duplicates: 0 };
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
        const key = entityKey(c, id);
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
    const rec = this.#foldConfirmed(this.#pending.remove(id, { seq }), seq);
    if (rec !== undefined) this.#records.changed?.([rec]);
  }

  /** Folds an action just taken out of the pending set into its confirmed record; the record, unless seen before. */
  #foldConfirmed(a: Action | undefined, seq: number): EntityRec | undefined {
    if (a === undefined || !this.#seen.add(a.clientId, a.clientSeq)) return undefined;
    const confirmed: Action = seq > 0 ? { ...a, seq } : a;
    let rec = this.#records.get(a.collection, a.entityId);
    if (rec === undefined) this.#records.put((rec = emptyRecord(a.collection, a.entityId)));
    // The local user saw what they overwrote: no clash reporting for their own writes.
    applyAction(rec, confirmed, this.#policies.for(a.collection));
    return rec;
  }

  #gone(collection: string, id: string): EntityState {
    const rec = this.#records.get(collection, id);
    return { collection, id, fields: {}, deleted: true, version: rec?.version ?? 0, hlc: rec?.hlc ?? 0 } as EntityState;
  }

  /** `lists`: the pending actions of a batch of entities, read together (`PendingStore.forEntities`). */
  #materialize(collection: string, id: string, lists?: ReadonlyMap<string, readonly Action[]>): EntityState | null {
    const rec = this.#records.get(collection, id);
    const pending =
      lists === undefined ? this.#pending.forEntity(collection, id) : lists.get(entityKey(collection, id));
    if (pending === undefined) return rec === undefined ? null : viewRecord(rec);
    const overlay = rec === undefined ? emptyRecord(collection, id) : cloneRecord(rec);
    const policy = this.#policies.for(collection);
    for (const p of pending) applyAction(overlay, p, policy);
    return viewRecord(overlay);
  }

  /** Views of changed entities; one that vanished is shown as gone only if the app could see it. */
  #views(changed: Changed, wasVisible?: ReadonlySet<string>): EntityState[] {
    const out: EntityState[] = [];
    let lists: ReadonlyMap<string, readonly Action[]> | undefined;
    const records = this.#records;
    const pending = this.#pending;
    if (records.prefetch !== undefined || pending.forEntities !== undefined) {
      const keys: EntityKey[] = [];
      for (const [collection, ids] of changed) for (const id of ids) keys.push([collection, id]);
      records.prefetch?.(keys);
      // Nothing pending: every list is empty, no need to ask.
      lists = pending.size === 0 ? new Map() : pending.forEntities?.(keys);
    }
    for (const [collection, ids] of changed) {
      for (const id of ids) {
        const view = this.#materialize(collection, id, lists);
        if (view !== null) out.push(view);
        else if (wasVisible?.has(entityKey(collection, id)) === true) out.push(this.#gone(collection, id));
      }
    }
    return out;
  }

  /**
   * A remote action meets unacknowledged local ones on the same entity: one
   * record per field (or per entity for deletes), judged against what the app
   * was shown (confirmed ⊕ pending). Returns what it covered, so the
   * confirmed-level report does not say it again.
   */
  #reportAgainstPending(remote: Action, pending: readonly Action[], rec: EntityRec): Set<string> | 'entity' | null {
    // A confirmed tombstone speaks for the entity (applyLww reports against it).
    if (rec.deleted !== null) return null;
    const latestOf = (list: readonly Action[]) =>
      list.reduce<Action | undefined>((m, p) => (m === undefined || compareStamps(p, m) > 0 ? p : m), undefined);
    if (remote.op === 'delete') {
      const latest = latestOf(pending.filter((p) => p.op !== 'delete'));
      if (latest === undefined) return null;
      this.#conflicts.push(
        this.#record(
          remote,
          null,
          sideOfAction(remote, null),
          sideOfAction(latest, null),
          ConflictResolution.DeleteWins,
        ),
      );
      return 'entity';
    }
    const localDelete = pending.find((p) => p.op === 'delete');
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
      return 'entity';
    }
    const fields = remote.fields;
    if (fields === undefined) return null;
    const covered = new Set<string>();
    for (const field of Object.keys(fields)) {
      const mine = latestOf(pending.filter((p) => p.fields !== undefined && Object.hasOwn(p.fields, field)));
      if (mine === undefined) continue;
      covered.add(field);
      // What the app shows for this field: the later of the confirmed cell and the pending write.
      const cell = rec.fields[field];
      const shownIsCell = cell !== undefined && compareStamps(cell, mine) > 0;
      const shownValue = shownIsCell ? cell.value : (mine.fields?.[field] ?? null);
      const incoming = fields[field] ?? null;
      if (sameJson(shownValue, incoming)) continue;
      const shown: ConflictSide = shownIsCell ? sideOf(cell, field) : sideOfAction(mine, field);
      const remoteWins = compareStamps(remote, shownIsCell ? cell : mine) > 0;
      this.#conflicts.push(
        this.#record(
          remote,
          field,
          remoteWins ? sideOfAction(remote, field) : shown,
          remoteWins ? shown : sideOfAction(remote, field),
          ConflictResolution.LastWriterWins,
        ),
      );
    }
    return covered;
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
      // A delete discards the whole entity: the loser is named, no single field value is.
      loser: sideOf(clash.loser, clash.field),
      resolution: deleteWins ? ConflictResolution.DeleteWins : ConflictResolution.LastWriterWins,
    } as ConflictRecord;
  }

  #takeConflicts(): ConflictRecord[] {
    const out = this.#conflicts;
    this.#conflicts = [];
    return out;
  }
}
