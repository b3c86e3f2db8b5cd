// The push workload of bench:api and bench:api:threads, and how it is sent: 4
// clients, batches of 1,000. Each client creates notes and updates the ones it created a little
// earlier: half creates, half updates, three fields, ~300 bytes of JSON per action.
import { performance } from 'node:perf_hooks';
import { uuidv7 } from 'uuidv7';
import { apiSubjects } from '@ferry/contracts';

export const CLIENTS = 4;
export const BATCH = 1000;

/** One client's batches, each with its actions and its request text. */
export function makeClientBatches(k, batchCount) {
  const clientId = uuidv7();
  let clientSeq = 0;
  let hlc = Date.now() * 4096;
  let created = 0;
  const batches = [];
  for (let b = 0; b < batchCount; b++) {
    const actions = [];
    for (let i = 0; i < BATCH; i++) {
      const base = { id: uuidv7(), clientId, clientSeq: ++clientSeq, collection: 'notes', hlc: ++hlc };
      if (i % 2 === 0 || created === 0) {
        const n = created++;
        actions.push({
          ...base,
          entityId: `c${k}-n${n}`,
          op: 'create',
          fields: { title: `note ${n} of client ${k}`, body: 'x'.repeat(120), done: false },
        });
      } else {
        const n = created - 1 - ((i * 7) % Math.min(created, 500));
        actions.push({
          ...base,
          entityId: `c${k}-n${n}`,
          op: 'update',
          fields: { done: i % 4 === 1, title: `edited ${i}` },
        });
      }
    }
    batches.push({ clientId, actions, json: JSON.stringify({ clientId, actions }) });
  }
  return batches;
}

/**
 * Each client's batches as requests on its own connection, one at a time, the
 * clients concurrently; `check(reply, batch)` sees every reply. Resolves with
 * the wall time and each request's round trip, in ms.
 */
export async function pushAll(conns, perClient, subject, check) {
  const rtts = [];
  const t0 = performance.now();
  await Promise.all(
    perClient.map(async (batches, k) => {
      for (const b of batches) {
        const t = performance.now();
        const reply = await conns[k].request(subject, b.json, { timeout: 30_000 });
        rtts.push(performance.now() - t);
        check(reply, b);
      }
    }),
  );
  return { ms: performance.now() - t0, rtts };
}

/** Two batches on another tenant, so the JIT and the page cache are warm before anything is timed. */
export async function warmUp(conn) {
  for (const b of makeClientBatches(99, 2)) await conn.request(apiSubjects.push('warmup'), b.json, { timeout: 30_000 });
}
