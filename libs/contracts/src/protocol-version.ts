/**
 * The wire protocol's version. Bump it on any change to a wire message and add
 * a line below; `protocol-version.test.ts` hashes every wire schema so a change
 * cannot slip through unnoticed.
 *
 * 1: initial protocol (DESIGN §5, §6, §7), pull carries an optional clientId.
 * 2: conflict resolution "id-collision" (SQLite attach mode: two devices minted the same integer key);
 *    sync events "bootstrap-started" and "snapshot-applied" (snapshot bootstrap in the daemon).
 * 3: entity ids and eventIds must be well-formed Unicode (no lone surrogate halves): SQLite keeps
 *    text as UTF-8, where two ids differing only there would become one (a refinement: same hash).
 */
export const PROTOCOL_VERSION = 3;
