// bench:sync:threads — where the time of bench:sync's throughput phase goes:
// the same pipeline (device A's app → A's daemon → API → B's daemon → B's app,
// each process real, three nats-servers), with the CPU per change of every
// process, how much of the wall time the main threads of the daemons and the
// API were on a CPU or waiting for one (run queue, /proc/<pid>/schedstat), the
// machine's idle share. Not a target; the breakdown
// behind docs/daemon.md (Performance).
//   DAEMON_PROFILE=a|b  also write a .cpuprofile of that daemon to /tmp/ferry-sync-prof-<a|b>
// Reproduce: npm run bench:sync:threads   (BENCH_SCALE=0.2 for a quick run; Linux only)
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { busSubjects } from '@ferry/contracts';
import { FERRY_BIN, ProcessGroup, makeTempDir, startNatsServer } from '../libs/testing/dist/index.js';
import { startDevice } from './sync-devices.mjs';

const N = Math.round(100_000 * Number(process.env.BENCH_SCALE ?? 1));
const PROFILE = process.env.DAEMON_PROFILE;
const TICK_MS = 1000 / 100; // USER_HZ: /proc times are in ticks of 10 ms
const subjects = busSubjects('notes');
const enc = (v) => new TextEncoder().encode(JSON.stringify(v));
const dec = (d) => JSON.parse(new TextDecoder().decode(d));
const out = (line) => process.stdout.write(`${line}\n`);

/** utime + stime of a process, in ms. */
function cpuMs(pid) {
  const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
  const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  return (Number(fields[11]) + Number(fields[12])) * TICK_MS;
}
/** [ns on a CPU, ns runnable but waiting for one] of a process's main thread. */
function schedNs(pid) {
  const [onCpu, waiting] = readFileSync(`/proc/${pid}/task/${pid}/schedstat`, 'utf8').trim().split(' ').map(Number);
  return [onCpu, waiting];
}
/** [idle ticks, all ticks] of the machine. */
function machineTicks() {
  const ticks = readFileSync('/proc/stat', 'utf8').split('\n')[0].trim().split(/\s+/).slice(1, 9).map(Number);
  return [ticks[3] + ticks[4], ticks.reduce((a, b) => a + b, 0)];
}

const procs = new ProcessGroup();
const servers = [];
const conns = [];
const dir = await makeTempDir('ferry-bench-sync-threads-');
try {
  const upstream = await startNatsServer({ mode: 'local' });
  servers.push(upstream);
  const api = procs.spawn({
    name: 'api',
    args: [FERRY_BIN, 'api', '--nats-url', upstream.url, '--data-dir', join(dir.path, 'api')],
  });
  await api.waitForLine(/api ready/, 20_000);

  const device = (name) =>
    startDevice({
      procs,
      servers,
      conns,
      dir: dir.path,
      name,
      upstreamUrl: upstream.url,
      natsOptions: { mode: 'local' },
      nodeArgs: PROFILE === name ? ['--cpu-prof', `--cpu-prof-dir=/tmp/ferry-sync-prof-${name}`] : [],
    });
  const a = await device('a');
  const b = await device('b');

  const seen = new Set();
  let done;
  const allSeen = new Promise((r) => (done = r));
  b.app.subscribe(subjects.state, {
    callback: (_e, m) => {
      for (const e of dec(m.data).entities) {
        if (!e.id.startsWith('tp')) continue;
        seen.add(e.id);
        if (seen.size === N) done();
      }
    },
  });
  // No subscriber to A's sync events: one per captured change would load the pipeline bench:sync measures.
  await b.app.flush();

  const pids = {
    'daemon A': a.daemon.pid,
    'daemon B': b.daemon.pid,
    api: api.pid,
    "A's nats-server (JetStream)": a.bus.pid,
    "B's nats-server": b.bus.pid,
    'upstream nats-server': upstream.pid,
    'this process (both apps)': process.pid,
  };
  const mains = { 'daemon A': a.daemon.pid, api: api.pid, 'daemon B': b.daemon.pid };
  const cpu0 = Object.fromEntries(Object.entries(pids).map(([k, pid]) => [k, cpuMs(pid)]));
  const sched0 = Object.fromEntries(Object.entries(mains).map(([k, pid]) => [k, schedNs(pid)]));
  const machine0 = machineTicks();
  const t0 = performance.now();
  for (let i = 0; i < N; i++) {
    a.app.publish(
      subjects.changes,
      enc({ collection: 'notes', id: `tp${i}`, op: 'create', fields: { title: `note ${i}`, n: i } }),
    );
    if (i % 1000 === 999) await a.app.flush();
  }
  let deadline;
  await Promise.race([
    allSeen,
    new Promise((_, reject) => {
      deadline = setTimeout(
        () => reject(new Error(`B's app saw ${seen.size} of ${N} changes within ${Math.max(60, N * 0.003)} s`)),
        Math.max(60_000, N * 3),
      );
    }),
  ]);
  clearTimeout(deadline);
  const wallMs = performance.now() - t0;
  const machine1 = machineTicks();

  out(`bench:sync:threads  node ${process.version}  ${N.toLocaleString('en-US')} changes, A's app -> B's state`);
  out(`  end to end ${Math.round(N / (wallMs / 1000)).toLocaleString('en-US')} changes/s`);
  out('  CPU per change (µs):');
  let totalUs = 0;
  for (const [name, pid] of Object.entries(pids)) {
    const us = ((cpuMs(pid) - cpu0[name]) * 1000) / N;
    totalUs += us;
    out(`    ${name.padEnd(30)} ${us.toFixed(1).padStart(6)}`);
  }
  out(`    ${'all'.padEnd(30)} ${totalUs.toFixed(1).padStart(6)}`);
  const [idle, all] = [machine1[0] - machine0[0], machine1[1] - machine0[1]];
  out(`  machine idle ${((100 * idle) / all).toFixed(0)}% of ${all} ticks over the phase`);
  out('  main threads, share of the wall time: on a CPU + waiting for one (run queue) = runnable');
  for (const [name, pid] of Object.entries(mains)) {
    const [onCpu, waiting] = schedNs(pid);
    const on = (onCpu - sched0[name][0]) / 1e6 / wallMs;
    const wait = (waiting - sched0[name][1]) / 1e6 / wallMs;
    out(`    ${name.padEnd(10)} ${on.toFixed(2)} + ${wait.toFixed(2)} = ${(on + wait).toFixed(2)}`);
  }
  if (PROFILE !== undefined) {
    // A profile is written when the process exits by itself.
    await { a, b }[PROFILE]?.daemon.stop(10_000);
    out(`  profile of daemon ${PROFILE.toUpperCase()} in /tmp/ferry-sync-prof-${PROFILE}`);
  }
} finally {
  await procs.killAll();
  for (const c of conns) await c.close().catch(() => undefined);
  for (const s of servers) await s.stop().catch(() => undefined);
  await dir.remove();
}
