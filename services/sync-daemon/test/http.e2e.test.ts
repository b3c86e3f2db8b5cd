// The daemon's HTTP side against real processes: device A serves HTTP on a
// free port (config http.port 0, URL from its log), device B is a plain
// daemon. /metrics is scraped and every listed series parsed; /healthz,
// /status and the errors are checked; the status page runs in headless
// Chromium and shows a change made on device B, and a screenshot is saved.
import { mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { chromium, type Browser } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { statusSnapshotSchema } from '@ferry/contracts';
import {
  ProcessGroup,
  REPO_ROOT,
  makeTempDir,
  startNatsServer,
  type NatsServerHandle,
  type ServiceProcess,
  type TempDir,
} from '@ferry/testing';
import { METRIC_NAMES } from '../src/http/metrics.js';
import { ensureChromium } from './support/chromium.js';
import { change, query, startDevice, statusOf, stopDevice, type Device } from './support/devices.js';
import { eventually, spawnApi, spawnDaemon } from './support/e2e.js';
import { family, parsePrometheus } from './support/prometheus.js';

let upstream: NatsServerHandle;
let dir: TempDir;
const procs = new ProcessGroup();
let api: ServiceProcess;
let a: Device | undefined;
let b: Device | undefined;
let base = '';

beforeAll(async () => {
  upstream = await startNatsServer();
  dir = await makeTempDir('ferry-http-');
  api = await spawnApi(procs, upstream.url, join(dir.path, 'api'));
  [a, b] = await Promise.all([
    startDevice(procs, dir, upstream, 'device-a', { http: { host: '127.0.0.1', port: 0 } }),
    startDevice(procs, dir, upstream, 'device-b'),
  ]);
  const line = await a.daemon.waitForLine(/"msg":"http listening"/, 5000);
  base = (JSON.parse(line) as { url: string }).url;
  expect(base).toMatch(/^http:\/\/127\.0\.0\.1:\d+$/);
}, 90_000);

afterAll(async () => {
  await stopDevice(a);
  await stopDevice(b);
  await api?.stop();
  await procs.killAll();
  await upstream?.stop();
  await dir?.remove();
});

describe('daemon HTTP', () => {
  it('/metrics exposes every listed series, typed and parseable, moving with sync', async () => {
    if (a === undefined || b === undefined) throw new Error('devices not started');
    const [da, db] = [a, b];
    // Some traffic both ways, and a conflict: B's later title beats A's on the same note.
    await change(da, { collection: 'notes', id: 'm1', op: 'create', fields: { title: 'one' } });
    await eventually('B to have m1', async () => (await query(db, 'm1')) !== undefined);
    await change(da, { collection: 'notes', id: 'm1', op: 'update', fields: { title: 'from A' } });
    await change(db, { collection: 'notes', id: 'm1', op: 'update', fields: { title: 'from B' } });
    await eventually('both to agree on m1', async () => {
      const [x, y] = await Promise.all([query(da, 'm1'), query(db, 'm1')]);
      return x?.version === 3 && JSON.stringify(x) === JSON.stringify(y);
    });
    const scrape = async () => {
      const res = await fetch(`${base}/metrics`);
      expect(res.status).toBe(200);
      expect(res.headers.get('content-type')).toContain('text/plain');
      return parsePrometheus(await res.text());
    };
    const value = (m: ReturnType<typeof parsePrometheus>, name: string, labels: Record<string, string> = {}) =>
      m.samples
        .filter((s) => s.name === name && Object.entries(labels).every(([k, v]) => s.labels[k] === v))
        .reduce((sum, s) => sum + s.value, 0);
    // A pulls only B's update: the acks of its own two moved its cursor over them (no pull-back).
    await eventually('A to count its pushes and pulls', async () => {
      const m = await scrape();
      return (
        value(m, 'ferry_pushed_actions_total', { status: 'accepted' }) >= 2 &&
        value(m, 'ferry_applied_actions_total') >= 1
      );
    });
    const m = await scrape();
    for (const [name, type] of Object.entries(METRIC_NAMES)) {
      expect(m.types.get(name), `TYPE of ${name}`).toBe(type);
      expect(m.help.get(name), `HELP of ${name}`).toBeTruthy();
      const samples = family(m, name);
      expect(samples.length, `samples of ${name}`).toBeGreaterThan(0);
      for (const s of samples) expect(Number.isNaN(s.value), `${s.name} is a number`).toBe(false);
    }
    expect(value(m, 'ferry_online')).toBe(1);
    expect(value(m, 'ferry_pending_actions')).toBe(0);
    expect(value(m, 'ferry_lag_seq')).toBe(0);
    expect(value(m, 'ferry_lag_seconds')).toBe(0);
    expect(value(m, 'ferry_cursor_seq')).toBe(value(m, 'ferry_head_seq'));
    expect(value(m, 'ferry_captured_actions_total')).toBeGreaterThanOrEqual(2);
    expect(value(m, 'ferry_pulled_actions_total')).toBeGreaterThanOrEqual(1);
    expect(value(m, 'ferry_last_sync_timestamp_seconds')).toBeGreaterThan(Date.now() / 1000 - 600);
    // The push latency histogram: cumulative buckets ending in +Inf = count.
    const buckets = m.samples.filter((s) => s.name === 'ferry_push_latency_seconds_bucket');
    const inf = buckets.find((s) => s.labels.le === '+Inf');
    expect(inf?.value).toBe(value(m, 'ferry_push_latency_seconds_count'));
    expect(inf?.value).toBeGreaterThanOrEqual(2);
    for (let i = 1; i < buckets.length; i++) expect(buckets[i]!.value).toBeGreaterThanOrEqual(buckets[i - 1]!.value);
    // Labelled counters exist from the start for every label value.
    for (const r of ['lww', 'delete-wins', 'rejected', 'custom', 'id-collision']) {
      expect(m.samples.some((s) => s.name === 'ferry_conflicts_total' && s.labels.resolution === r)).toBe(true);
    }
    expect(value(m, 'ferry_conflicts_total')).toBeGreaterThanOrEqual(0);
  }, 60_000);

  it('/healthz, /status and bad requests', async () => {
    const health = await fetch(`${base}/healthz`);
    expect(health.status).toBe(200);
    expect(await health.json()).toEqual({ status: 'ok' });
    const status = statusSnapshotSchema.parse(await (await fetch(`${base}/status`)).json());
    expect(status.status).toMatchObject({ app: 'notes', tenant: 'acme', online: true });
    expect(status.status.head).toBe(status.status.cursor + status.status.lag);
    expect(status.events.length).toBeGreaterThan(0);
    expect(status.changes.some((c) => c.entity.id === 'm1')).toBe(true);
    expect((await fetch(`${base}/nope`)).status).toBe(404);
    expect((await fetch(`${base}/status`, { method: 'POST' })).status).toBe(405);
  });

  describe('status page', () => {
    let browserPath: Awaited<ReturnType<typeof ensureChromium>> = { ok: false, reason: 'not looked for yet' };
    let browser: Browser | undefined;
    beforeAll(async () => {
      browserPath = await ensureChromium();
    }, 600_000);
    afterAll(async () => {
      await browser?.close();
    });

    it('shows a change made on another device and a conflict, live, and saves a screenshot', async (ctx) => {
      if (!browserPath.ok) {
        // Only where chromium cannot be installed (not root, no apt); said out loud, never silent.
        process.stderr.write(`SKIPPED status page test: ${browserPath.reason}\n`);
        ctx.skip(browserPath.reason);
        return;
      }
      if (a === undefined || b === undefined) throw new Error('devices not started');
      const [da, db] = [a, b];
      browser = await chromium.launch({ executablePath: browserPath.path, args: ['--no-sandbox'] });
      const page = await browser.newPage({ viewport: { width: 1280, height: 900 } });
      await page.goto(`${base}/`);
      await page.locator('#online', { hasText: 'online' }).waitFor({ timeout: 15_000 });
      expect(await page.locator('#app').textContent()).toBe('notes');

      // The change happens on device B; A pulls it; the page shows it without a reload.
      await change(db, { collection: 'notes', id: 'hello-b', op: 'create', fields: { title: 'Hello from B' } });
      await page.locator('#changes', { hasText: 'notes/hello-b' }).waitFor({ timeout: 20_000 });
      await page.locator('#changes', { hasText: 'Hello from B' }).waitFor({ timeout: 5_000 });
      await page.locator('#events .type.applied').first().waitFor({ timeout: 5_000 });
      expect(Number(await page.locator('[data-stat="pulled"] .value').textContent())).toBeGreaterThan(0);

      // A conflict, in a fixed order: B edits the note while its daemon is down (the change waits in
      // B's capture stream), A deletes it meanwhile; B's edit then lands on A's tombstone: delete wins.
      await eventually('A to have hello-b', async () => (await query(da, 'hello-b')) !== undefined);
      await db.daemon.stop();
      await change(db, { collection: 'notes', id: 'hello-b', op: 'update', fields: { title: 'edited on B' } });
      await change(da, { collection: 'notes', id: 'hello-b', op: 'delete' });
      await eventually('A to push its delete', async () => (await statusOf(da)).pending === 0);
      db.daemon = await spawnDaemon(procs, db.name, db.configPath);
      await page.locator('#conflicts', { hasText: 'notes/hello-b' }).waitFor({ timeout: 20_000 });
      await page.locator('#conflicts', { hasText: 'delete-wins' }).waitFor({ timeout: 5_000 });
      await page.locator('#changes', { hasText: 'deleted' }).waitFor({ timeout: 5_000 });
      // The counters follow (status pushes are coalesced, at most 4 a second).
      await page.locator('[data-stat="conflicts"] .value', { hasText: /^1$/ }).waitFor({ timeout: 5_000 });

      const shots = join(REPO_ROOT, 'tmp', 'screenshots');
      mkdirSync(shots, { recursive: true });
      await page.screenshot({ path: join(shots, 'status-page.png'), fullPage: true });
    }, 120_000);
  });
});
