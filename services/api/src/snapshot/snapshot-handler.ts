/**
 * snapshot: the tenant's entity records (tombstones included) page by page in
 * (collection, id) order. `seq` is the head when the first page was served;
 * each record carries its own `seq`, so a client that then pulls from `seq`
 * skips actions a record already holds.
 */
import { ErrorCode, FerryError, parseWith, snapshotRequestSchema, type Limits } from '@ferry/contracts';
import type { Logger } from 'pino';
import type { ApiStore } from '../store/store.js';
import type { RequestHandler } from '../push/push-handler.js';
import { decodeJson } from '../push/validate-push.js';
import { encodeFailure, failureLevel, logFields } from '../service/reply.js';
import { decodePageToken, encodePageToken } from './page-token.js';

export interface SnapshotHandlerDeps {
  readonly store: ApiStore;
  readonly limits: Limits;
  readonly logger: Logger;
  readonly maxReplyBytes: () => number;
}

const MAX_SNAPSHOT_REQUEST_BYTES = 4096;

export function createSnapshotHandler(deps: SnapshotHandlerDeps): RequestHandler {
  return async (tenant, data) => {
    if (data.length > MAX_SNAPSHOT_REQUEST_BYTES) {
      return encodeFailure(
        new FerryError(ErrorCode.TooLarge, `(root): a snapshot request is at most ${MAX_SNAPSHOT_REQUEST_BYTES} bytes`),
      );
    }
    const json = decodeJson(data);
    if (!json.ok) return encodeFailure(json.error);
    const parsed = parseWith(snapshotRequestSchema, json.value);
    if (!parsed.ok) return encodeFailure(new FerryError(ErrorCode.Invalid, parsed.message));
    const request = parsed.value;
    const after = request.after === undefined ? null : decodePageToken(request.after);
    if (request.after !== undefined && after === null) {
      return encodeFailure(new FerryError(ErrorCode.Invalid, 'after: not a page token issued by this API'));
    }
    try {
      const maxBytes = deps.maxReplyBytes();
      const page = await deps.store.snapshot(tenant, {
        after,
        limit: Math.min(request.limit, deps.limits.maxSnapshotLimit),
        maxBytes,
      });
      const body = page.records.join(',');
      if (body.length > maxBytes) {
        // One record alone outgrew a message: say so instead of letting the reply fail.
        return encodeFailure(
          new FerryError(
            ErrorCode.TooLarge,
            `entities: a record is larger than the server's max_payload (${maxBytes} bytes)`,
          ),
        );
      }
      const token = page.after === null ? 'null' : JSON.stringify(encodePageToken(page.after));
      return `{"entities":[${body}],"seq":${page.seq},"after":${token},"more":${page.more}}`;
    } catch (err) {
      deps.logger[failureLevel(err)]({ tenant, ...logFields(err) }, 'snapshot failed');
      return encodeFailure(err);
    }
  };
}
