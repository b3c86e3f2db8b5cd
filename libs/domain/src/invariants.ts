/**
 * Invariant checks on records (R1–R4 in docs/invariants.md), for tests and
 * for stores that want to verify what they load. Each returns the violations
 * as readable strings; an empty list means the record is sound.
 */
import { bagIsEmpty, type EntityRec } from './entity-record.js';
import { compareStamps } from './order.js';

export function checkRecord(rec: EntityRec): string[] {
  const out: string[] = [];
  const where = `${rec.collection}/${rec.id}`;
  if (rec.deleted !== null && (!bagIsEmpty(rec.fields) || rec.held !== null)) {
    out.push(`R1 ${where}: a tombstone keeps fields`);
  }
  const created = rec.created;
  for (const [field, cell] of Object.entries(rec.held ?? {})) {
    if (created !== null && compareStamps(cell, created) >= 0)
      out.push(`R2 ${where}: held ${field} is not before the create`);
    if (rec.fields[field] !== undefined) out.push(`R2 ${where}: ${field} is both held and live`);
  }
  for (const [field, cell] of Object.entries(rec.fields)) {
    if (created === null && rec.custom === null) out.push(`R3 ${where}: field ${field} without a create`);
    else if (created !== null && compareStamps(cell, created) < 0)
      out.push(`R3 ${where}: field ${field} precedes the create`);
    if (cell.hlc > rec.hlc) out.push(`R4 ${where}: field ${field} is newer than the record's hlc`);
  }
  const live = Object.keys(rec.fields).sort();
  if (rec.custom === null && JSON.stringify(live) !== JSON.stringify(Object.keys(rec.values).sort())) {
    out.push(`R6 ${where}: values and fields name different fields`);
  }
  for (const name of live) {
    if (rec.values[name] !== rec.fields[name]?.value) out.push(`R6 ${where}: value of ${name} is out of step`);
  }
  if (rec.version < 0 || !Number.isInteger(rec.version)) out.push(`R4 ${where}: version ${rec.version} is not a count`);
  return out;
}
