/**
 * @ferry/sync-daemon: the sync sidecar. `SyncEngine` runs the whole pipeline
 * in-process with injected connections (embedding); `ferry daemon` runs it as
 * a process (see ./cli). The parts are exported for tests and embedders.
 */
export { SyncEngine, type SyncEngineOptions } from './engine/sync-engine.js';
export { WalStore, type WalStoreOptions, type AppendResult, type DeadLetter } from './wal/wal-store.js';
export { Reconciler, type Reconciled, type ReconcilerOptions } from './reconcile/reconciler.js';
export { BusCapture, type BusCaptureOptions } from './capture/bus-capture.js';
export { validateChange, DEFAULT_CHANGE_LIMITS, type ChangeLimits } from './capture/validate-change.js';
export { Uploader, type UploaderOptions } from './upload/uploader.js';
export { Downloader, type DownloaderOptions } from './download/downloader.js';
export { BusPublisher, type BusPublisherOptions } from './publish/bus-publisher.js';
export { loadDaemonConfig } from './config/load-config.js';
export { SqliteSource, type SqliteSourceOptions } from './source/sqlite-source.js';
export {
  attach,
  detach,
  installCapture,
  readAttachment,
  type Attachment,
  type AttachReport,
  type DetachReport,
} from './source/sqlite-attach.js';
export { inspectSchema, type TableSpec, type TableProblem, type Inspection } from './source/sqlite-schema.js';
export { encodeEntityId, decodeEntityId, toJsonValue, toBindValue } from './source/sqlite-values.js';
export { DaemonHttpServer, type DaemonHttpOptions, type ObservedEngine } from './http/http-server.js';
export { SyncMetrics, METRIC_NAMES } from './http/metrics.js';
export { StatusView } from './http/status-view.js';
