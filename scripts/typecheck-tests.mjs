// Typechecks every workspace's tests (test/tsconfig.json), which the build excludes.
import { spawnSync } from 'node:child_process';
import { existsSync, readdirSync } from 'node:fs';
import { createRequire } from 'node:module';

const tsc = createRequire(import.meta.url).resolve('typescript/bin/tsc');
const dirs = ['libs/contracts', 'libs/domain', 'libs/testing', 'services/api', 'services/sync-daemon'];
let failed = false;
for (const dir of dirs) {
  const project = `${dir}/test/tsconfig.json`;
  if (!existsSync(project) || !readdirSync(`${dir}/test`).some((f) => f.endsWith('.ts'))) continue;
  const r = spawnSync(process.execPath, [tsc, '-p', project], { stdio: 'inherit' });
  if (r.status !== 0) failed = true;
}
process.exit(failed ? 1 : 0);
