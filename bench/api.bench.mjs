// bench:api — the API's push and pull throughput over NATS, each printed
// beside raw ceilings measured in the same run on the same machine:
//   push  4 clients × batches of 1,000 actions   vs  better-sqlite3 batched insert of the same rows
//                                                 vs  NATS request/reply of the same payloads (echo)
//   pull  pages of up to 5,000 actions           vs  better-sqlite3 range scan of the same rows
//                                                 vs  NATS request/reply of the same reply sizes (echo)
// The API runs as its own process (bin/ferry.js api), as in production; it and
// the echo responder get their own nats-server from the test launcher.
// Reproduce: npm run bench:api        (BENCH_SCALE=0.2 for a quick run)
import { performance } from 'node:perf_hooks';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import Database from 'better-sqlite3';
import { connect } from '@nats-io/transport-node';
import { apiSubjects } from '@ferry/contracts';
import { SqliteStore, checkPushRequest, resolveLimits } from '@ferry/api';
import { makeTempDir, ProcessGroup, startNatsServer } from '../libs/testing/dist/index.js';
import { BATCH, CLIENTS, makeClientBatches, pushAll, warmUp } from './api-workload.mjs';

const SCALE = Number(process.env.BENCH_SCALE ?? 1);
const BATCHES_PER_CLIENT = Math.max(2, Math.round(50 * SCALE));
const TENANT = 'bench';
const PULL_LIMIT = 5000;
const fmt = (n) => Math.round(n).toLocaleString('en-US');
const pct = (a, b) => `${Math.round((a / b) * 100)}%`;

// ---------------------------------------------------------------- workload (api-workload.mjs)
const perClient = Array.from({ length: CLIENTS }, (_, k) => makeClientBatches(k, BATCHES_PER_CLIENT));
const totalActions = CLIENTS * BATCHES_PER_CLIENT * BATCH;
const avgBatchBytes = perClient.flat().reduce((n, b) => n + b.json.length, 0) / (CLIENTS * BATCHES_PER_CLIENT);

// ---------------------------------------------------------------- ceilings: SQLite
/** The same rows the API stores (action JSON with its seq), one transaction per 1,000, WAL + synchronous=FULL. */
function sqliteCeiling(dir) {
  const db = new Database(join(dir, 'ceiling.sqlite'));
  db.pragma('journal_mode = WAL');
  db.pragma('synchronous = FULL');
  db.exec(
    'CREATE TABLE log (tenant INTEGER NOT NULL, seq INTEGER NOT NULL, json TEXT NOT NULL, PRIMARY KEY (tenant, seq)) WITHOUT ROWID',
  );
  const insert = db.prepare('INSERT INTO log (tenant, seq, json) VALUES (?, ?, ?)');
  // Interleave the clients' batches as the server would see them; serialisation is outside the timing.
  const rows = [];
  let seq = 0;
  for (let b = 0; b < BATCHES_PER_CLIENT; b++) {
    for (let k = 0; k < CLIENTS; k++)
      rows.push(perClient[k][b].actions.map((a) => JSON.stringify({ ...a, seq: ++seq })));
  }
  const writeBatch = db.transaction((batch, first) => {
    for (let i = 0; i < batch.length; i++) insert.run(1, first + i, batch[i]);
  });
  let t0 = performance.now();
  let first = 1;
  for (const batch of rows) {
    writeBatch(batch, first);
    first += batch.length;
  }
  const insertMs = performance.now() - t0;
  const scan = db.prepare('SELECT seq, json FROM log WHERE tenant = 1 AND seq > ? ORDER BY seq LIMIT ?').raw();
  t0 = performance.now();
  let since = 0;
  let read = 0;
  for (;;) {
    let n = 0;
    for (const [s] of scan.iterate(since, PULL_LIMIT)) {
      since = s;
      n++;
    }
    read += n;
    if (n < PULL_LIMIT) break;
  }
  const scanMs = performance.now() - t0;
  db.close();
  return { insertRate: (seq / insertMs) * 1000, scanRate: (read / scanMs) * 1000 };
}

// ---------------------------------------------------------------- breakdown: the store alone
/**
 * The same batches through SqliteStore.push in-process (validation included, no NATS): where the push time goes.
 * One push at a time, each awaited until its commit and WAL sync on the store's writer thread (so, unlike the
 * API with 4 clients, nothing overlaps). Records are written behind by checkpoints, which start between pushes
 * (on a timer, or once enough records are dirty); so the loop yields to the event loop after each push as the
 * API does between requests, and the final checkpoint (in close) is timed too. The action text is passed on as
 * the API's push handler passes it (`raw`).
 */
async function storeAlone(dir) {
  const store = SqliteStore.open({ path: join(dir, 'store-alone.sqlite') });
  const limits = resolveLimits({});
  const bytes = perClient.map((batches) => batches.map((b) => Buffer.from(b.json)));
  let checkMs = 0;
  let storeMs = 0;
  for (let b = 0; b < BATCHES_PER_CLIENT; b++) {
    for (let k = 0; k < CLIENTS; k++) {
      let t = performance.now();
      const checked = checkPushRequest(bytes[k][b], limits, Date.now());
      checkMs += performance.now() - t;
      if (!checked.ok) throw checked.error;
      t = performance.now();
      await store.push('bench', {
        clientId: checked.value.clientId,
        actions: checked.value.actions,
        now: Date.now(),
        raw: checked.raw,
      });
      await new Promise((resolve) => setImmediate(resolve)); // a due checkpoint runs here
      storeMs += performance.now() - t;
    }
  }
  const t = performance.now();
  await store.close();
  storeMs += performance.now() - t;
  return {
    checkRate: (totalActions / checkMs) * 1000,
    storeRate: (totalActions / storeMs) * 1000,
    bothRate: (totalActions / (checkMs + storeMs)) * 1000,
  };
}

// ---------------------------------------------------------------- ceilings: NATS echo
// The pull echo answers with a real pull page (passed in a file), which the client parses as it parses the API's.
const ECHO_SCRIPT = `
import { readFileSync } from 'node:fs';
import { connect } from '@nats-io/transport-node';
const nc = await connect({ servers: process.env.BENCH_NATS_URL });
const pullReply = readFileSync(process.env.BENCH_PULL_PAGE);
nc.subscribe('bench.echo.push', { callback: (_e, m) => m.respond(m.data) });
nc.subscribe('bench.echo.pull', { callback: (_e, m) => m.respond(pullReply) });
await nc.flush();
console.log('echo ready');
`;

// ---------------------------------------------------------------- run
const procs = new ProcessGroup();
const nats = await startNatsServer();
const dir = await makeTempDir('ferry-bench-api-');
const conns = [];
try {
  console.log(
    `bench:api  node ${process.version}  nats-server ${nats.kind}  ${CLIENTS} clients × ${BATCHES_PER_CLIENT} batches × ${BATCH} actions = ${fmt(totalActions)} actions (${fmt(avgBatchBytes / 1024)} KiB per batch)`,
  );

  const ceiling = sqliteCeiling(dir.path);
  const alone = await storeAlone(dir.path);

  const api = procs.spawnFerry('api', ['--nats-url', nats.url, '--data-dir', join(dir.path, 'api')]);
  await api.waitForLine(/"msg":"api ready"/, 20_000);
  for (let k = 0; k < CLIENTS; k++) conns.push(await connect({ servers: nats.url }));

  await warmUp(conns[0]);

  // push through the API
  let accepted = 0;
  const { ms: pushMs } = await pushAll(conns, perClient, apiSubjects.push(TENANT), (reply, b) => {
    const body = reply.json();
    if (body.error) throw new Error(`push failed: ${JSON.stringify(body.error)}`);
    for (const r of body.results) if (r.status === 'accepted') accepted++;
    if (body.results.length !== b.actions.length) throw new Error('short reply');
  });
  if (accepted !== totalActions) throw new Error(`only ${accepted} of ${totalActions} accepted`);
  const pushRate = (totalActions / pushMs) * 1000;

  // pull everything back through the API
  let pulled = 0;
  let pages = 0;
  let pullBytes = 0;
  let since = 0;
  let samplePage = null;
  const tPull = performance.now();
  for (;;) {
    const reply = await conns[0].request(apiSubjects.pull(TENANT), JSON.stringify({ since, limit: PULL_LIMIT }), {
      timeout: 30_000,
    });
    pullBytes += reply.data.length;
    samplePage ??= reply.data;
    const body = reply.json();
    if (body.error) throw new Error(`pull failed: ${JSON.stringify(body.error)}`);
    pulled += body.actions.length;
    pages++;
    since = body.next;
    if (!body.more) break;
  }
  const pullMs = performance.now() - tPull;
  if (pulled !== totalActions) throw new Error(`pulled ${pulled} of ${totalActions}`);
  const pullRate = (pulled / pullMs) * 1000;
  const avgPage = pullBytes / pages;
  await api.stop();

  // NATS echo ceilings with the same payloads
  const pagePath = join(dir.path, 'pull-page.json');
  writeFileSync(pagePath, samplePage);
  const pageActions = JSON.parse(Buffer.from(samplePage).toString('utf8')).actions.length;
  const echo = procs.spawn({
    args: ['--input-type=module', '-e', ECHO_SCRIPT],
    env: { BENCH_NATS_URL: nats.url, BENCH_PULL_PAGE: pagePath },
    name: 'echo',
  });
  await echo.waitForLine(/echo ready/, 20_000);
  const { ms: echoPushMs } = await pushAll(conns, perClient, 'bench.echo.push', (reply, b) => {
    if (reply.data.length !== b.json.length) throw new Error('echo mismatch');
  });
  const echoPushRate = (totalActions / echoPushMs) * 1000;
  const tEcho = performance.now();
  for (let i = 0; i < pages; i++)
    (await conns[0].request('bench.echo.pull', '{"since":0,"limit":5000}', { timeout: 30_000 })).json();
  const echoPullMs = performance.now() - tEcho;
  const echoPullRate = ((pages * pageActions) / echoPullMs) * 1000;
  await echo.stop();

  console.log('');
  console.log('push (actions/s)');
  console.log(`  api push, 4 clients, batches of 1,000      ${fmt(pushRate).padStart(12)}`);
  console.log(
    `  ceiling: sqlite batched insert, same rows  ${fmt(ceiling.insertRate).padStart(12)}   api = ${pct(pushRate, ceiling.insertRate)} (target >= 50%)`,
  );
  console.log(
    `  ceiling: nats request/reply echo, same     ${fmt(echoPushRate).padStart(12)}   api = ${pct(pushRate, echoPushRate)}`,
  );
  console.log('  breakdown, in-process, no NATS:');
  console.log(`    request decode + validation (zod/fast)   ${fmt(alone.checkRate).padStart(12)}`);
  console.log(
    `    SqliteStore.push + record checkpoints    ${fmt(alone.storeRate).padStart(12)}   = ${pct(alone.storeRate, ceiling.insertRate)} of the insert ceiling`,
  );
  console.log(`    both                                      ${fmt(alone.bothRate).padStart(12)}`);
  console.log('pull (actions/s)');
  console.log(`  api pull, ${pages} pages of ~${fmt(avgPage / 1024)} KiB          ${fmt(pullRate).padStart(12)}`);
  console.log(
    `  ceiling: sqlite range scan, same rows      ${fmt(ceiling.scanRate).padStart(12)}   api = ${pct(pullRate, ceiling.scanRate)}`,
  );
  console.log(
    `  ceiling: nats request/reply echo, same     ${fmt(echoPullRate).padStart(12)}   api = ${pct(pullRate, echoPullRate)}`,
  );
} finally {
  await Promise.all(conns.map((c) => c.close()));
  await procs.killAll();
  await nats.stop();
  await dir.remove();
}
