/**
 * When the write-behind records are checkpointed on their own: at once (but
 * after the current push has replied) when too many records are dirty or too
 * many actions were folded since the last checkpoint, else a fixed time after
 * the first change. Never inside a push: `run` is only called from a timer.
 */

export interface CheckpointScheduleOptions {
  /** Dirty records that trigger a checkpoint: bounds memory. */
  readonly maxDirty: number;
  /** Actions folded since the last checkpoint that trigger one: bounds recovery work. */
  readonly maxActions: number;
  /** Longest a change waits: bounds how stale the table gets and how long recovery replays. */
  readonly intervalMs: number;
  /** Runs the checkpoint; it must call `reset()` once it committed. */
  readonly run: () => void;
}

export class CheckpointSchedule {
  readonly #options: CheckpointScheduleOptions;
  #timer: NodeJS.Timeout | null = null;
  #immediate: NodeJS.Immediate | null = null;
  #actions = 0;
  #stopped = false;

  constructor(options: CheckpointScheduleOptions) {
    this.#options = options;
  }

  /** A push folded `actions` actions and left `dirty` records dirty. */
  noteFolded(actions: number, dirty: number): void {
    if (this.#stopped || dirty === 0) return;
    this.#actions += actions;
    const { maxDirty, maxActions, intervalMs } = this.#options;
    if (dirty >= maxDirty || this.#actions >= maxActions) {
      // setImmediate runs after the microtasks that send this push's reply.
      this.#immediate ??= setImmediate(() => this.#fire());
      this.#immediate.unref();
    } else if (this.#timer === null) {
      this.#timer = setTimeout(() => this.#fire(), intervalMs);
      // A pending checkpoint alone must not keep the process alive; close() checkpoints anyway.
      this.#timer.unref();
    }
  }

  /** A checkpoint committed (whoever asked for it): count afresh. */
  reset(): void {
    if (this.#timer !== null) clearTimeout(this.#timer);
    if (this.#immediate !== null) clearImmediate(this.#immediate);
    this.#timer = null;
    this.#immediate = null;
    this.#actions = 0;
  }

  stop(): void {
    this.reset();
    this.#stopped = true;
  }

  #fire(): void {
    this.#timer = null;
    this.#immediate = null;
    this.#options.run();
  }
}
