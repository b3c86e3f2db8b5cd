/**
 * @ferry/contracts: the zod schemas of every message and config, the types
 * inferred from them, the error codes and the NATS subject builders. No I/O.
 */
export * from './ids.js';
export * from './parse.js';
export * from './action.js';
export * from './entity.js';
export * from './bus.js';
export * from './errors.js';
export * from './upstream.js';
export * from './conflict.js';
export * from './sync-event.js';
export * from './config.js';
export * from './subjects.js';
export * from './protocol-version.js';
export * from './daemon-http.js';
export * from './fast-check.js';
