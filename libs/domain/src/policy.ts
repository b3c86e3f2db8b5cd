/**
 * Reconciliation policies per collection (DESIGN §4): the default field-level
 * last-writer-wins, reject-stale (optimistic locking, enforced by the server)
 * and custom merges registered in code by embedders.
 */
import type { Action, CollectionConfig, Fields } from '@ferry/contracts';

/** The state a custom merge folds over, in total order. */
export interface CustomState {
  readonly exists: boolean;
  readonly deleted: boolean;
  readonly fields: Readonly<Fields>;
}

/**
 * A custom merge: given the entity's state so far and the next action in the
 * total order, the new state. Must be a pure function of its arguments; the
 * materializer replays it per entity when an action arrives out of order.
 */
export type CustomMerge = (state: CustomState, action: Action) => CustomState;

export type CollectionPolicy =
  | { readonly kind: 'lww' }
  | { readonly kind: 'reject-stale' }
  | { readonly kind: 'custom'; readonly name: string; readonly merge: CustomMerge };

export const LWW_POLICY: CollectionPolicy = Object.freeze({ kind: 'lww' });
export const REJECT_STALE_POLICY: CollectionPolicy = Object.freeze({ kind: 'reject-stale' });

/** Named custom merges, registered before the policies are built. */
export class MergeRegistry {
  readonly #merges = new Map<string, CustomMerge>();

  register(name: string, merge: CustomMerge): this {
    if (this.#merges.has(name)) throw new Error(`a merge named "${name}" is already registered`);
    this.#merges.set(name, merge);
    return this;
  }

  get(name: string): CustomMerge | undefined {
    return this.#merges.get(name);
  }
}

/** The policy of every collection; collections not listed use last-writer-wins. */
export class PolicyBook {
  readonly #byCollection: ReadonlyMap<string, CollectionPolicy>;

  constructor(entries: Readonly<Record<string, CollectionPolicy>> = {}) {
    this.#byCollection = new Map(Object.entries(entries));
  }

  for(collection: string): CollectionPolicy {
    return this.#byCollection.get(collection) ?? LWW_POLICY;
  }

  has(collection: string): boolean {
    return this.#byCollection.has(collection);
  }
}

export type PolicyBookResult = { ok: true; book: PolicyBook } | { ok: false; message: string };

/** Builds the book from config; a custom policy must name a registered merge. */
export function policyBookFromConfig(
  collections: Readonly<Record<string, CollectionConfig>>,
  registry: MergeRegistry = new MergeRegistry(),
): PolicyBookResult {
  const entries: Record<string, CollectionPolicy> = {};
  for (const [name, config] of Object.entries(collections)) {
    if (config.policy === 'lww') entries[name] = LWW_POLICY;
    else if (config.policy === 'reject-stale') entries[name] = REJECT_STALE_POLICY;
    else {
      const mergeName = config.merge;
      if (mergeName === undefined) {
        return { ok: false, message: `collections.${name}.merge: required when policy is "custom"` };
      }
      const merge = registry.get(mergeName);
      if (merge === undefined) {
        return { ok: false, message: `collections.${name}.merge: no merge registered as "${mergeName}"` };
      }
      entries[name] = { kind: 'custom', name: mergeName, merge };
    }
  }
  return { ok: true, book: new PolicyBook(entries) };
}
