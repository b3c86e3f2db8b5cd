/**
 * DDL of the SQLite store and the pragmas it runs under. Tenants and clients
 * are mapped to integer ids so the log's indexes stay small. Version 2 added
 * the records checkpoint watermark (`tenants.records_through`); version 3
 * replaced the per-row index of the log by client (`actions_by_client`) with
 * one row per run of a client's actions (`client_runs`).
 */
import type { Database } from 'better-sqlite3';

export const SCHEMA_VERSION = 3;

const DDL = `
CREATE TABLE IF NOT EXISTS tenants (
  id             INTEGER PRIMARY KEY,
  name           TEXT NOT NULL UNIQUE,
  head_seq       INTEGER NOT NULL DEFAULT 0,
  purged_through INTEGER NOT NULL DEFAULT 0,
  -- Every entities row holds all of this tenant's actions with seq <= this (write-behind watermark).
  records_through INTEGER NOT NULL DEFAULT 0
);
CREATE TABLE IF NOT EXISTS clients (
  id              INTEGER PRIMARY KEY,
  tenant          INTEGER NOT NULL,
  client_id       TEXT NOT NULL,
  high_client_seq INTEGER NOT NULL DEFAULT 0,
  cursor          INTEGER,
  last_seen       INTEGER NOT NULL,
  UNIQUE (tenant, client_id)
);
CREATE TABLE IF NOT EXISTS actions (
  tenant     INTEGER NOT NULL,
  seq        INTEGER NOT NULL,
  client     INTEGER NOT NULL,
  client_seq INTEGER NOT NULL,
  json       TEXT NOT NULL,
  PRIMARY KEY (tenant, seq)
) WITHOUT ROWID;
-- A run: actions of one client with consecutive client_seqs stored at consecutive seqs (a push
-- batch writes one, or more where a rejection breaks it). The seq of client_seq c in the run is
-- first_seq + (c - first_client_seq): retries are answered with the original seq from here.
CREATE TABLE IF NOT EXISTS client_runs (
  tenant           INTEGER NOT NULL,
  client           INTEGER NOT NULL,
  first_client_seq INTEGER NOT NULL,
  last_client_seq  INTEGER NOT NULL,
  first_seq        INTEGER NOT NULL,
  PRIMARY KEY (tenant, client, first_client_seq)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS rejections (
  tenant     INTEGER NOT NULL,
  client     INTEGER NOT NULL,
  client_seq INTEGER NOT NULL,
  id         TEXT NOT NULL,
  reason     TEXT NOT NULL,
  at         INTEGER NOT NULL,
  PRIMARY KEY (tenant, client, client_seq)
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS rejections_by_time ON rejections (at);
CREATE TABLE IF NOT EXISTS entities (
  tenant     INTEGER NOT NULL,
  collection TEXT NOT NULL,
  entity_id  TEXT NOT NULL,
  seq        INTEGER NOT NULL,
  deleted    INTEGER NOT NULL,
  json       TEXT NOT NULL,
  PRIMARY KEY (tenant, collection, entity_id)
);
CREATE INDEX IF NOT EXISTS entities_tombstones ON entities (tenant, seq) WHERE deleted = 1;
`;

/**
 * WAL for concurrent readers; synchronous=FULL for what this connection
 * writes (opening, recovery), since an acknowledged action must survive a
 * power loss, not only a process crash (NORMAL skips the WAL fsync on
 * commit). The store's writer thread commits pushes with NORMAL and syncs the
 * WAL itself before acknowledging them (writer.ts), to the same effect.
 */
export function openSchema(db: Database): void {
  db.pragma('journal_mode = WAL');
  db.pragma('synchronous = FULL');
  db.pragma('foreign_keys = OFF');
  db.pragma('busy_timeout = 5000');
  const version = db.pragma('user_version', { simple: true }) as number;
  if (version > SCHEMA_VERSION) {
    throw new Error(`store schema version ${version} is newer than this build understands (${SCHEMA_VERSION})`);
  }
  db.transaction(() => {
    if (version === 1) {
      // Version 1 wrote records inside each push, so its records are complete through the head.
      db.exec('ALTER TABLE tenants ADD COLUMN records_through INTEGER NOT NULL DEFAULT 0');
      db.exec('UPDATE tenants SET records_through = head_seq');
    }
    db.exec(DDL);
    if (version >= 1 && version < 3) {
      // The runs of the stored log: within one client and one seq - client_seq, consecutive client_seqs.
      db.exec(`INSERT INTO client_runs (tenant, client, first_client_seq, last_client_seq, first_seq)
        SELECT tenant, client, MIN(client_seq), MAX(client_seq), MIN(seq) FROM (
          SELECT tenant, client, client_seq, seq, seq - client_seq AS d,
                 client_seq - ROW_NUMBER() OVER (PARTITION BY tenant, client, seq - client_seq ORDER BY client_seq) AS island
          FROM actions)
        GROUP BY tenant, client, d, island`);
      db.exec('DROP INDEX IF EXISTS actions_by_client');
    }
    if (version < SCHEMA_VERSION) db.pragma(`user_version = ${SCHEMA_VERSION}`);
  }).immediate();
}
