// One vitest run over every workspace, one summary at the end (plus a plain
// "N passed, N failed" line for CI log readers).
import { defineConfig } from 'vitest/config';
import SummaryReporter from './scripts/summary-reporter.js';

export default defineConfig({
  test: {
    projects: ['libs/*', 'services/*'],
    reporters: ['default', new SummaryReporter()],
  },
});
