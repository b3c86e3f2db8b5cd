/**
 * Prometheus metrics of one daemon (prom-client, on a registry of its own so
 * several engines in one process never share series). Counters move on sync
 * events; gauges are read from the status view at scrape time. Every series
 * listed in METRIC_NAMES exists from the first scrape on (labelled counters
 * start at 0), so dashboards and alerts never see a series appear late.
 */
import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from 'prom-client';
import { ConflictResolution, type SyncEvent } from '@ferry/contracts';
import type { StatusView } from './status-view.js';

/** Every Ferry series (docs and the scrape test iterate this), with its Prometheus type. */
export const METRIC_NAMES = {
  ferry_online: 'gauge',
  ferry_pending_actions: 'gauge',
  ferry_cursor_seq: 'gauge',
  ferry_head_seq: 'gauge',
  ferry_lag_seq: 'gauge',
  ferry_lag_seconds: 'gauge',
  ferry_last_sync_timestamp_seconds: 'gauge',
  ferry_captured_actions_total: 'counter',
  ferry_pushed_actions_total: 'counter',
  ferry_push_failures_total: 'counter',
  ferry_push_latency_seconds: 'histogram',
  ferry_pulled_actions_total: 'counter',
  ferry_applied_actions_total: 'counter',
  ferry_conflicts_total: 'counter',
  ferry_rejections_total: 'counter',
  ferry_dead_letters_total: 'counter',
  ferry_errors_total: 'counter',
} as const;

const PUSH_STATUSES = ['accepted', 'duplicate', 'rejected'] as const;

export interface SyncMetricsOptions {
  readonly view: StatusView;
  /** Also export Node's process metrics (memory, CPU, event-loop lag). Default true. */
  readonly processMetrics?: boolean;
}

export class SyncMetrics {
  readonly registry = new Registry();
  readonly #captured: Counter;
  readonly #pushed: Counter<'status'>;
  readonly #pushFailures: Counter;
  readonly #pushLatency: Histogram;
  readonly #pulled: Counter;
  readonly #applied: Counter;
  readonly #conflicts: Counter<'resolution'>;
  readonly #rejections: Counter;
  readonly #deadLetters: Counter;
  readonly #errors: Counter;

  constructor(options: SyncMetricsOptions) {
    const registers = [this.registry];
    const { view } = options;
    // One status read per scrape, shared by every gauge's collect().
    let sampled: { at: number; status: ReturnType<StatusView['current']> } | null = null;
    const status = () => {
      const now = Date.now();
      if (sampled === null || now - sampled.at > 50) sampled = { at: now, status: view.current() };
      return sampled.status;
    };
    const gauge = (name: keyof typeof METRIC_NAMES, help: string, read: () => number) =>
      new Gauge({
        name,
        help,
        registers,
        collect() {
          this.set(read());
        },
      });
    gauge('ferry_online', '1 while the daemon reaches the sync API, else 0.', () => (status().online ? 1 : 0));
    gauge('ferry_pending_actions', 'Local actions not yet acknowledged by the server.', () => status().pending);
    gauge('ferry_cursor_seq', 'Server seq up to which this device has applied everything.', () => status().cursor);
    gauge('ferry_head_seq', 'Newest server seq this device knows of.', () => status().head);
    gauge('ferry_lag_seq', 'Server actions known but not applied yet (head - cursor).', () => status().lag);
    gauge(
      'ferry_lag_seconds',
      'Seconds since this device first saw it was behind the head; 0 when caught up.',
      () => status().lagSeconds,
    );
    gauge(
      'ferry_last_sync_timestamp_seconds',
      'Unix time of the last completed push or pull; 0 before the first.',
      () => (status().lastSyncAt ?? 0) / 1000,
    );
    this.#captured = new Counter({
      name: 'ferry_captured_actions_total',
      help: 'Changes captured into the WAL.',
      registers,
    });
    this.#pushed = new Counter({
      name: 'ferry_pushed_actions_total',
      help: 'Actions the server acknowledged, by result.',
      labelNames: ['status'],
      registers,
    });
    for (const s of PUSH_STATUSES) this.#pushed.inc({ status: s }, 0);
    this.#pushFailures = new Counter({
      name: 'ferry_push_failures_total',
      help: 'Push requests that failed (retried when transient).',
      registers,
    });
    this.#pushLatency = new Histogram({
      name: 'ferry_push_latency_seconds',
      help: 'Round trip of an acknowledged push batch.',
      buckets: [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10],
      registers,
    });
    this.#pulled = new Counter({
      name: 'ferry_pulled_actions_total',
      help: 'Actions pulled from the server.',
      registers,
    });
    this.#applied = new Counter({
      name: 'ferry_applied_actions_total',
      help: 'Pulled actions applied to local state.',
      registers,
    });
    this.#conflicts = new Counter({
      name: 'ferry_conflicts_total',
      help: 'Conflict records, by resolution.',
      labelNames: ['resolution'],
      registers,
    });
    for (const r of Object.values(ConflictResolution)) this.#conflicts.inc({ resolution: r }, 0);
    this.#rejections = new Counter({
      name: 'ferry_rejections_total',
      help: 'Local actions the server rejected.',
      registers,
    });
    this.#deadLetters = new Counter({
      name: 'ferry_dead_letters_total',
      help: 'Captured inputs that could not become actions.',
      registers,
    });
    this.#errors = new Counter({ name: 'ferry_errors_total', help: 'Error sync events.', registers });
    if (options.processMetrics ?? true) collectDefaultMetrics({ register: this.registry });
  }

  /** Counts one sync event (the engine's listener). */
  observe(event: SyncEvent): void {
    switch (event.type) {
      case 'capture':
        this.#captured.inc();
        break;
      case 'push-acked':
        this.#pushed.inc({ status: 'accepted' }, event.accepted);
        this.#pushed.inc({ status: 'duplicate' }, event.duplicate);
        this.#pushed.inc({ status: 'rejected' }, event.rejected);
        this.#pushLatency.observe(event.latencyMs / 1000);
        break;
      case 'push-failed':
        this.#pushFailures.inc();
        break;
      case 'pull-received':
        this.#pulled.inc(event.count);
        break;
      case 'applied':
        this.#applied.inc(event.count);
        break;
      case 'conflict':
        this.#conflicts.inc({ resolution: event.conflict.resolution });
        break;
      case 'rejected':
        this.#rejections.inc();
        break;
      case 'dead-lettered':
        this.#deadLetters.inc();
        break;
      case 'error':
        this.#errors.inc();
        break;
      default:
        break;
    }
  }

  render(): Promise<string> {
    return this.registry.metrics();
  }

  get contentType(): string {
    return this.registry.contentType;
  }

  /** Stops the process-metrics timers' effect on this registry. */
  clear(): void {
    this.registry.clear();
  }
}
