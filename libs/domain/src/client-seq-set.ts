/**
 * Which clientSeqs of each client have been seen: a contiguous floor plus a
 * sparse set above it. O(1) per check when actions arrive in order, which is
 * the normal case; out-of-order arrivals cost one Set entry until the gap fills.
 */

class SeqSet {
  /** Every seq <= floor has been seen. */
  floor = 0;
  above: Set<number> | null = null;

  has(seq: number): boolean {
    return seq <= this.floor || (this.above !== null && this.above.has(seq));
  }

  /** Adds seq; false when it was already there. */
  add(seq: number): boolean {
    if (this.has(seq)) return false;
    if (seq === this.floor + 1) {
      this.floor = seq;
      const above = this.above;
      if (above !== null) {
        while (above.delete(this.floor + 1)) this.floor++;
        if (above.size === 0) this.above = null;
      }
    } else {
      (this.above ??= new Set()).add(seq);
    }
    return true;
  }
}

/** How many recently seen clients `add` finds without a hash lookup. */
const RECENT = 4;

export class ClientSeqSet {
  readonly #byClient = new Map<string, SeqSet>();
  // A batch usually comes from a few clients, interleaved: a short list of the
  // latest ones spares the hash of each (often freshly parsed) clientId string.
  readonly #recentIds: string[] = [];
  readonly #recentSets: SeqSet[] = [];
  #nextRecent = 0;

  has(clientId: string, clientSeq: number): boolean {
    const set = this.#byClient.get(clientId);
    return set !== undefined && set.has(clientSeq);
  }

  /** Records (clientId, clientSeq); false when it had been seen before. */
  add(clientId: string, clientSeq: number): boolean {
    const ids = this.#recentIds;
    for (let i = 0; i < ids.length; i++) {
      if (ids[i] === clientId) return (this.#recentSets[i] as SeqSet).add(clientSeq);
    }
    let set = this.#byClient.get(clientId);
    if (set === undefined) {
      set = new SeqSet();
      this.#byClient.set(clientId, set);
    }
    const slot = this.#nextRecent;
    this.#nextRecent = (slot + 1) % RECENT;
    ids[slot] = clientId;
    this.#recentSets[slot] = set;
    return set.add(clientSeq);
  }

  /** The highest clientSeq below which nothing is missing, per client. */
  floors(): Map<string, number> {
    const out = new Map<string, number>();
    for (const [client, set] of this.#byClient) out.set(client, set.floor);
    return out;
  }
}
