// bench:sync — end to end through real processes (three nats-servers, the API
// process, daemon processes): throughput from device A's app to device B's
// state events, propagation latency at 200 changes/s, and a daemon's RSS with
// 1,000,000 pending actions; beside raw NATS and SQLite ceilings measured in
// the same run. Reproduce: npm run bench:sync   (BENCH_SCALE=0.1 for a quick run)
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import Database from 'better-sqlite3';
import { connect } from '@nats-io/transport-node';
import { busSubjects } from '@ferry/contracts';
import { FERRY_BIN, ProcessGroup, makeTempDir, startNatsServer } from '../libs/testing/dist/index.js';
import { startDevice } from './sync-devices.mjs';

const SCALE = Number(process.env.BENCH_SCALE ?? 1);
const THROUGHPUT_N = Math.round(100_000 * SCALE);
const PENDING_N = Math.round(1_000_000 * SCALE);
const LATENCY_SECONDS = 10;
const subjects = busSubjects('notes');
const enc = (v) => new TextEncoder().encode(JSON.stringify(v));
const dec = (d) => JSON.parse(new TextDecoder().decode(d));
const fmt = (n) => Math.round(n).toLocaleString('en-US');
const quantile = (xs, q) => [...xs].sort((a, b) => a - b)[Math.min(xs.length - 1, Math.floor(q * xs.length))];
const out = (line) => process.stdout.write(`${line}\n`);
const phase = (what) => process.stderr.write(`[bench:sync] ${what}\n`);

const procs = new ProcessGroup();
const servers = [];
const conns = [];
const dir = await makeTempDir('ferry-bench-sync-');
try {
  const upstream = await startNatsServer();
  servers.push(upstream);

  // Raw ceiling 1: NATS request/reply of a change-sized payload through an echo responder.
  const payload = enc({
    collection: 'notes',
    id: 'n12345',
    op: 'update',
    fields: { title: 'a title of some length', n: 1 },
  });
  const echoConn = await connect({ servers: upstream.url });
  const clientConn = await connect({ servers: upstream.url });
  conns.push(echoConn, clientConn);
  echoConn.subscribe('bench.echo', { callback: (_e, m) => m.respond(m.data) });
  await echoConn.flush();
  let t = performance.now();
  const ECHO_N = 20_000;
  for (let i = 0; i < ECHO_N; i += 100)
    await Promise.all(Array.from({ length: 100 }, () => clientConn.request('bench.echo', payload)));
  const natsCeiling = ECHO_N / ((performance.now() - t) / 1000);

  // Raw ceiling 2: better-sqlite3 batched inserts of change-sized rows (WAL, synchronous=FULL).
  const db = new Database(join(dir.path, 'ceiling.db'));
  db.pragma('journal_mode = WAL');
  db.pragma('synchronous = FULL');
  db.exec('CREATE TABLE t (seq INTEGER PRIMARY KEY, id TEXT, body TEXT)');
  const insert = db.prepare('INSERT INTO t (id, body) VALUES (?, ?)');
  const body = new TextDecoder().decode(payload);
  const SQL_N = 200_000;
  t = performance.now();
  for (let i = 0; i < SQL_N; i += 1000)
    db.transaction(() => {
      for (let j = 0; j < 1000; j++) insert.run(`id${i + j}`, body);
    })();
  const sqliteCeiling = SQL_N / ((performance.now() - t) / 1000);
  db.close();

  phase('ceilings measured; starting the API and two devices');
  const api = procs.spawn({
    name: 'api',
    args: [FERRY_BIN, 'api', '--nats-url', upstream.url, '--data-dir', join(dir.path, 'api')],
  });
  await api.waitForLine(/api ready/, 20_000);

  const device = (name, upstreamUrl) => startDevice({ procs, servers, conns, dir: dir.path, name, upstreamUrl });
  const a = await device('device-a', upstream.url);
  const b = await device('device-b', upstream.url);

  phase('devices up; throughput');
  // Throughput: N creates on A's bus until B's app has state for all of them.
  const seen = new Set();
  let done;
  const allSeen = new Promise((r) => (done = r));
  let latencies = null;
  b.app.subscribe(subjects.state, {
    callback: (_e, m) => {
      const now = Date.now();
      for (const e of dec(m.data).entities) {
        if (latencies !== null && typeof e.fields.t === 'number') latencies.push(now - e.fields.t);
        else if (e.id.startsWith('tp')) {
          seen.add(e.id);
          if (seen.size === THROUGHPUT_N) done();
        }
      }
    },
  });
  await b.app.flush();
  t = performance.now();
  for (let i = 0; i < THROUGHPUT_N; i++) {
    a.app.publish(
      subjects.changes,
      enc({ collection: 'notes', id: `tp${i}`, op: 'create', fields: { title: `note ${i}`, n: i } }),
    );
    if (i % 1000 === 999) await a.app.flush();
  }
  // Bounded: a stalled pipeline must end the bench with what it saw, not hang it.
  const THROUGHPUT_DEADLINE_MS = Math.max(60_000, THROUGHPUT_N * 3);
  let deadline;
  await Promise.race([
    allSeen,
    new Promise((_, reject) => {
      deadline = setTimeout(
        () =>
          reject(
            new Error(
              `throughput: B's app saw ${seen.size} of ${THROUGHPUT_N} changes within ${THROUGHPUT_DEADLINE_MS / 1000} s\n` +
                `device-a:\n${a.daemon.tail(20)}\ndevice-b:\n${b.daemon.tail(20)}`,
            ),
          ),
        THROUGHPUT_DEADLINE_MS,
      );
    }),
  ]);
  clearTimeout(deadline);
  const e2e = THROUGHPUT_N / ((performance.now() - t) / 1000);

  phase('latency');
  // Latency at 200 changes/s: each create carries its publish time.
  latencies = [];
  const total = 200 * LATENCY_SECONDS;
  const start = Date.now();
  for (let i = 0; i < total; i++) {
    const due = start + i * 5;
    const wait = due - Date.now();
    if (wait > 0) await new Promise((r) => setTimeout(r, wait));
    a.app.publish(
      subjects.changes,
      enc({ collection: 'notes', id: `lat${i}`, op: 'create', fields: { t: Date.now() } }),
    );
  }
  const latencyDeadline = Date.now() + 30_000;
  while (latencies.length < total && Date.now() < latencyDeadline) await new Promise((r) => setTimeout(r, 20));
  const p50 = quantile(latencies, 0.5);
  const p99 = quantile(latencies, 0.99);

  phase('pending RSS');
  // RSS with 1,000,000 pending: a daemon whose upstream answers nothing keeps everything queued.
  const c = await device('device-c', 'nats://127.0.0.1:1');
  for (let i = 0; i < PENDING_N; i++) {
    c.app.publish(
      subjects.changes,
      enc({ collection: 'notes', id: `p${i % 100_000}`, op: 'update', fields: { title: `pending ${i}` } }),
    );
    if (i % 5000 === 4999) await c.app.flush();
  }
  let pending = 0;
  const pendingDeadline = Date.now() + 600_000;
  while (pending < PENDING_N && Date.now() < pendingDeadline) {
    await new Promise((r) => setTimeout(r, 500));
    pending = dec((await c.app.request(subjects.status, enc({}), { timeout: 5000 })).data).pending;
  }
  const rssKb = Number(/VmRSS:\s+(\d+)/.exec(readFileSync(`/proc/${c.daemon.pid}/status`, 'utf8'))?.[1] ?? 0);

  out(`bench:sync  node ${process.version}  scale ${SCALE}`);
  out(
    `raw ceilings  |  NATS request/reply echo ${fmt(natsCeiling)} msg/s  |  better-sqlite3 batched insert ${fmt(sqliteCeiling)} rows/s`,
  );
  out(
    `end-to-end throughput (${fmt(THROUGHPUT_N)} changes, A's app -> B's state)  |  ${fmt(e2e)} changes/s  |  ${(e2e / natsCeiling).toFixed(3)} of NATS echo, ${(e2e / sqliteCeiling).toFixed(3)} of SQLite  |  target >= 20,000/s: ${e2e >= 20_000 ? 'met' : 'NOT met'}`,
  );
  out(
    `propagation latency at 200 changes/s (${latencies.length}/${total} seen)  |  p50 ${p50} ms  p99 ${p99} ms  |  target p50 <= 5, p99 <= 25: ${p50 <= 5 && p99 <= 25 ? 'met' : 'NOT met'}`,
  );
  out(
    `daemon RSS with ${fmt(pending)} pending  |  ${(rssKb / 1024).toFixed(1)} MB  |  target <= 200 MB: ${rssKb / 1024 <= 200 ? 'met' : 'NOT met'}`,
  );
} finally {
  // Children first: nothing the bench started may outlive it, even if a close below hangs.
  await procs.killAll();
  for (const c of conns) await c.close().catch(() => undefined);
  for (const s of servers) await s.stop().catch(() => undefined);
  await dir.remove();
}
