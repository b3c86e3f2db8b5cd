// bench:api:threads — where the CPU of a push goes: the push phase of bench:api
// (4 clients × batches of 1,000) against a real API process, with the CPU time
// per pushed action of each of the API's threads, of nats-server and of this
// client process, read from /proc. Not a target; the breakdown behind
// docs/decisions/0004-writer-thread.md.
//   API_NODE_OPTIONS='--max-semi-space-size=8'  node flags for the API process
//   API_PROFILE_DIR=/tmp/prof                  also write .cpuprofile files of its threads there
// Reproduce: npm run bench:api:threads   (BENCH_SCALE=0.2 for a quick run; Linux only)
import { readFileSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import { connect } from '@nats-io/transport-node';
import { apiSubjects } from '@ferry/contracts';
import { FERRY_BIN, makeTempDir, ProcessGroup, startNatsServer } from '../libs/testing/dist/index.js';
import { BATCH, CLIENTS, makeClientBatches, pushAll, warmUp } from './api-workload.mjs';

const SCALE = Number(process.env.BENCH_SCALE ?? 1);
const BATCHES_PER_CLIENT = Math.max(2, Math.round(50 * SCALE));
const TICK_MS = 1000 / 100; // USER_HZ: /proc times are in ticks of 10 ms

/** utime + stime of a process or thread, in ms. */
function cpuMs(statPath) {
  const stat = readFileSync(statPath, 'utf8');
  const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  return (Number(fields[11]) + Number(fields[12])) * TICK_MS;
}
function threadsOf(pid) {
  const out = new Map();
  for (const tid of readdirSync(`/proc/${pid}/task`)) {
    try {
      const name = readFileSync(`/proc/${pid}/task/${tid}/comm`, 'utf8').trim();
      out.set(tid, { name, ms: cpuMs(`/proc/${pid}/task/${tid}/stat`) });
    } catch {
      // the thread ended
    }
  }
  return out;
}
const selfMs = () => {
  const u = process.cpuUsage();
  return (u.user + u.system) / 1000;
};

const perClient = Array.from({ length: CLIENTS }, (_, k) => makeClientBatches(k, BATCHES_PER_CLIENT));
const total = CLIENTS * BATCHES_PER_CLIENT * BATCH;
const procs = new ProcessGroup();
const nats = await startNatsServer({ mode: 'local' });
const dir = await makeTempDir('ferry-bench-threads-');
const conns = [];
try {
  const nodeFlags = (process.env.API_NODE_OPTIONS ?? '').split(' ').filter(Boolean);
  if (process.env.API_PROFILE_DIR) nodeFlags.push('--cpu-prof', `--cpu-prof-dir=${process.env.API_PROFILE_DIR}`);
  const api = procs.spawn({
    name: 'api',
    args: [...nodeFlags, FERRY_BIN, 'api', '--nats-url', nats.url, '--data-dir', join(dir.path, 'api')],
  });
  await api.waitForLine(/"msg":"api ready"/, 20_000);
  for (let k = 0; k < CLIENTS; k++) conns.push(await connect({ servers: nats.url }));
  await warmUp(conns[0]);

  const natsPid = nats.pid;
  const sample = () => ({
    api: threadsOf(api.pid),
    nats: natsPid === null ? 0 : cpuMs(`/proc/${natsPid}/stat`),
    self: selfMs(),
  });
  const before = sample();
  const { ms, rtts } = await pushAll(conns, perClient, apiSubjects.push('bench'), (reply) => {
    const body = reply.json();
    if (body.error) throw new Error(`push failed: ${JSON.stringify(body.error)}`);
  });
  const after = sample();

  const us = (cpu) => ((cpu * 1000) / total).toFixed(2).padStart(6);
  rtts.sort((x, y) => x - y);
  const q = (p) => rtts[Math.min(rtts.length - 1, Math.floor(p * rtts.length))].toFixed(1);
  process.stdout.write(
    `bench:api:threads  node ${process.version}  ${total.toLocaleString('en-US')} actions  ${Math.round((total / ms) * 1000).toLocaleString('en-US')} actions/s  batch round trip p50 ${q(0.5)} ms p99 ${q(0.99)} ms\n`,
  );
  process.stdout.write('CPU per pushed action (µs):\n');
  let apiSum = 0;
  const rows = [];
  for (const [tid, t] of after.api) {
    const spent = t.ms - (before.api.get(tid)?.ms ?? 0);
    apiSum += spent;
    if (spent > 0) rows.push({ label: `${tid === String(api.pid) ? 'main' : 'thread'} ${tid} (${t.name})`, spent });
  }
  rows.sort((x, y) => y.spent - x.spent);
  for (const r of rows) process.stdout.write(`  api ${r.label.padEnd(28)} ${us(r.spent)}\n`);
  process.stdout.write(`  api, all threads                  ${us(apiSum)}\n`);
  if (natsPid !== null) process.stdout.write(`  nats-server                       ${us(after.nats - before.nats)}\n`);
  process.stdout.write(`  this client process (4 clients)   ${us(after.self - before.self)}\n`);
  await api.stop(10_000); // a clean exit writes the profiles
} finally {
  await Promise.all(conns.map((c) => c.close()));
  await procs.killAll();
  await nats.stop();
  await dir.remove();
}
