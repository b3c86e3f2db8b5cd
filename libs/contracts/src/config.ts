/**
 * Configuration of both services (DESIGN §9), parsed once at start-up.
 * Unknown keys are refused with a message that names them.
 */
import { z } from 'zod';
import { DEFAULT_LIMITS } from './upstream.js';
import { appNameSchema, clientIdSchema, collectionNameSchema, tenantIdSchema } from './ids.js';

export const POLICIES = ['lww', 'reject-stale', 'custom'] as const;

export const collectionConfigSchema = z.strictObject({
  policy: z.enum(POLICIES).default('lww'),
  /** With policy "custom": the name a merge function was registered under. */
  merge: z.string().min(1).optional(),
});
export type CollectionConfig = z.infer<typeof collectionConfigSchema>;

export const collectionsConfigSchema = z.record(collectionNameSchema, collectionConfigSchema);

const natsUrlSchema = z
  .string()
  .regex(/^(nats|tls|ws|wss):\/\/[^\s]+$/, 'must be a nats:// (or tls://, ws://, wss://) URL');

const connectionSchema = z.strictObject({
  url: natsUrlSchema,
  user: z.string().optional(),
  pass: z.string().optional(),
  token: z.string().optional(),
});

export const sourceConfigSchema = z.discriminatedUnion('kind', [
  z.strictObject({ kind: z.literal('bus') }),
  z.strictObject({
    kind: z.literal('sqlite'),
    path: z.string().min(1),
    tables: z.array(z.string().min(1)).optional(),
  }),
]);
export type SourceConfig = z.infer<typeof sourceConfigSchema>;

export const daemonConfigSchema = z.strictObject({
  app: appNameSchema,
  tenant: tenantIdSchema,
  clientId: clientIdSchema.optional(),
  bus: connectionSchema.extend({
    prefix: z
      .string()
      .regex(/^[A-Za-z0-9_-]+(\.[A-Za-z0-9_-]+)*$/, 'must be dot-separated subject tokens without wildcards')
      .default('ferry'),
  }),
  upstream: connectionSchema,
  dataDir: z.string().min(1),
  collections: collectionsConfigSchema.default({}),
  source: sourceConfigSchema.default({ kind: 'bus' }),
  http: z
    .strictObject({
      host: z.string().default('127.0.0.1'),
      port: z.number().int().min(0).max(65535).default(7070),
    })
    .optional(),
  batch: z
    .strictObject({
      maxActions: z.number().int().min(1).max(DEFAULT_LIMITS.maxActionsPerBatch).default(1000),
      maxBytes: z
        .number()
        .int()
        .min(1024)
        .max(DEFAULT_LIMITS.maxBatchBytes)
        .default(512 * 1024),
      /**
       * Extra wait before a push, to gather more actions. 0: push at once when
       * idle; actions captured while a push is in flight form the next batch.
       */
      intervalMs: z.number().int().min(0).default(0),
    })
    .default({ maxActions: 1000, maxBytes: 512 * 1024, intervalMs: 0 }),
  download: z
    .strictObject({
      /** Actions asked for per pull. */
      pageLimit: z.number().int().min(1).max(DEFAULT_LIMITS.maxPullLimit).default(1000),
      /** Records asked for per snapshot page while bootstrapping. */
      snapshotPageLimit: z.number().int().min(1).max(DEFAULT_LIMITS.maxSnapshotLimit).default(1000),
    })
    .default({ pageLimit: 1000, snapshotPageLimit: 1000 }),
  retry: z
    .strictObject({
      initialMs: z.number().int().min(1).default(100),
      maxMs: z.number().int().min(1).default(10_000),
    })
    .default({ initialMs: 100, maxMs: 10_000 }),
  /** Reject unknown collections on capture (dead-letter) instead of syncing them with lww. */
  strictCollections: z.boolean().default(false),
});
export type DaemonConfig = z.infer<typeof daemonConfigSchema>;
export type DaemonConfigInput = z.input<typeof daemonConfigSchema>;

export const apiConfigSchema = z.strictObject({
  natsUrl: natsUrlSchema,
  dataDir: z.string().min(1),
  nats: z
    .strictObject({ user: z.string().optional(), pass: z.string().optional(), token: z.string().optional() })
    .default({}),
  /** Policies per collection, for every tenant (reject-stale is enforced here). */
  collections: collectionsConfigSchema.default({}),
  limits: z
    .strictObject({
      maxActionsPerBatch: z.number().int().min(1).optional(),
      maxBatchBytes: z.number().int().min(1024).optional(),
      maxFieldsPerAction: z.number().int().min(1).optional(),
      maxFieldValueBytes: z.number().int().min(1).optional(),
      maxPullLimit: z.number().int().min(1).optional(),
      maxSnapshotLimit: z.number().int().min(1).optional(),
      maxClockDriftMs: z.number().int().min(0).optional(),
    })
    .default({}),
  retention: z
    .strictObject({
      windowDays: z.number().positive().default(30),
      purgeIntervalMs: z.number().int().min(1000).default(3_600_000),
    })
    .default({ windowDays: 30, purgeIntervalMs: 3_600_000 }),
  queueGroup: z.string().min(1).default('ferry-api'),
});
export type ApiConfig = z.infer<typeof apiConfigSchema>;
export type ApiConfigInput = z.input<typeof apiConfigSchema>;
