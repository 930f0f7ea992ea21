/**
 * Ids as BigInt: the schema has checked the decimal pattern; this checks the range and gives the
 * same INVALID_ID messages as src/validate.ts.
 */
import { ApiError } from '../../src/errors.js';

const MAX_U64 = (1n << 64n) - 1n;
const CANONICAL = /^(0|[1-9][0-9]{0,19})$/;

function parse(value: unknown): bigint | undefined {
  if (typeof value !== 'string' || !CANONICAL.test(value)) return undefined;
  const id = BigInt(value);
  return id <= MAX_U64 ? id : undefined;
}

/** An id that must be >= 1 (users, channels, mentioned messages). */
export function requireId(value: unknown, field: string): bigint {
  const id = parse(value);
  if (id === undefined || id === 0n) {
    throw new ApiError('INVALID_ID', `${field} must be a decimal id from 1 to 18446744073709551615`);
  }
  return id;
}

/** An id that may be 0 (a message id of "0" means nothing read). */
export function requireIdOrZero(value: unknown, field: string): bigint {
  const id = parse(value);
  if (id === undefined) throw new ApiError('INVALID_ID', `${field} must be a decimal id from 0 to 18446744073709551615`);
  return id;
}

/** The uint32 halves the store records use. */
export function lo32(id: bigint): number {
  return Number(id & 0xffffffffn);
}
export function hi32(id: bigint): number {
  return Number(id >> 32n);
}
export function fromHalves(lo: number, hi: number): bigint {
  return (BigInt(hi) << 32n) | BigInt(lo);
}
