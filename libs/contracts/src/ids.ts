/**
 * Identifiers of DESIGN §2 as branded types, so a TenantId can never be passed
 * where a ClientId is meant. Tenants and collections are subject tokens; entity
 * ids never go into a subject.
 */
import { z } from 'zod';

export const TENANT_PATTERN = /^[a-z0-9][a-z0-9_-]{0,63}$/;
export const COLLECTION_PATTERN = /^[A-Za-z_][A-Za-z0-9_]{0,63}$/;
/** App names share the tenant alphabet: they become one token of `ferry.<app>.*`. */
export const APP_PATTERN = TENANT_PATTERN;
export const MAX_ENTITY_ID_LENGTH = 256;
export const MAX_FIELD_NAME_LENGTH = 128;
/** `wallMillis * 4096 + counter` must stay a safe integer. */
export const MAX_HLC = Number.MAX_SAFE_INTEGER;

export const tenantIdSchema = z
  .string()
  .regex(TENANT_PATTERN, 'must match [a-z0-9][a-z0-9_-]{0,63}')
  .brand<'TenantId'>();
export type TenantId = z.infer<typeof tenantIdSchema>;

export const appNameSchema = z.string().regex(APP_PATTERN, 'must match [a-z0-9][a-z0-9_-]{0,63}').brand<'AppName'>();
export type AppName = z.infer<typeof appNameSchema>;

/** uuidv7 in practice, but any uuid is accepted so a client may be named in config. */
export const clientIdSchema = z.uuid('must be a uuid').brand<'ClientId'>();
export type ClientId = z.infer<typeof clientIdSchema>;

export const actionIdSchema = z.uuid({ version: 'v7', message: 'must be a uuidv7' }).brand<'ActionId'>();
export type ActionId = z.infer<typeof actionIdSchema>;

export const collectionNameSchema = z
  .string()
  .regex(COLLECTION_PATTERN, 'must match [A-Za-z_][A-Za-z0-9_]{0,63}')
  .brand<'CollectionName'>();
export type CollectionName = z.infer<typeof collectionNameSchema>;

/** A lone surrogate half: UTF-8, and so SQLite's text, has no way to keep it (it would become U+FFFD). */
const LONE_SURROGATE = /\p{Cs}/u;

/** Text that survives storage as UTF-8 unchanged: two ids that differ only in lone surrogates would collide. */
export function isWellFormedText(text: string): boolean {
  return !LONE_SURROGATE.test(text);
}

export const WELL_FORMED_MESSAGE = 'must be well-formed Unicode (a lone surrogate cannot be stored)';

export const entityIdSchema = z
  .string()
  .min(1, 'must not be empty')
  .max(MAX_ENTITY_ID_LENGTH, `must be at most ${MAX_ENTITY_ID_LENGTH} characters`)
  .refine(isWellFormedText, WELL_FORMED_MESSAGE)
  .brand<'EntityId'>();
export type EntityId = z.infer<typeof entityIdSchema>;

export const hlcSchema = z
  .number()
  .int('must be an integer')
  .nonnegative('must not be negative')
  .max(MAX_HLC, 'must be a safe integer')
  .brand<'Hlc'>();
export type Hlc = z.infer<typeof hlcSchema>;

/** Server-assigned per-tenant sequence; 0 means "nothing yet". */
export const seqSchema = z.number().int('must be an integer').nonnegative('must not be negative');
export type Seq = z.infer<typeof seqSchema>;

export const clientSeqSchema = z.number().int('must be an integer').min(1, 'must be at least 1');

export const fieldNameSchema = z
  .string()
  .min(1, 'must not be empty')
  .max(MAX_FIELD_NAME_LENGTH, `must be at most ${MAX_FIELD_NAME_LENGTH} characters`)
  // Assigning "__proto__" on a plain object changes its prototype instead of adding a field.
  .refine((name) => name !== '__proto__', 'must not be "__proto__"');

/** A field value: any JSON value. */
export const jsonValueSchema = z.json();
/** A JSON object (a config file read before it is merged and checked as a whole). */
export const jsonObjectSchema = z.record(z.string(), jsonValueSchema);
export type JsonValue = z.infer<typeof jsonValueSchema>;

/**
 * Field name → JSON value. zod's record silently drops an own "__proto__" key,
 * which would lose data without a word, so the raw input is checked first.
 */
export const fieldsSchema = z.preprocess(
  (raw, ctx) => {
    const path = findProtoKey(raw, [], 0);
    if (path !== null) ctx.issues.push({ code: 'custom', message: 'must not be "__proto__"', path, input: raw });
    return raw;
  },
  z.record(fieldNameSchema, jsonValueSchema),
);

/** The path of the first own "__proto__" key at any depth (zod drops them silently). */
function findProtoKey(value: unknown, path: PropertyKey[], depth: number): PropertyKey[] | null {
  if (typeof value !== 'object' || value === null || depth > 64) return null;
  if (!Array.isArray(value) && Object.hasOwn(value, '__proto__')) return [...path, '__proto__'];
  for (const [key, inner] of Object.entries(value)) {
    const found = findProtoKey(inner, [...path, Array.isArray(value) ? Number(key) : key], depth + 1);
    if (found !== null) return found;
  }
  return null;
}
export type Fields = z.infer<typeof fieldsSchema>;
