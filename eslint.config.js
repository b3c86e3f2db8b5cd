// Type-aware lint. Dependencies point one way: contracts <- domain <- services;
// the two services meet only on the wire.
import js from '@eslint/js';
import tseslint from 'typescript-eslint';

const restrict = (patterns) => ['error', { patterns }];

export default tseslint.config(
  {
    ignores: [
      '**/dist/**',
      '**/node_modules/**',
      'coverage/**',
      '**/*.config.ts',
      'eslint.config.js',
      'bench/**',
      'scripts/**',
      'bin/**',
      // Plain-JS apps outside the workspaces (they show the bus and attach mode from the outside).
      'examples/**',
    ],
  },
  js.configs.recommended,
  ...tseslint.configs.recommendedTypeChecked,
  {
    languageOptions: { parserOptions: { projectService: true, tsconfigRootDir: import.meta.dirname } },
    rules: {
      '@typescript-eslint/no-floating-promises': 'error',
      '@typescript-eslint/consistent-type-imports': 'error',
      '@typescript-eslint/no-explicit-any': 'error',
      '@typescript-eslint/no-unused-vars': ['error', { argsIgnorePattern: '^_', varsIgnorePattern: '^_' }],
      'no-console': 'error',
    },
  },
  {
    files: ['libs/contracts/src/**/*.ts'],
    rules: {
      'no-restricted-imports': restrict([
        { group: ['@ferry/*', 'node:*'], message: 'contracts depend on nothing but zod' },
      ]),
    },
  },
  {
    files: ['libs/domain/src/**/*.ts'],
    ignores: ['libs/domain/src/**/*.test.ts'],
    rules: {
      'no-restricted-imports': restrict([
        {
          group: ['@ferry/api', '@ferry/sync-daemon', '@ferry/testing', 'node:*'],
          message: 'the domain is pure: no I/O, no services',
        },
      ]),
      'no-restricted-globals': ['error', { name: 'Date', message: 'pass a clock in' }],
      'no-restricted-properties': ['error', { object: 'Math', property: 'random', message: 'pass ids in' }],
    },
  },
  {
    files: ['services/api/src/**/*.ts'],
    rules: {
      'no-restricted-imports': restrict([
        { group: ['@ferry/sync-daemon', '**/sync-daemon/**'], message: 'services meet only on the wire' },
      ]),
    },
  },
  {
    files: ['services/sync-daemon/src/**/*.ts'],
    rules: {
      'no-restricted-imports': restrict([
        { group: ['@ferry/api', '**/services/api/**'], message: 'services meet only on the wire' },
      ]),
    },
  },
  {
    files: ['**/*.test.ts', '**/test/**/*.ts', 'libs/testing/**/*.ts'],
    rules: {
      'no-console': 'off',
      '@typescript-eslint/no-unsafe-assignment': 'off',
      '@typescript-eslint/no-unsafe-member-access': 'off',
    },
  },
  {
    files: ['**/src/**/*.ts'],
    ignores: ['**/*.test.ts'],
    rules: {
      'no-restricted-imports': [
        'error',
        { patterns: [{ group: ['**/*.test', '**/*.test.js', '**/test/**'], message: 'no imports of test files' }] },
      ],
    },
  },
);
