// One vitest run over every workspace, one summary at the end.
import { defineConfig } from 'vitest/config';

export default defineConfig({
  test: {
    projects: ['libs/*', 'services/*'],
    reporters: process.env.CI === 'true' ? ['default'] : ['default'],
  },
});
