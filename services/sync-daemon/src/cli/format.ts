/**
 * Human-readable text for sync events, conflicts and status, shared by
 * `ferry watch`, `ferry status` and `ferry demo`. Pure: no I/O, no clock
 * (times are passed in).
 */
import type { ConflictRecord, ConflictSide, StatusReply, SyncEvent } from '@ferry/contracts';

/** `12:03:04.120` in local time. */
export function clockTime(ms: number): string {
  const d = new Date(ms);
  const pad = (n: number, w = 2) => String(n).padStart(w, '0');
  return `${pad(d.getHours())}:${pad(d.getMinutes())}:${pad(d.getSeconds())}.${pad(d.getMilliseconds(), 3)}`;
}

export function ago(ms: number | null, now: number): string {
  if (ms === null) return 'never';
  const s = Math.max(0, Math.round((now - ms) / 1000));
  if (s < 60) return `${s} s ago`;
  if (s < 3600) return `${Math.round(s / 60)} min ago`;
  return `${Math.round(s / 3600)} h ago`;
}

const plural = (n: number, one: string, many = `${one}s`) => `${n} ${n === 1 ? one : many}`;

function shortValue(v: unknown): string {
  const text = JSON.stringify(v);
  if (text === undefined) return '';
  return text.length > 40 ? `${text.slice(0, 37)}…` : text;
}

function sideText(side: ConflictSide | null): string {
  if (side === null) return 'nothing';
  const who = `client ${side.clientId.slice(-6)}`;
  if (side.deleted === true) return `delete (${who})`;
  return side.value === undefined ? `(${who})` : `${shortValue(side.value)} (${who})`;
}

/** `notes/45.title: "Groceries" (client …a1b2c3) beat "Shopping" (client …d4e5f6) [lww]` */
export function describeConflict(c: ConflictRecord): string {
  const where = `${c.collection}/${c.entityId}${c.field === null ? '' : `.${c.field}`}`;
  const reason = c.reason === undefined ? '' : ` — ${c.reason}`;
  if (c.resolution === 'rejected') return `${where}: ${sideText(c.loser)} was rejected by the server${reason}`;
  return `${where}: ${sideText(c.winner)} beat ${sideText(c.loser)} [${c.resolution}]${reason}`;
}

/** The details of one event, after its type. */
export function describeEvent(e: SyncEvent): string {
  switch (e.type) {
    case 'capture':
      return `${e.op} ${e.collection}/${e.entityId}`;
    case 'push-started':
      return `${plural(e.count, 'action')}, ${e.bytes} B`;
    case 'push-acked':
      return `${e.accepted} accepted, ${e.duplicate} duplicate, ${e.rejected} rejected · head ${e.headSeq} · ${Math.round(e.latencyMs)} ms`;
    case 'push-failed':
      return `${plural(e.count, 'action')}: ${e.code} ${e.message}`;
    case 'pull-received':
      return `${plural(e.count, 'action')}, seq ${e.since} → ${e.next}${e.more ? ' (more to come)' : ''}`;
    case 'applied':
      return `${plural(e.count, 'action')}, ${plural(e.entities, 'entity', 'entities')} changed · cursor ${e.cursor}`;
    case 'bootstrap-started':
      return `${e.reason} at cursor ${e.cursor}`;
    case 'snapshot-applied':
      return `${plural(e.entities, 'entity', 'entities')} at seq ${e.seq}${e.more ? ' (more pages)' : ''}`;
    case 'conflict':
      return describeConflict(e.conflict);
    case 'rejected':
      return `${e.collection}/${e.entityId}: ${e.reason}`;
    case 'online':
      return 'the sync API answers';
    case 'offline':
      return e.reason;
    case 'error':
      return `${e.code}: ${e.message}`;
    case 'dead-lettered':
      return `${e.code}: ${e.reason} (source ${e.sourceRef})`;
  }
}

/** `online · pending 3 · cursor 128 · lag 2 · last sync 3 s ago` */
export function statusLine(s: StatusReply, now: number): string {
  return [
    s.online ? 'online' : 'OFFLINE',
    `pending ${s.pending}`,
    `cursor ${s.cursor}`,
    `lag ${s.lag}`,
    `last sync ${ago(s.lastSyncAt, now)}`,
  ].join(' · ');
}
