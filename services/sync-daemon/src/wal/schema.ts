/**
 * The daemon's SQLite schema (one file per daemon, WAL mode). The WAL table is
 * append-only: rows are never edited except to record their acknowledgement
 * or rejection, and are only deleted by compaction once acknowledged.
 */
/**
 * 2: entity records are written in the compact form (libs/domain record-codec.ts).
 * A version-1 file is upgraded on open by its version number alone (its
 * wire-form rows still read); a build that reads only 1 refuses a version-2 file
 * rather than fail on every record.
 */
export const WAL_SCHEMA_VERSION = 2;
/** Versions this build opens and upgrades in place. */
export const WAL_SCHEMA_UPGRADABLE: ReadonlySet<number> = new Set([1]);

export const WAL_SCHEMA = `
CREATE TABLE IF NOT EXISTS meta (
  key   TEXT PRIMARY KEY,
  value TEXT NOT NULL
) WITHOUT ROWID;

-- One row per captured change, in the order it was made. client_seq is 1, 2, 3 …
-- and never reused, even after compaction (meta.next_client_seq).
CREATE TABLE IF NOT EXISTS wal (
  client_seq INTEGER PRIMARY KEY,
  id         TEXT NOT NULL UNIQUE,
  event_id   TEXT UNIQUE,
  collection TEXT NOT NULL,
  entity_id  TEXT NOT NULL,
  body       TEXT NOT NULL,
  bytes      INTEGER NOT NULL,
  state      INTEGER NOT NULL DEFAULT 0,   -- 0 pending, 1 acknowledged, 2 rejected
  seq        INTEGER,                      -- server seq once acknowledged
  reason     TEXT                          -- why it was rejected
);
CREATE INDEX IF NOT EXISTS wal_pending_by_entity ON wal (collection, entity_id) WHERE state = 0;
CREATE INDEX IF NOT EXISTS wal_acknowledged_by_seq ON wal (seq) WHERE state = 1;
-- Pending with a seq: acknowledged while a snapshot bootstrap runs, folded when pulled back.
CREATE INDEX IF NOT EXISTS wal_held ON wal (client_seq) WHERE state = 0 AND seq IS NOT NULL;

-- Event ids of compacted WAL rows: an app retry or a redelivery of a change
-- whose row is gone must still be recognised. Pruned by age.
CREATE TABLE IF NOT EXISTS compacted_events (
  event_id TEXT PRIMARY KEY,
  at       INTEGER NOT NULL
) WITHOUT ROWID;

-- Captured input that could not become an action, kept with the reason.
CREATE TABLE IF NOT EXISTS dead_letters (
  id         INTEGER PRIMARY KEY,
  at         INTEGER NOT NULL,
  source_ref TEXT NOT NULL,
  code       TEXT NOT NULL,
  reason     TEXT NOT NULL,
  payload    BLOB
);

-- Confirmed state: the mergeable record of every entity, in the compact form of
-- libs/domain record-codec.ts (rows of version-1 files: the EntityRecord wire form).
CREATE TABLE IF NOT EXISTS entities (
  collection TEXT NOT NULL,
  entity_id  TEXT NOT NULL,
  record     TEXT NOT NULL,
  PRIMARY KEY (collection, entity_id)
) WITHOUT ROWID;

-- Highest clientSeq of each client folded into confirmed state: actions come
-- back in server order, so a floor recognises one seen before.
CREATE TABLE IF NOT EXISTS applied_floor (
  client_id TEXT PRIMARY KEY,
  floor     INTEGER NOT NULL
) WITHOUT ROWID;

-- The queryable conflict log.
CREATE TABLE IF NOT EXISTS conflicts (
  id         INTEGER PRIMARY KEY,
  at         INTEGER NOT NULL,
  collection TEXT NOT NULL,
  entity_id  TEXT NOT NULL,
  record     TEXT NOT NULL
);

-- Snapshot bootstrap (docs/daemon.md): the seq each snapshot record was served
-- at, so a pulled action already folded into it is not folded twice.
CREATE TABLE IF NOT EXISTS bootstrap_marks (
  collection TEXT NOT NULL,
  entity_id  TEXT NOT NULL,
  seq        INTEGER NOT NULL,
  PRIMARY KEY (collection, entity_id)
) WITHOUT ROWID;

-- Entities held before a bootstrap that no snapshot page has brought back yet.
CREATE TABLE IF NOT EXISTS bootstrap_stale (
  collection TEXT NOT NULL,
  entity_id  TEXT NOT NULL,
  PRIMARY KEY (collection, entity_id)
) WITHOUT ROWID;
`;
