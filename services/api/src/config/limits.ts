/**
 * The limits and collection policies the API enforces, resolved once from
 * the parsed config: `DEFAULT_LIMITS` overridden key by key.
 */
import { DEFAULT_LIMITS, type ApiConfig, type Limits } from '@ferry/contracts';
import { policyBookFromConfig, type PolicyBook } from '@ferry/domain';

export function resolveLimits(overrides: ApiConfig['limits'] = {}): Limits {
  const limits: Limits = { ...DEFAULT_LIMITS };
  for (const key of Object.keys(limits) as (keyof Limits)[]) {
    const value = overrides[key];
    if (value !== undefined) limits[key] = value;
  }
  return limits;
}

export type PoliciesResult = { ok: true; policies: PolicyBook } | { ok: false; message: string };

/**
 * Custom merges are refused: the store persists records with `recordToJson`,
 * which does not carry a custom merge's history, so the API could not keep
 * such a collection's snapshot state correct across restarts.
 */
export function resolvePolicies(collections: ApiConfig['collections']): PoliciesResult {
  for (const [name, config] of Object.entries(collections)) {
    if (config.policy === 'custom') {
      return {
        ok: false,
        message: `collections.${name}.policy: "custom" is not supported by the API (use "lww" or "reject-stale")`,
      };
    }
  }
  const built = policyBookFromConfig(collections);
  return built.ok ? { ok: true, policies: built.book } : built;
}
