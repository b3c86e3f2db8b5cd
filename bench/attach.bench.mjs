// bench:attach — the SQLite attach mode. (1) The app's own insert and update
// throughput (plain better-sqlite3, WAL) without Ferry, with Ferry attached
// (capture triggers installed), and attached with a real daemon tailing,
// uploading and cleaning the outbox meanwhile; in the same run, alternating,
// best of ROUNDS; the plain run is the ceiling. (2) The time from an app commit to the change
// leaving the device: to the daemon's WAL commit (its `capture` event) and to
// the push request arriving on the upstream NATS, at 100 commits/s; beside the
// NATS request/reply round trip measured in the same run.
// Reproduce: npm run bench:attach   (BENCH_SCALE=0.2 for a quick run)
import { rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import Database from 'better-sqlite3';
import { connect } from '@nats-io/transport-node';
import { uuidv7 } from 'uuidv7';
import { apiSubjects, busSubjects } from '@ferry/contracts';
import { attach } from '@ferry/sync-daemon';
import { FERRY_BIN, ProcessGroup, makeTempDir, startNatsServer } from '../libs/testing/dist/index.js';

const SCALE = Number(process.env.BENCH_SCALE ?? 1);
const ROUNDS = Number(process.env.BENCH_ROUNDS ?? 5);
const AUTOCOMMIT_N = Math.round(20_000 * SCALE);
const BATCHED_N = Math.round(200_000 * SCALE);
const BATCH = 100;
const LATENCY_N = Math.round(500 * Math.max(SCALE, 0.4));
const subjects = busSubjects('notes');
const enc = (v) => new TextEncoder().encode(JSON.stringify(v));
const dec = (d) => JSON.parse(new TextDecoder().decode(d));
const fmt = (n) => Math.round(n).toLocaleString('en-US');
const quantile = (xs, q) => [...xs].sort((a, b) => a - b)[Math.min(xs.length - 1, Math.floor(q * xs.length))];
const out = (line) => process.stdout.write(`${line}\n`);
const phase = (what) => process.stderr.write(`[bench:attach] ${what}\n`);
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

const procs = new ProcessGroup();
const servers = [];
const conns = [];
const dir = await makeTempDir('ferry-bench-attach-');

function openApp(path) {
  for (const f of [path, `${path}-wal`, `${path}-shm`]) rmSync(f, { force: true });
  const db = new Database(path);
  db.pragma('journal_mode = WAL');
  db.pragma('busy_timeout = 5000');
  db.exec('CREATE TABLE IF NOT EXISTS notes (id TEXT PRIMARY KEY, title TEXT, body TEXT, n INTEGER, updated REAL)');
  return db;
}

/** The app's workload: inserts then updates of one column pair, autocommit or in transactions of BATCH. */
function workload(db, n, batched, tag) {
  const insert = db.prepare('INSERT INTO notes (id, title, body, n, updated) VALUES (?, ?, ?, ?, ?)');
  const update = db.prepare('UPDATE notes SET title = ?, updated = ? WHERE id = ?');
  const body = 'a body of some length, as a note would have it';
  const run = (fn) => {
    const t = performance.now();
    if (batched) {
      for (let i = 0; i < n; i += BATCH)
        db.transaction(() => {
          for (let j = i; j < Math.min(n, i + BATCH); j++) fn(j);
        })();
    } else for (let i = 0; i < n; i++) fn(i);
    return n / ((performance.now() - t) / 1000);
  };
  const ins = run((i) => insert.run(`${tag}-${i}`, `title ${i}`, body, i, Date.now() / 1000));
  const upd = run((i) => update.run(`title ${i} edited`, Date.now() / 1000, `${tag}-${i}`));
  return { ins, upd };
}

async function waitPending(app, target, timeoutMs = 300_000) {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const s = dec((await app.request(subjects.status, enc({}), { timeout: 10_000 })).data);
    if (s.pending <= target || Date.now() > deadline) return s;
    await sleep(100);
  }
}

try {
  const upstream = await startNatsServer();
  servers.push(upstream);
  const bus = await startNatsServer();
  servers.push(bus);
  const api = procs.spawn({
    name: 'api',
    args: [FERRY_BIN, 'api', '--nats-url', upstream.url, '--data-dir', join(dir.path, 'api')],
    env: { FERRY_LOG_LEVEL: 'warn' },
  });
  await api.waitForLine(/api ready/, 20_000);
  const busConn = await connect({ servers: bus.url });
  const upConn = await connect({ servers: upstream.url });
  conns.push(busConn, upConn);

  // Ceiling for latency: a NATS request/reply round trip on this machine.
  const echo = await connect({ servers: upstream.url });
  conns.push(echo);
  echo.subscribe('bench.echo', { callback: (_e, m) => m.respond(m.data) });
  await echo.flush();
  const rtts = [];
  for (let i = 0; i < 500; i++) {
    const t = performance.now();
    await upConn.request('bench.echo', enc({ i }));
    rtts.push(performance.now() - t);
  }

  let daemonRun = 0;
  /**
   * A daemon attached to `path` (it installs the triggers itself at start), in a
   * tenant of its own so it does not download (and write back) earlier runs' rows.
   */
  async function startDaemon(path) {
    const name = `daemon-${++daemonRun}`;
    const configPath = join(dir.path, `${name}.json`);
    writeFileSync(
      configPath,
      JSON.stringify({
        app: 'notes',
        tenant: `bench${daemonRun}`,
        bus: { url: bus.url },
        upstream: { url: upstream.url },
        dataDir: join(dir.path, name),
        source: { kind: 'sqlite', path },
      }),
    );
    const daemon = procs.spawn({
      name,
      args: [FERRY_BIN, 'daemon', '--config', configPath],
      env: { FERRY_LOG_LEVEL: 'info' },
    });
    await daemon.waitForLine(/daemon ready/, 20_000);
    return { daemon, tenant: `bench${daemonRun}` };
  }

  phase(`latency: ${LATENCY_N} commits at 100/s`);
  const latPath = join(dir.path, 'latency.db');
  const app = openApp(latPath);
  const { daemon, tenant } = await startDaemon(latPath);
  const committedAt = new Map();
  const toCapture = [];
  const toPush = [];
  busConn.subscribe(subjects.events, {
    callback: (_e, m) => {
      const ev = dec(m.data);
      if (ev.type !== 'capture') return;
      const t = committedAt.get(ev.entityId);
      if (t !== undefined) toCapture.push(ev.at - t);
    },
  });
  upConn.subscribe(apiSubjects.push(tenant), {
    callback: (_e, m) => {
      const now = Date.now();
      for (const a of dec(m.data).actions) {
        const t = committedAt.get(a.entityId);
        if (t !== undefined) toPush.push(now - t);
      }
    },
  });
  await busConn.flush();
  await upConn.flush();
  const insert = app.prepare('INSERT INTO notes (id, title, body, n, updated) VALUES (?, ?, ?, ?, ?)');
  const start = Date.now();
  for (let i = 0; i < LATENCY_N; i++) {
    const wait = start + i * 10 - Date.now();
    if (wait > 0) await sleep(wait);
    insert.run(`lat-${i}`, 'latency', 'x', i, 0);
    committedAt.set(`lat-${i}`, Date.now());
  }
  const deadline = Date.now() + 20_000;
  while ((toCapture.length < LATENCY_N || toPush.length < LATENCY_N) && Date.now() < deadline) await sleep(20);
  app.close();
  await daemon.stop();

  phase(`throughput: ${ROUNDS} rounds of ${fmt(AUTOCOMMIT_N)} autocommit and ${fmt(BATCHED_N)} batched writes`);
  // plain: no Ferry (the ceiling); triggers: capture installed, no daemon running (the cost on the
  // app's own write path); live: a daemon tailing, uploading and cleaning the outbox meanwhile, on
  // the same cores as the app, with the API and NATS servers too.
  const best = { plain: {}, triggers: {}, live: {} };
  const keep = (slot, key, r) => {
    slot[key] = { ins: Math.max(slot[key]?.ins ?? 0, r.ins), upd: Math.max(slot[key]?.upd ?? 0, r.upd) };
  };
  let drain = null;
  for (let round = 0; round < ROUNDS; round++) {
    for (const batched of [false, true]) {
      const key = batched ? 'batched' : 'autocommit';
      const n = batched ? BATCHED_N : AUTOCOMMIT_N;
      let db = openApp(join(dir.path, `plain-${round}-${key}.db`));
      keep(best.plain, key, workload(db, n, batched, 'p'));
      db.close();
      db = openApp(join(dir.path, `triggers-${round}-${key}.db`));
      attach(db, { newId: uuidv7 });
      keep(best.triggers, key, workload(db, n, batched, 't'));
      db.close();
      const path = join(dir.path, `live-${round}-${key}.db`);
      db = openApp(path);
      const { daemon } = await startDaemon(path);
      const t0 = performance.now();
      keep(best.live, key, workload(db, n, batched, 'f'));
      if (round === 0 && batched) {
        // How fast the daemon takes the app's changes in and up: until nothing is pending.
        await waitPending(busConn, 0);
        drain = (2 * n) / ((performance.now() - t0) / 1000);
      }
      db.close();
      await daemon.stop(30_000);
    }
  }

  const ratio = (slot, k, op) => best.plain[k][op] / best[slot][k][op];
  const verdict = (r) => (r <= 2 ? 'met' : 'NOT met');
  out(
    `bench:attach  node ${process.version}  scale ${SCALE}  best of ${ROUNDS}  (app: better-sqlite3, WAL, synchronous=NORMAL; ${BATCH} rows per batched transaction)`,
  );
  for (const k of ['autocommit', 'batched']) {
    for (const op of ['ins', 'upd']) {
      const rt = ratio('triggers', k, op);
      const rl = ratio('live', k, op);
      out(
        `${k.padEnd(10)} ${op === 'ins' ? 'insert' : 'update'}  |  without Ferry ${fmt(best.plain[k][op])}/s (ceiling)  |  attached ${fmt(best.triggers[k][op])}/s = ${rt.toFixed(2)}x slower (target <= 2x: ${verdict(rt)})  |  attached + daemon syncing ${fmt(best.live[k][op])}/s = ${rl.toFixed(2)}x slower`,
      );
    }
  }
  if (drain !== null)
    out(`daemon drain (batched round, app writes -> nothing pending upstream)  |  ${fmt(drain)} changes/s`);
  out(
    `app commit -> daemon WAL commit (${toCapture.length}/${LATENCY_N})  |  p50 ${quantile(toCapture, 0.5)} ms  p99 ${quantile(toCapture, 0.99)} ms`,
  );
  out(
    `app commit -> push on upstream NATS (${toPush.length}/${LATENCY_N})  |  p50 ${quantile(toPush, 0.5)} ms  p99 ${quantile(toPush, 0.99)} ms  |  NATS round trip p50 ${quantile(rtts, 0.5).toFixed(2)} ms (ceiling)`,
  );
} finally {
  await procs.killAll();
  for (const c of conns) await c.close().catch(() => undefined);
  for (const s of servers) await s.stop().catch(() => undefined);
  await dir.remove();
}
