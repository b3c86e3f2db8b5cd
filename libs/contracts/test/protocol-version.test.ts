// A protocol change cannot slip through: this hashes the JSON Schema of every
// wire message. When it fails, bump PROTOCOL_VERSION, add a line to its
// history in src/protocol-version.ts and docs/protocol.md, then update HASH.
import { createHash } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { z } from 'zod';
import * as contracts from '../src/index.js';

const WIRE = {
  action: contracts.actionSchema,
  storedAction: contracts.storedActionSchema,
  changeEvent: contracts.changeEventSchema,
  entityState: contracts.entityStateSchema,
  entityRecord: contracts.entityRecordSchema,
  stateBatch: contracts.stateBatchSchema,
  queryRequest: contracts.queryRequestSchema,
  queryReply: contracts.queryReplySchema,
  statusRequest: contracts.statusRequestSchema,
  statusReply: contracts.statusReplySchema,
  pushRequest: contracts.pushRequestSchema,
  pushReply: contracts.pushReplySchema,
  pullRequest: contracts.pullRequestSchema,
  pullReply: contracts.pullReplySchema,
  snapshotRequest: contracts.snapshotRequestSchema,
  snapshotReply: contracts.snapshotReplySchema,
  feed: contracts.feedMessageSchema,
  errorReply: contracts.errorReplySchema,
  conflict: contracts.conflictRecordSchema,
  syncEvent: contracts.syncEventSchema,
};

const SUBJECTS = [
  contracts.apiSubjects.push('t'),
  contracts.apiSubjects.pull('t'),
  contracts.apiSubjects.snapshot('t'),
  contracts.apiSubjects.feed('t'),
  ...Object.values(contracts.busSubjects('app')),
];

function protocolHash(): string {
  const schemas = Object.fromEntries(
    Object.entries(WIRE).map(([name, schema]) => [
      name,
      z.toJSONSchema(schema, { unrepresentable: 'any', io: 'input' }),
    ]),
  );
  return createHash('sha256')
    .update(JSON.stringify({ schemas, subjects: SUBJECTS, codes: contracts.ERROR_CODES }))
    .digest('hex')
    .slice(0, 16);
}

const VERSION = 3;
const HASH = '83ff717db0474fca';

describe('protocol version', () => {
  it('matches the hash of every wire schema, subject and error code', () => {
    expect(contracts.PROTOCOL_VERSION).toBe(VERSION);
    expect(
      protocolHash(),
      'the wire protocol changed: bump PROTOCOL_VERSION, record the change, update HASH in this test',
    ).toBe(HASH);
  });
});
