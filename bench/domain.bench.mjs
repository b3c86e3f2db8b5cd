// bench:domain — incremental apply throughput, sync cost vs history size, and
// the oracle's full replay, each beside a raw ceiling measured in the same run.
// Reproduce: npm run bench:domain   (BENCH_SCALE=0.1 for a quick run)
import { performance } from 'node:perf_hooks';
import { uuidv7 } from 'uuidv7';
import { Materializer, reconcile } from '@ferry/domain';

const SCALE = Number(process.env.BENCH_SCALE ?? 1);
const ACTIONS = Math.round(1_000_000 * SCALE);
const ENTITIES = Math.round(100_000 * SCALE);
const BATCH = 10_000;
const CLIENTS = [uuidv7(), uuidv7(), uuidv7(), uuidv7()];
const BASE_HLC = 1_763_000_000_000 * 4096;

function makeHistory(entities, updates, startHlc = BASE_HLC) {
  const out = [];
  const clientSeq = [0, 0, 0, 0];
  let hlc = startHlc;
  for (let e = 0; e < entities; e++) {
    const c = e % 4;
    out.push({
      id: uuidv7(),
      clientId: CLIENTS[c],
      clientSeq: ++clientSeq[c],
      collection: 'notes',
      entityId: `n${e}`,
      op: 'create',
      fields: { title: `t${e}`, body: '' },
      hlc: ++hlc,
    });
  }
  for (let i = 0; i < updates; i++) {
    const c = i % 4;
    const e = (i * 7919) % entities;
    out.push({
      id: uuidv7(),
      clientId: CLIENTS[c],
      clientSeq: ++clientSeq[c],
      collection: 'notes',
      entityId: `n${e}`,
      op: 'update',
      fields: { title: `t${i}`, done: i % 2 === 0 },
      hlc: ++hlc,
    });
  }
  return { actions: out, clientSeq, hlc };
}

function freshUpdates(count, entities, state, seed) {
  const out = [];
  for (let i = 0; i < count; i++) {
    const c = i % 4;
    const e = (seed * 104729 + i * 7919) % entities;
    out.push({
      id: uuidv7(),
      clientId: CLIENTS[c],
      clientSeq: ++state.clientSeq[c],
      collection: 'notes',
      entityId: `n${e}`,
      op: 'update',
      fields: { title: `x${i}` },
      hlc: ++state.hlc,
    });
  }
  return out;
}

function applyInBatches(m, actions) {
  for (let i = 0; i < actions.length; i += BATCH) m.applyRemote(actions.slice(i, i + BATCH));
}

/** The least work any materializer must do: one map upsert per action. */
function rawCeiling(actions) {
  const map = new Map();
  const t0 = performance.now();
  for (const a of actions) {
    const cur = map.get(a.entityId);
    if (cur === undefined) map.set(a.entityId, { ...a.fields });
    else Object.assign(cur, a.fields);
  }
  return performance.now() - t0;
}

const median = (xs) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];
const fmt = (n) => Math.round(n).toLocaleString('en-US');
globalThis.gc?.();

// (1) throughput: 1,000,000 updates over 100,000 entities. These cores are
// shared and their speed drifts within a minute: the figure is the median of
// PASSES passes, each on fresh actions with its own ceiling; all are printed.
const PASSES = Number(process.env.BENCH_PASSES ?? 3);
// warm-up on a throwaway instance so the JIT has seen the hot path: the
// updates timed below, not only the creates of the setup
{
  const w = new Materializer();
  applyInBatches(w, makeHistory(2_000, 20_000).actions);
}
async function throughputPass() {
  const setup = makeHistory(ENTITIES, 0);
  const updates = makeHistory(ENTITIES, ACTIONS).actions.slice(ENTITIES);
  const m = new Materializer();
  applyInBatches(m, setup.actions);
  globalThis.gc?.();
  // That full GC leaves its sweeping to helper threads: let it finish rather than
  // compete with the timed loop for a core (the raw ceiling, timed later, never meets it).
  await new Promise((resolve) => setTimeout(resolve, 500));
  const t1 = performance.now();
  applyInBatches(m, updates);
  const applyMs = performance.now() - t1;
  // On a fresh copy: the timed apply hashed every id string of `updates` on first
  // use (V8 caches a string's hash in it), which the ceiling must pay too.
  const rawInput = makeHistory(ENTITIES, ACTIONS).actions;
  const rawMs = rawCeiling(rawInput) * (updates.length / rawInput.length);
  return { rate: (updates.length / applyMs) * 1000, rawRate: (updates.length / rawMs) * 1000 };
}
const passes = [];
for (let p = 0; p < PASSES; p++) passes.push(await throughputPass());
globalThis.gc?.();
const rate = median(passes.map((p) => p.rate));
const rawRate = median(passes.map((p) => p.rawRate));
const ratio = median(passes.map((p) => p.rate / p.rawRate));

// (2) cost of a sync vs history: 1,000 new actions on 1,000,000 vs on 1,000.
// A minor GC before each timed sample keeps collector pauses of the setup out of a ~1 ms window.
const minorGc = () => {
  try {
    globalThis.gc?.({ type: 'minor' });
  } catch {
    globalThis.gc?.();
  }
};
function syncState(historyActions, entities) {
  const h = makeHistory(entities, historyActions - entities);
  const m = new Materializer();
  applyInBatches(m, h.actions);
  const raw = new Map();
  for (const a of h.actions) raw.set(a.entityId, { ...a.fields });
  return {
    m,
    raw,
    entities,
    state: { clientSeq: h.clientSeq, hlc: h.hlc },
    history: h.actions,
    samples: [],
    rawSamples: [],
  };
}
// The three histories are sampled in turn, so a change in the machine's speed
// during the run (these cores are shared) falls on all three alike.
function syncCosts(setups, repeats) {
  for (let r = 0; r < repeats; r++) {
    for (const s of setups) {
      const fresh = freshUpdates(1_000, s.entities, s.state, r);
      minorGc();
      let t = performance.now();
      s.m.applyRemote(fresh);
      s.samples.push(performance.now() - t);
      t = performance.now();
      for (const a of fresh) Object.assign(s.raw.get(a.entityId), a.fields);
      s.rawSamples.push(performance.now() - t);
    }
  }
  return setups.map((s) => ({
    ms: median(s.samples.slice(5)),
    rawMs: median(s.rawSamples.slice(5)),
    history: s.history,
  }));
}
// small: 1,000 actions on 1,000 entities. deep: the same 1,000 entities under
// 1,000x the history, which isolates the cost of history itself. big: the
// history spread over 100,000 entities, so the working set outgrows the CPU caches too.
const [small, deep, big] = syncCosts(
  [syncState(1_000, 1_000), syncState(ACTIONS, 1_000), syncState(ACTIONS, ENTITIES)],
  105,
);

// (3) the oracle replays the whole 1,000,000-action history
globalThis.gc?.();
const t3 = performance.now();
const oracleState = reconcile([], big.history);
const oracleMs = performance.now() - t3;

const r2a = deep.ms / small.ms;
const r2b = big.ms / small.ms;
const rows = [
  [
    '(1) incremental apply, 1M updates / 100k entities',
    `${fmt(rate)} actions/s`,
    `raw Map upsert ceiling ${fmt(rawRate)} actions/s`,
    `ratio ${ratio.toFixed(3)}`,
    `target >= 1,000,000 actions/s: ${rate >= 1e6 ? 'met' : 'NOT met'}`,
    `median of ${passes.length} passes: ${passes.map((p) => `${fmt(p.rate)} (ceiling ${fmt(p.rawRate)})`).join(', ')}`,
  ],
  [
    '(2a) 1,000 new actions, history 1M vs 1k, same 1k entities',
    `${deep.ms.toFixed(3)} ms vs ${small.ms.toFixed(3)} ms`,
    `ratio ${r2a.toFixed(2)}`,
    `raw Map ratio ${(deep.rawMs / small.rawMs).toFixed(2)}`,
    `target <= 1.5: ${r2a <= 1.5 ? 'met' : 'NOT met'}`,
  ],
  [
    '(2b) 1,000 new actions, history 1M over 100k entities vs 1k',
    `${big.ms.toFixed(3)} ms vs ${small.ms.toFixed(3)} ms`,
    `ratio ${r2b.toFixed(2)}`,
    `raw Map ratio ${(big.rawMs / small.rawMs).toFixed(2)} (cache effect of a 100x larger working set)`,
    `target <= 1.5: ${r2b <= 1.5 ? 'met' : 'NOT met'}`,
  ],
  [
    '(3) oracle full replay of the 1M history',
    `${fmt(oracleMs)} ms (${oracleState.size} entities)`,
    `incremental sync of 1,000 on it ${big.ms.toFixed(3)} ms`,
    `oracle/sync ${fmt(oracleMs / big.ms)}x`,
    '',
  ],
];
process.stdout.write(`bench:domain  node ${process.version}  scale ${SCALE}\n`);
for (const r of rows) process.stdout.write(`${r.filter(Boolean).join('  |  ')}\n`);
