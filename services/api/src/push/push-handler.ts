/**
 * push: validate the batch, store it in one transaction, answer per action,
 * and tell the feed when something new was stored. Whole-request problems are
 * answered with `{error}`; per-action outcomes are results.
 */
import type { Limits, PushReply, TenantId } from '@ferry/contracts';
import type { Logger } from 'pino';
import type { ApiStore } from '../store/store.js';
import { encodeFailure, failureLevel, logFields } from '../service/reply.js';
import { checkPushRequest } from './validate-push.js';

export interface PushHandlerDeps {
  readonly store: ApiStore;
  readonly limits: Limits;
  readonly now: () => number;
  readonly logger: Logger;
  /** Called after a commit that stored at least one action (publishes the feed). */
  readonly onStored: (tenant: TenantId, headSeq: number) => void;
  /** The largest reply the connected server accepts, less room for headers. */
  readonly maxReplyBytes: () => number;
}

export type RequestHandler = (tenant: TenantId, data: Uint8Array) => Promise<string>;

export function createPushHandler(deps: PushHandlerDeps): RequestHandler {
  return async (tenant, data) => {
    const now = deps.now();
    const checked = checkPushRequest(data, deps.limits, now);
    if (!checked.ok) {
      deps.logger.info({ tenant, code: checked.error.code, reason: checked.error.message }, 'push refused');
      return encodeFailure(checked.error);
    }
    const request = checked.value;
    try {
      const outcome = await deps.store.push(tenant, {
        clientId: request.clientId,
        actions: request.actions,
        now,
        raw: checked.raw,
      });
      if (outcome.stored > 0) deps.onStored(tenant, outcome.headSeq);
      deps.logger.debug(
        {
          tenant,
          clientId: request.clientId,
          actions: request.actions.length,
          stored: outcome.stored,
          headSeq: outcome.headSeq,
        },
        'push stored',
      );
      const reply: PushReply = { results: outcome.results, headSeq: outcome.headSeq };
      const json = JSON.stringify(reply);
      if (json.length <= deps.maxReplyBytes()) return json;
      // Many reject-stale rejections with large entities: the batch is committed, so the reply
      // must get through (a retry would meet the same size). `current` is optional; drop it.
      deps.logger.warn({ tenant, bytes: json.length }, 'push reply too large; rejections sent without current state');
      return JSON.stringify({
        results: outcome.results.map(({ current: _current, ...rest }) => rest),
        headSeq: outcome.headSeq,
      });
    } catch (err) {
      deps.logger[failureLevel(err)]({ tenant, clientId: request.clientId, ...logFields(err) }, 'push failed');
      return encodeFailure(err);
    }
  };
}
