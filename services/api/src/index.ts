/**
 * @ferry/api: the sync server (DESIGN §6). The app wiring, the store contract
 * with its SQLite implementation, and the request handlers, for embedders,
 * tests and benchmarks. The command line lives in `@ferry/api/cli`.
 */
export { ApiApp, STORE_FILE, type ApiAppOptions } from './service/api-app.js';
export { ApiService, type ApiServiceOptions } from './service/api-service.js';
export { SqliteStore, type SqliteStoreOptions } from './store/sqlite-store.js';
export type * from './store/store.js';
export { classifyClientSeq, type ClientSeqClass } from './store/push-rules.js';
export { resolveLimits, resolvePolicies } from './config/limits.js';
export { checkPushRequest, decodeJson, type Checked, type CheckedPush } from './push/validate-push.js';
export type { RawActions } from './push/raw-actions.js';
export { createPushHandler, type RequestHandler } from './push/push-handler.js';
export { createPullHandler } from './pull/pull-handler.js';
export { createSnapshotHandler } from './snapshot/snapshot-handler.js';
export { encodePageToken, decodePageToken } from './snapshot/page-token.js';
export { RetentionJob } from './retention/retention-job.js';
export { createLogger } from './observe/logger.js';
