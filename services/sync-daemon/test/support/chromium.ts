// Headless Chromium for the status-page test: Debian's `chromium`, installed
// with apt-get when missing and this user may (root, apt available). Resolves
// to the executable, or to the reason it cannot be had (for a clear skip).
import { execFile } from 'node:child_process';
import { existsSync } from 'node:fs';

export const CHROMIUM = '/usr/bin/chromium';

function run(command: string, args: readonly string[]): Promise<{ ok: boolean; output: string }> {
  return new Promise((resolve) => {
    execFile(
      command,
      [...args],
      { env: { ...process.env, DEBIAN_FRONTEND: 'noninteractive' }, maxBuffer: 16 << 20 },
      (err, stdout, stderr) => resolve({ ok: err === null, output: `${stdout}${stderr}` }),
    );
  });
}

export async function ensureChromium(): Promise<{ ok: true; path: string } | { ok: false; reason: string }> {
  if (existsSync(CHROMIUM)) return { ok: true, path: CHROMIUM };
  if (process.getuid?.() !== 0) return { ok: false, reason: `${CHROMIUM} is missing and this user is not root` };
  if (!(await run('apt-get', ['--version'])).ok) {
    return { ok: false, reason: `${CHROMIUM} is missing and apt-get is not available` };
  }
  process.stderr.write('status-page test: installing Debian chromium (apt-get install -y chromium)…\n');
  const install = () => run('apt-get', ['install', '-y', '--no-install-recommends', 'chromium']);
  let r = await install();
  if (!r.ok) {
    // A fresh machine may have no package lists yet.
    await run('apt-get', ['update', '-y']);
    r = await install();
  }
  if (!r.ok || !existsSync(CHROMIUM)) {
    const tail = r.output.trim().split('\n').slice(-2).join(' | ');
    return { ok: false, reason: `apt-get install chromium failed (${tail})` };
  }
  return { ok: true, path: CHROMIUM };
}
