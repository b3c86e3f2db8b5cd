// Every schema accepts a valid example and rejects malformed ones with a
// message that names the offending field.
import { describe, expect, it } from 'vitest';
import type { z } from 'zod';
import {
  actionSchema,
  apiConfigSchema,
  changeEventSchema,
  conflictRecordSchema,
  daemonConfigSchema,
  decodeWith,
  entityRecordSchema,
  entityStateSchema,
  errorReplySchema,
  feedMessageSchema,
  parseWith,
  pullReplySchema,
  pullRequestSchema,
  pushReplySchema,
  pushRequestSchema,
  queryReplySchema,
  queryRequestSchema,
  snapshotReplySchema,
  snapshotRequestSchema,
  stateBatchSchema,
  statusReplySchema,
  syncEventSchema,
  tenantIdSchema,
  collectionNameSchema,
  entityIdSchema,
} from '../src/index.js';

const CLIENT = '0190a000-0000-7000-8000-00000000000a';
const ACTION_ID = '0190a000-0000-7000-8000-000000000001';
const HLC = 1_763_000_000_000 * 4096;
const action = {
  id: ACTION_ID,
  clientId: CLIENT,
  clientSeq: 1,
  collection: 'notes',
  entityId: '45',
  op: 'update',
  fields: { title: 'Shopping' },
  hlc: HLC,
};
const entity = { collection: 'notes', id: '45', fields: { title: 'Shopping' }, deleted: false, version: 2, hlc: HLC };
const stamp = { hlc: HLC, clientId: CLIENT, id: ACTION_ID };
const conflict = {
  collection: 'notes',
  entityId: '45',
  field: 'title',
  winner: { actionId: ACTION_ID, clientId: CLIENT, hlc: HLC, value: 'Groceries' },
  loser: {
    actionId: '0190a000-0000-7000-8000-000000000002',
    clientId: '0190a000-0000-7000-8000-00000000000b',
    hlc: HLC - 1,
    value: 'Shopping',
  },
  resolution: 'lww',
};

interface Case {
  name: string;
  schema: z.ZodType;
  valid: unknown[];
  /** [input, a fragment the message must contain] */
  invalid: [unknown, string][];
}

const cases: Case[] = [
  {
    name: 'tenant',
    schema: tenantIdSchema,
    valid: ['acme', 'a', 'acme_eu-1'],
    invalid: [
      ['Acme', 'must match'],
      ['a.b', 'must match'],
      ['', 'must match'],
      ['x'.repeat(65), 'must match'],
    ],
  },
  {
    name: 'collection',
    schema: collectionNameSchema,
    valid: ['notes', '_x', 'Notes2'],
    invalid: [
      ['2notes', 'must match'],
      ['no-dash', 'must match'],
      ['a.b', 'must match'],
    ],
  },
  {
    name: 'entity id',
    schema: entityIdSchema,
    valid: ['45', 'a b/c.d', 'caf\u00e9 \u{1F600}'],
    invalid: [
      ['', 'must not be empty'],
      ['x'.repeat(257), 'at most 256'],
      ['n\ud800', 'must be well-formed Unicode'],
    ],
  },
  {
    name: 'Action',
    schema: actionSchema,
    valid: [
      action,
      { ...action, op: 'delete', fields: undefined },
      { ...action, op: 'create', baseVersion: 0, seq: 9 },
    ],
    invalid: [
      [{ ...action, fields: { title: undefined } }, 'fields.title'],
      [{ ...action, hlc: -1 }, 'hlc: must not be negative'],
      [{ ...action, hlc: 1.5 }, 'hlc: must be an integer'],
      [{ ...action, id: 'not-a-uuid' }, 'id: must be a uuidv7'],
      [{ ...action, clientSeq: 0 }, 'clientSeq: must be at least 1'],
      [{ ...action, op: 'upsert' }, 'op:'],
      [{ ...action, op: 'delete' }, 'fields: must be absent on a delete'],
      [{ ...action, fields: {} }, 'fields: an update must set at least one field'],
      [{ ...action, fields: { __proto__: 1 } }, 'fields: an update must set at least one field'],
      [{ ...action, extra: 1 }, 'unknown key "extra"'],
      [{ ...action, collection: 'a.b' }, 'collection: must match'],
    ],
  },
  {
    name: 'ChangeEvent',
    schema: changeEventSchema,
    valid: [
      { collection: 'notes', id: '45', op: 'create', fields: { title: 'x', tags: ['a'], meta: { n: 1 } } },
      { collection: 'notes', id: '45', op: 'delete', eventId: 'e1' },
    ],
    invalid: [
      [{ collection: 'notes', id: '45', op: 'update', fields: { title: () => 1 } }, 'fields.title'],
      [{ collection: 'notes', op: 'update', fields: { a: 1 } }, 'id:'],
      [
        { collection: 'notes', id: '45', op: 'update', fields: { a: 1 }, baseVersion: -2 },
        'baseVersion: must not be negative',
      ],
      [
        { collection: 'notes', id: '45', op: 'update', fields: JSON.parse('{"__proto__":{"x":1},"a":2}') as unknown },
        'fields.__proto__: must not be "__proto__"',
      ],
      [{ collection: 'notes', id: '45', op: 'update', fields: { ['x'.repeat(129)]: 1 } }, 'at most 128'],
      [{ collection: 'notes', id: '4\udc005', op: 'delete' }, 'id: must be well-formed Unicode'],
      [{ collection: 'notes', id: '45', op: 'delete', eventId: 'e\ud800' }, 'eventId: must be well-formed Unicode'],
    ],
  },
  {
    name: 'EntityState',
    schema: entityStateSchema,
    valid: [entity],
    invalid: [
      [{ ...entity, deleted: 'no' }, 'deleted:'],
      [{ ...entity, version: -1 }, 'version:'],
    ],
  },
  {
    name: 'StateBatch',
    schema: stateBatchSchema,
    valid: [{ entities: [entity], cursor: 7 }],
    invalid: [
      [{ entities: [{ ...entity, id: '' }], cursor: 7 }, 'entities[0].id: must not be empty'],
      [{ entities: [] }, 'cursor:'],
    ],
  },
  {
    name: 'query request',
    schema: queryRequestSchema,
    valid: [{ collection: 'notes' }, { collection: 'notes', id: '45' }],
    invalid: [[{ id: '45' }, 'collection:']],
  },
  {
    name: 'query reply',
    schema: queryReplySchema,
    valid: [{ entities: [entity] }],
    invalid: [[{ entities: [{}] }, 'entities[0].collection']],
  },
  {
    name: 'status reply',
    schema: statusReplySchema,
    valid: [{ online: true, pending: 3, cursor: 10, lastSyncAt: null, lag: 0 }],
    invalid: [[{ online: true, pending: -1, cursor: 10, lastSyncAt: null, lag: 0 }, 'pending:']],
  },
  {
    name: 'push request',
    schema: pushRequestSchema,
    valid: [{ clientId: CLIENT, actions: [action] }],
    invalid: [
      [{ clientId: CLIENT, actions: [] }, 'actions: must hold at least one action'],
      [{ clientId: CLIENT, actions: [{ ...action, hlc: 'x' }] }, 'actions[0].hlc'],
    ],
  },
  {
    name: 'push reply',
    schema: pushReplySchema,
    valid: [
      {
        results: [
          { id: ACTION_ID, status: 'accepted', seq: 1 },
          { id: ACTION_ID, status: 'rejected', reason: 'stale', current: entity },
        ],
        headSeq: 1,
      },
    ],
    invalid: [[{ results: [{ id: ACTION_ID, status: 'ok' }], headSeq: 1 }, 'results[0].status']],
  },
  {
    name: 'pull request',
    schema: pullRequestSchema,
    valid: [
      { since: 0, limit: 100 },
      { since: 5, limit: 1, clientId: CLIENT },
    ],
    invalid: [
      [{ since: -1, limit: 100 }, 'since: must not be negative'],
      [{ since: 0, limit: 0 }, 'limit: must be at least 1'],
    ],
  },
  {
    name: 'pull reply',
    schema: pullReplySchema,
    valid: [
      { actions: [{ ...action, seq: 3 }], next: 3, more: false },
      { actions: [], next: 0, more: false, resetRequired: true },
    ],
    invalid: [[{ actions: [action], next: 3, more: false }, 'actions[0].seq']],
  },
  {
    name: 'snapshot request',
    schema: snapshotRequestSchema,
    valid: [{ limit: 10 }, { limit: 10, after: 'abc' }],
    invalid: [[{ limit: 'all' }, 'limit:']],
  },
  {
    name: 'snapshot reply',
    schema: snapshotReplySchema,
    valid: [
      {
        entities: [
          {
            collection: 'notes',
            id: '45',
            fields: { title: { value: 'x', stamp } },
            held: {},
            created: stamp,
            deleted: null,
            version: 1,
            hlc: HLC,
            seq: 4,
          },
        ],
        seq: 4,
        after: null,
        more: false,
      },
    ],
    invalid: [[{ entities: [], seq: 4, after: 3, more: false }, 'after:']],
  },
  {
    name: 'entity record',
    schema: entityRecordSchema,
    valid: [
      {
        collection: 'notes',
        id: '45',
        fields: {},
        held: {},
        created: null,
        deleted: stamp,
        version: 1,
        hlc: HLC,
        seq: 1,
      },
    ],
    invalid: [
      [
        {
          collection: 'notes',
          id: '45',
          fields: { t: { value: 1 } },
          held: {},
          created: null,
          deleted: null,
          version: 1,
          hlc: HLC,
          seq: 1,
        },
        'fields.t.stamp',
      ],
    ],
  },
  { name: 'feed', schema: feedMessageSchema, valid: [{ headSeq: 0 }], invalid: [[{ headSeq: 'x' }, 'headSeq:']] },
  {
    name: 'error reply',
    schema: errorReplySchema,
    valid: [{ error: { code: 'clock_drift', message: 'actions[0].hlc is 3600000 ms ahead' } }],
    invalid: [[{ error: { code: 'oops', message: '' } }, 'error.code']],
  },
  {
    name: 'conflict record',
    schema: conflictRecordSchema,
    valid: [conflict, { ...conflict, winner: null, resolution: 'rejected' }],
    invalid: [[{ ...conflict, resolution: 'coin-toss' }, 'resolution:']],
  },
  {
    name: 'sync event',
    schema: syncEventSchema,
    valid: [
      { type: 'conflict', at: 1, conflict },
      { type: 'push-acked', at: 1, accepted: 1, duplicate: 0, rejected: 0, headSeq: 5, latencyMs: 2.5 },
      { type: 'dead-lettered', at: 1, code: 'invalid', reason: 'changes: fields.title: …', sourceRef: '17' },
      { type: 'offline', at: 1, reason: 'no responders' },
    ],
    invalid: [
      [{ type: 'teleported', at: 1 }, 'type'],
      [{ type: 'online' }, 'at:'],
      [{ type: 'conflict', at: 1, conflict: { ...conflict, field: 3 } }, 'conflict.field'],
    ],
  },
  {
    name: 'daemon config',
    schema: daemonConfigSchema,
    valid: [
      {
        app: 'notes',
        tenant: 'acme',
        bus: { url: 'nats://127.0.0.1:4222' },
        upstream: { url: 'nats://sync.example.com:4222' },
        dataDir: './data',
      },
      {
        app: 'notes',
        tenant: 'acme',
        clientId: CLIENT,
        bus: { url: 'nats://127.0.0.1:4222' },
        upstream: { url: 'nats://127.0.0.1:4222' },
        dataDir: './data',
        collections: { notes: { policy: 'lww' }, accounts: { policy: 'reject-stale' } },
        source: { kind: 'sqlite', path: 'app.db', tables: ['notes'] },
        http: { host: '127.0.0.1', port: 7070 },
      },
    ],
    invalid: [
      [
        {
          app: 'notes',
          tenant: 'acme',
          bus: { url: 'nats://x:1' },
          upstream: { url: 'nats://y:2' },
          dataDir: './d',
          colections: {},
        },
        'unknown key "colections"',
      ],
      [
        { app: 'notes', tenant: 'acme', bus: { url: 'http://x' }, upstream: { url: 'nats://y:2' }, dataDir: './d' },
        'bus.url: must be a nats://',
      ],
      [
        {
          app: 'notes',
          tenant: 'acme',
          bus: { url: 'nats://x:1' },
          upstream: { url: 'nats://y:2' },
          dataDir: './d',
          http: { port: '7070' },
        },
        'http.port',
      ],
      [
        {
          app: 'notes',
          tenant: 'acme',
          bus: { url: 'nats://x:1' },
          upstream: { url: 'nats://y:2' },
          dataDir: './d',
          source: { kind: 'ftp' },
        },
        'source.kind',
      ],
      [
        {
          app: 'notes',
          tenant: 'acme',
          bus: { url: 'nats://x:1' },
          upstream: { url: 'nats://y:2' },
          dataDir: './d',
          collections: { notes: { policy: 'newest' } },
        },
        'collections.notes.policy',
      ],
    ],
  },
  {
    name: 'api config',
    schema: apiConfigSchema,
    valid: [{ natsUrl: 'nats://127.0.0.1:4222', dataDir: '/var/lib/ferry' }],
    invalid: [
      [{ natsUrl: 'nats://127.0.0.1:4222' }, 'dataDir:'],
      [{ natsUrl: 'nats://a:1', dataDir: 'd', limits: { maxBatchBytes: 1 } }, 'limits.maxBatchBytes'],
    ],
  },
];

describe.each(cases)('$name schema', ({ schema, valid, invalid }) => {
  it.each(valid.map((v, i) => [i, v] as const))('accepts valid example %i', (_i, value) => {
    const result = parseWith(schema, value);
    expect(result).toMatchObject({ ok: true });
  });
  it.each(invalid.map(([v, fragment], i) => [i, v, fragment] as const))(
    'rejects malformed example %i naming the field',
    (_i, value, fragment) => {
      const result = parseWith(schema, value, 'ctx');
      expect(result.ok).toBe(false);
      if (!result.ok) {
        expect(result.message).toContain(fragment);
        expect(result.message.startsWith('ctx: ')).toBe(true);
      }
    },
  );
});

describe('decodeWith', () => {
  it('reports malformed JSON as a root issue, without throwing', () => {
    expect(decodeWith(feedMessageSchema, 'not json', 'feed')).toMatchObject({
      ok: false,
      message: expect.stringContaining('feed: (root): not valid JSON') as unknown,
    });
    expect(decodeWith(feedMessageSchema, new TextEncoder().encode('{"headSeq":3}'))).toEqual({
      ok: true,
      value: { headSeq: 3 },
    });
  });
});
