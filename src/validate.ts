/**
 * Checks that the schemas cannot express: ids above 2^64-1 and ids that must be >= 1.
 * On success the halves are in `parsed` (valid until the next parse).
 */
import { ApiError } from './errors.js';
import { parseId, parsed } from './ids.js';

export { parsed };

/** Whether `value` is an id >= 1 (its halves then in `parsed`); for loops that name the field only on error. */
export function parseUserId(value: unknown): boolean {
  return parseId(value) && (parsed.lo !== 0 || parsed.hi !== 0);
}

/** Parses an id that must be >= 1 (users, channels, mentioned messages). */
export function requireId(value: unknown, field: string): void {
  if (!parseUserId(value)) {
    throw new ApiError('INVALID_ID', `${field} must be a decimal id from 1 to 18446744073709551615`);
  }
}

/** Parses an id that may be 0 (a message id of "0" means nothing read). */
export function requireIdOrZero(value: unknown, field: string): void {
  if (!parseId(value)) {
    throw new ApiError('INVALID_ID', `${field} must be a decimal id from 0 to 18446744073709551615`);
  }
}
