/**
 * pull: actions with `seq > since`, at most `min(limit, maxPullLimit)` and at
 * most one reply's worth of bytes, with `next`, `more` and `resetRequired`.
 * The stored JSON of each action is spliced into the reply as it is.
 */
import { ErrorCode, FerryError, parseWith, pullRequestSchema, type Limits } from '@ferry/contracts';
import type { Logger } from 'pino';
import type { ApiStore } from '../store/store.js';
import type { RequestHandler } from '../push/push-handler.js';
import { decodeJson } from '../push/validate-push.js';
import { encodeFailure, failureLevel, logFields } from '../service/reply.js';

export interface PullHandlerDeps {
  readonly store: ApiStore;
  readonly limits: Limits;
  readonly now: () => number;
  readonly logger: Logger;
  /** The largest reply the connected server accepts, less room for headers. */
  readonly maxReplyBytes: () => number;
}

/** Requests are tiny; anything bigger than this is not a pull request. */
const MAX_PULL_REQUEST_BYTES = 4096;

export function createPullHandler(deps: PullHandlerDeps): RequestHandler {
  return async (tenant, data) => {
    if (data.length > MAX_PULL_REQUEST_BYTES) {
      return encodeFailure(
        new FerryError(ErrorCode.TooLarge, `(root): a pull request is at most ${MAX_PULL_REQUEST_BYTES} bytes`),
      );
    }
    const json = decodeJson(data);
    if (!json.ok) return encodeFailure(json.error);
    const parsed = parseWith(pullRequestSchema, json.value);
    if (!parsed.ok) return encodeFailure(new FerryError(ErrorCode.Invalid, parsed.message));
    const request = parsed.value;
    try {
      const page = await deps.store.pull(tenant, {
        since: request.since,
        limit: Math.min(request.limit, deps.limits.maxPullLimit),
        clientId: request.clientId,
        now: deps.now(),
        maxBytes: deps.maxReplyBytes(),
      });
      const reset = page.resetRequired ? ',"resetRequired":true' : '';
      return `{"actions":[${page.actions.join(',')}],"next":${page.next},"more":${page.more}${reset}}`;
    } catch (err) {
      deps.logger[failureLevel(err)]({ tenant, ...logFields(err) }, 'pull failed');
      return encodeFailure(err);
    }
  };
}
