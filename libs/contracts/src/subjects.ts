/**
 * The only module that spells NATS subjects. Everything else calls these
 * builders; a subject string written anywhere else is a bug.
 */
import type { AppName, TenantId } from './ids.js';

export const API_PREFIX = 'ferry.api.v1';
export const DEFAULT_BUS_PREFIX = 'ferry';

/** Upstream subjects for one tenant (DESIGN §6). */
export const apiSubjects = {
  push: (tenant: TenantId | string): string => `${API_PREFIX}.${tenant}.push`,
  pull: (tenant: TenantId | string): string => `${API_PREFIX}.${tenant}.pull`,
  snapshot: (tenant: TenantId | string): string => `${API_PREFIX}.${tenant}.snapshot`,
  feed: (tenant: TenantId | string): string => `${API_PREFIX}.${tenant}.feed`,
  /** Wildcards the API service subscribes to: one token for the tenant. */
  anyPush: `${API_PREFIX}.*.push`,
  anyPull: `${API_PREFIX}.*.pull`,
  anySnapshot: `${API_PREFIX}.*.snapshot`,
  /** Everything the API may ever answer (used by the auth config and tests). */
  all: `${API_PREFIX}.>`,
} as const;

export type ApiVerb = 'push' | 'pull' | 'snapshot';

/**
 * Splits an API subject into tenant and verb; null when it is not of the form
 * `ferry.api.v1.<tenant>.<verb>`. The tenant token is not validated here.
 */
export function parseApiSubject(subject: string): { tenant: string; verb: string } | null {
  const parts = subject.split('.');
  if (parts.length !== 5) return null;
  const [a, b, c, tenant, verb] = parts;
  if (`${a}.${b}.${c}` !== API_PREFIX || tenant === undefined || verb === undefined) return null;
  return { tenant, verb };
}

/** Local bus subjects for one app (DESIGN §5). */
export function busSubjects(app: AppName | string, prefix: string = DEFAULT_BUS_PREFIX) {
  const base = `${prefix}.${app}`;
  return {
    changes: `${base}.changes`,
    state: `${base}.state`,
    events: `${base}.events`,
    status: `${base}.status`,
    query: `${base}.query`,
  } as const;
}
export type BusSubjects = ReturnType<typeof busSubjects>;

/** JetStream names the daemon creates on the local NATS (names cannot contain dots). */
export function captureStreamName(app: AppName | string): string {
  return `FERRY_${String(app)
    .replace(/[^A-Za-z0-9_-]/g, '_')
    .toUpperCase()}_CHANGES`;
}

export function captureConsumerName(app: AppName | string): string {
  return `ferry-${String(app).replace(/[^A-Za-z0-9_-]/g, '_')}-daemon`;
}
