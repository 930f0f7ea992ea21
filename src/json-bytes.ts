/**
 * JSON text written as bytes into one reused scratch buffer, for answers rendered from a shard's
 * reply words in one synchronous pass (batch-answer.ts). Building the same text as strings costs a
 * string per value, a rope per answer that the socket write flattens and encodes again, and the
 * garbage of all of it; here each answer is one copy out of the scratch buffer.
 *
 * Only ASCII is written: constant keys, digits, and ids copied from a validated request body.
 * The writer is module state (one thread, one answer at a time): begin(), the writes, finish().
 */

const TWO_32 = 4294967296;

const SCRATCH_BYTES = 64 * 1024;
/** A scratch grown past this for one big answer is handed to that answer instead of kept. */
const SCRATCH_KEEP_BYTES = 1024 * 1024;

let out: Buffer = Buffer.allocUnsafe(SCRATCH_BYTES);
let p = 0;

/** "00" "01" … "99": two digits per division. */
const PAIRS = Buffer.from(Array.from({ length: 100 }, (_, i) => String(i).padStart(2, '0')).join(''), 'latin1');
/** 10^k for k = 0..15, to count the digits of an integer below 2^53. */
const POW10 = Array.from({ length: 16 }, (_, k) => 10 ** k);

/** Constant JSON text as bytes, for bytes(). */
export function ascii(text: string): Uint8Array {
  return Buffer.from(text, 'latin1');
}

/** Starts an answer of at most `bound` bytes. */
export function begin(bound: number): void {
  if (out.length < bound) out = Buffer.allocUnsafe(Math.max(bound, out.length * 2));
  p = 0;
}

/**
 * The answer written since begin(), as its own buffer (the scratch is reused by the next answer).
 * A scratch one big answer grew (a 10,000-op batch, a user with many channels) goes with it, and
 * the next answer starts on a small one again: the thread keeps no more than 1 MiB for good.
 */
export function finish(): Buffer {
  if (out.length > SCRATCH_KEEP_BYTES) {
    const big = out.subarray(0, p);
    out = Buffer.allocUnsafe(SCRATCH_BYTES);
    return big;
  }
  const answer = Buffer.allocUnsafe(p);
  out.copy(answer, 0, 0, p);
  return answer;
}

/** Constant text: a native copy costs less than a loop over 10-40 bytes. */
export function bytes(b: Uint8Array): void {
  out.set(b, p);
  p += b.length;
}

/** `src[start..end)` as is (an id of a request body): at most 20 bytes, where a loop costs less than a native call. */
export function span(src: Uint8Array, start: number, end: number): void {
  const o = out;
  let q = p;
  for (let i = start; i < end; i++) o[q++] = src[i];
  p = q;
}

/** An ASCII string (an id the request named, validated digits). */
export function chars(s: string): void {
  const o = out;
  let q = p;
  for (let i = 0; i < s.length; i++) o[q++] = s.charCodeAt(i);
  p = q;
}

/** A non-negative integer in decimal, as String(v) spells it. */
export function uint(v: number): void {
  if (v < 100_000_000) return small(v);
  if (v > Number.MAX_SAFE_INTEGER) return wide(v);
  // Versions and pins are 13-16 digit timestamps: split once so that both parts are int32 and the
  // digit loops divide integers, not doubles.
  const hi = Math.floor(v / 100_000_000);
  small(hi);
  eight(v - hi * 100_000_000);
}

/** 0 <= v < 10^9 (an int32), no leading zeros. */
function small(v: number): void {
  const o = out;
  let n = 1;
  while (n < 9 && v >= POW10[n]) n++;
  let q = p + n;
  p = q;
  while (v >= 100) {
    const d = (v / 100) | 0;
    const r = (v - d * 100) * 2;
    o[--q] = PAIRS[r + 1];
    o[--q] = PAIRS[r];
    v = d;
  }
  if (v >= 10) {
    o[--q] = PAIRS[v * 2 + 1];
    o[--q] = PAIRS[v * 2];
  } else o[--q] = 48 + v;
}

/** 0 <= v < 10^8 as exactly eight digits, zero-padded. */
function eight(v: number): void {
  const o = out;
  let q = p + 8;
  p = q;
  for (let k = 0; k < 4; k++) {
    const d = (v / 100) | 0;
    const r = (v - d * 100) * 2;
    o[--q] = PAIRS[r + 1];
    o[--q] = PAIRS[r];
    v = d;
  }
}

/** Integers above 2^53 (rounded doubles, not a value the protocol has): as the string would be. */
function wide(v: number): void {
  const t = String(v);
  for (let i = 0; i < t.length; i++) out[p++] = t.charCodeAt(i);
}

/**
 * The unsigned 64-bit value hi * 2^32 + lo in decimal. Above 2^53 it is split once into
 * q * 10^5 + r: (hi mod 10^5) * 2^32 + lo stays below 2^49, so both parts are exact doubles and q
 * is below 2^53 (as ids.ts formatId does, without a string per step).
 */
export function id64(lo: number, hi: number): void {
  if (hi < 0x200000) return uint(hi * TWO_32 + lo);
  const qh = Math.floor(hi / 100000);
  const cur = (hi - qh * 100000) * TWO_32 + lo;
  const ql = Math.floor(cur / 100000);
  uint(qh * TWO_32 + ql);
  let r = cur - ql * 100000;
  // five digits, zero-padded
  for (let k = p + 4; k >= p; k--) {
    const d = Math.floor(r / 10);
    out[k] = 48 + (r - d * 10);
    r = d;
  }
  p += 5;
}
