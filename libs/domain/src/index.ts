/**
 * @ferry/domain: the pure rules of sync. Hybrid logical clock, total order,
 * policies, the mergeable entity record, the replay oracle and the
 * incremental materializer. No I/O, no wall clock, no randomness.
 */
export * from './hlc.js';
export * from './order.js';
export * from './client-seq-set.js';
export * from './policy.js';
export * from './entity-record.js';
export * from './record-codec.js';
export * from './custom-merge.js';
export * from './apply-action.js';
export * from './oracle.js';
export * from './stores.js';
export * from './materializer.js';
export * from './invariants.js';
