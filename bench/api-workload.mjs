// The push workload of bench:api and bench:api:threads: 4 clients, batches of
// 1,000. Each client creates notes and updates the ones it created a little
// earlier: half creates, half updates, three fields, ~300 bytes of JSON per action.
import { uuidv7 } from 'uuidv7';

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
