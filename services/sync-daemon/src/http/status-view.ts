/**
 * The daemon's live picture for the HTTP side (`/status`, the status page,
 * `/metrics`): the engine's status plus lag in seconds, totals, and bounded
 * rings of recent events, conflicts and changed entities. Fed only by the
 * engine's public surface (onEvent, status) and the bus's StateBatches; it
 * never touches the WAL or the reconciler.
 *
 * Lag in seconds: 0 while the cursor has reached the newest server head this
 * daemon knows of; otherwise the time since it first saw that it was behind
 * (lag in seq went from 0 to > 0, observed at an event or a sample). It is
 * what the device knows: while offline the head cannot move, so read it
 * together with `online` and `lastSyncAt`.
 */
import type {
  ChangedEntity,
  DaemonStatus,
  DaemonTotals,
  EntityState,
  LoggedConflict,
  StatusReply,
  StatusSnapshot,
  SyncEvent,
} from '@ferry/contracts';

export interface StatusSource {
  status(): StatusReply;
  readonly clientId: string;
}

export interface StatusViewOptions {
  readonly app: string;
  readonly tenant: string;
  readonly engine: StatusSource;
  readonly now: () => number;
  /** The newest conflicts already in the daemon's log, so a restart does not hide them. */
  readonly seedConflicts?: readonly LoggedConflict[];
  readonly maxEvents?: number;
  readonly maxConflicts?: number;
  readonly maxChanges?: number;
}

/** Newest-first ring: unshift plus a length cap (the rings are small). */
function pushRing<T>(ring: T[], item: T, max: number): void {
  ring.unshift(item);
  if (ring.length > max) ring.length = max;
}

export class StatusView {
  readonly #o: StatusViewOptions;
  readonly #startedAt: number;
  readonly #events: SyncEvent[] = [];
  readonly #conflicts: LoggedConflict[];
  readonly #changes: ChangedEntity[] = [];
  readonly #totals: DaemonTotals = {
    captured: 0,
    pushed: 0,
    pulled: 0,
    applied: 0,
    conflicts: 0,
    rejected: 0,
    deadLettered: 0,
    errors: 0,
  };
  #behindSince: number | null = null;
  #lastPushLatencyMs: number | null = null;

  constructor(options: StatusViewOptions) {
    this.#o = options;
    this.#startedAt = options.now();
    this.#conflicts = [...(options.seedConflicts ?? [])].slice(0, this.#maxConflicts);
  }

  get #maxConflicts(): number {
    return this.#o.maxConflicts ?? 50;
  }

  /** Records one sync event (the engine's listener). */
  record(event: SyncEvent): void {
    pushRing(this.#events, event, this.#o.maxEvents ?? 200);
    const t = this.#totals;
    switch (event.type) {
      case 'capture':
        t.captured++;
        break;
      case 'push-acked':
        t.pushed += event.accepted + event.duplicate + event.rejected;
        this.#lastPushLatencyMs = event.latencyMs;
        break;
      case 'pull-received':
        t.pulled += event.count;
        break;
      case 'applied':
        t.applied += event.count;
        break;
      case 'conflict':
        t.conflicts++;
        pushRing(this.#conflicts, { at: event.at, conflict: event.conflict }, this.#maxConflicts);
        break;
      case 'rejected':
        t.rejected++;
        break;
      case 'dead-lettered':
        t.deadLettered++;
        break;
      case 'error':
        t.errors++;
        break;
      default:
        break;
    }
    // Events are where the head and cursor move: sample so the lag clock starts on time.
    if (event.type !== 'capture') this.current();
  }

  /** Records entities the daemon published on `ferry.<app>.state` (local and remote changes). */
  recordChanges(entities: readonly EntityState[]): ChangedEntity[] {
    const at = this.#o.now();
    const max = this.#o.maxChanges ?? 50;
    // A large batch (a bootstrap) keeps only its last entities: the ring shows recent ones.
    const recorded = entities.slice(-max).map((entity) => ({ at, entity }));
    for (const change of recorded) {
      const { collection, id } = change.entity;
      const i = this.#changes.findIndex((c) => c.entity.collection === collection && c.entity.id === id);
      if (i >= 0) this.#changes.splice(i, 1);
      pushRing(this.#changes, change, max);
    }
    return recorded;
  }

  /** The status now; also advances the lag clock. */
  current(): DaemonStatus {
    const s = this.#o.engine.status();
    const now = this.#o.now();
    if (s.lag === 0) this.#behindSince = null;
    else this.#behindSince ??= now;
    return {
      ...s,
      app: this.#o.app,
      tenant: this.#o.tenant,
      clientId: this.#o.engine.clientId,
      startedAt: this.#startedAt,
      now,
      head: s.cursor + s.lag,
      lagSeconds: this.#behindSince === null ? 0 : Math.max(0, now - this.#behindSince) / 1000,
      lastPushLatencyMs: this.#lastPushLatencyMs,
      totals: { ...this.#totals },
    };
  }

  snapshot(): StatusSnapshot {
    return {
      status: this.current(),
      events: [...this.#events],
      conflicts: [...this.#conflicts],
      changes: [...this.#changes],
    };
  }
}
