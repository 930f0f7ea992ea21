/**
 * The service's input rules, checked before anything is sent: a coalesced batch is rejected whole
 * by one bad op, so a bad input must fail its own call here and never reach another caller's batch.
 */
import { InvalidRequestError } from './errors.js';
import type { Id } from './types.js';

const ID = /^(0|[1-9][0-9]{0,19})$/;
const MAX_U64 = '18446744073709551615';
export const MAX_I32 = 0x7fffffff;
export const MAX_U32 = 0xffffffff;
export const MAX_COUNT = 1000;
export const MAX_BATCH_OPS = 10000;
export const MAX_FANOUT_USERS = 10000;
export const MAX_BULK_ACKS = 1000;
/** largest `limit` of one page of the list route */
export const MAX_PAGE = 10000;

type InputCode = 'INVALID_ID' | 'INVALID_BODY' | 'INVALID_QUERY' | 'EMPTY_PATCH';

function invalid(code: InputCode, message: string): InvalidRequestError {
  return new InvalidRequestError({ code, message, status: 400, applied: false });
}

/** The canonical decimal string of an id; `min` 1 for user and channel ids (and mention message ids). */
/**
 * The canonical decimal string of an id; `min` 1 for user and channel ids (and mention message ids).
 * `code`: what the server would answer for it (INVALID_QUERY for an id in the query string).
 */
export function idText(value: Id, name: string, min: 0 | 1 = 1, code: InputCode = 'INVALID_ID'): string {
  let text: string;
  if (typeof value === 'bigint') text = value.toString();
  else if (typeof value === 'string') text = value;
  else throw invalid(code, `${name} must be a decimal string or a bigint`);
  if (!ID.test(text) || (text.length === 20 && text > MAX_U64)) {
    throw invalid(code, `${name} must be a canonical unsigned 64-bit decimal string, got ${JSON.stringify(text)}`);
  }
  if (min === 1 && text === '0') throw invalid(code, `${name} must be at least 1`);
  return text;
}

export function intIn(value: unknown, name: string, min: number, max: number, code: InputCode = 'INVALID_BODY'): number {
  if (typeof value !== 'number' || !Number.isInteger(value) || value < min || value > max) {
    throw invalid(code, `${name} must be an integer from ${min} to ${max}`);
  }
  return value;
}

export function bool(value: unknown, name: string): boolean {
  if (typeof value !== 'boolean') throw invalid('INVALID_BODY', `${name} must be a boolean`);
  return value;
}

export function listOf<T>(value: unknown, name: string, min: number, max: number): T[] {
  if (!Array.isArray(value) || value.length < min || value.length > max) {
    throw invalid('INVALID_BODY', `${name} must be a list of ${min} to ${max} items`);
  }
  return value as T[];
}

export function emptyPatch(): InvalidRequestError {
  return invalid('EMPTY_PATCH', 'a patch needs at least one of lastPinTimestamp, flags');
}
