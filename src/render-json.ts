/**
 * JSON answers written as bytes straight from a shard's reply buffer: no JS object per read state
 * for a serializer to walk, and no string per id or per read state either.
 *
 * Why by hand: a connect of a user with 300 channels, or a batch of 100 ops, used to build one
 * object per read state (plus one per batch result) only for fast-json-stringify to turn it back
 * into text. Rendering to strings instead still made two id strings and a dozen string pieces per
 * read state: at a few thousand connects a second the HTTP thread ran ~24 scavenges a second, 3 ms
 * each (PERFORMANCE.md). Here every answer is written into one grow-only scratch Buffer, digits
 * computed from the words, and copied out once (the socket keeps what it is given until it is
 * written, so the scratch itself cannot be handed over). Every value is a canonical decimal id
 * (validated request text, or digits computed here) or an unsigned integer, so nothing needs
 * escaping; the field order is the one the route schemas document. The schemas still describe
 * these bodies (OpenAPI); the tests compare every rendering, through JSON.parse, with a reference.
 */
import {
  R_CHAN_HI,
  R_CHAN_LO,
  R_FLAGS,
  R_MENTION,
  R_MSG_HI,
  R_MSG_LO,
  R_PIN_HI,
  R_PIN_LO,
  R_VER_HI,
  R_VER_LO,
  RS_WORDS,
} from '../workers/protocol.js';

/** The content type of every rendered body (fastify sends a Buffer with it as is). */
export const JSON_TYPE = 'application/json; charset=utf-8';

const TWO_32 = 4294967296;

let out = Buffer.allocUnsafe(64 * 1024);
let pos = 0;

/** Rare path: the answer outgrew the scratch (a batch of 10,000 ops is ~2 MB). */
function grow(need: number): void {
  let size = out.length * 2;
  while (size < pos + need) size *= 2;
  const next = Buffer.allocUnsafe(size);
  out.copy(next, 0, 0, pos);
  out = next;
}

/** Request text (ids, error codes: ASCII) or a literal fragment. */
function text(s: string): void {
  if (pos + s.length > out.length) grow(s.length);
  pos += out.write(s, pos, 'latin1');
}

/** An unsigned integer below 2^53, as decimal digits. */
function uint(n: number): void {
  let len = 1;
  for (let p = 10; p <= n; p *= 10) len++;
  if (pos + len > out.length) grow(len);
  let at = pos + len;
  while (n >= 10) {
    const q = Math.floor(n / 10);
    out[--at] = 48 + (n - q * 10);
    n = q;
  }
  out[--at] = 48 + n;
  pos += len;
}

/** Exactly five digits, zero-padded. */
function five(n: number): void {
  for (let i = 4; i >= 0; i--) {
    const q = Math.floor(n / 10);
    out[pos + i] = 48 + (n - q * 10);
    n = q;
  }
  pos += 5;
}

/** Five-digit groups of the id being written, least significant first. */
const groups = new Float64Array(4);

/**
 * The unsigned 64-bit hi * 2^32 + lo in decimal. Divided by 10^5 while it does not fit 2^53: each
 * step keeps every intermediate below 10^5 * 2^32 < 2^53, so the double arithmetic is exact.
 */
function id64(lo: number, hi: number): void {
  let n = 0;
  while (hi >= 0x200000) {
    const qh = Math.floor(hi / 100000);
    const cur = (hi - qh * 100000) * TWO_32 + lo;
    const ql = Math.floor(cur / 100000);
    groups[n++] = cur - ql * 100000;
    hi = qh;
    lo = ql;
  }
  if (pos + 25 > out.length) grow(25);
  uint(hi * TWO_32 + lo);
  while (n > 0) five(groups[--n]);
}

/** One read state record at b[at..]; `channelId`: the channel as the request named it, if it did. */
function readState(userId: string, channelId: string | null, b: Uint32Array, at: number): void {
  text('{"user_id":"');
  text(userId);
  text('","channel_id":"');
  if (channelId !== null) text(channelId);
  else id64(b[at + R_CHAN_LO], b[at + R_CHAN_HI]);
  text('","last_message_id":"');
  id64(b[at + R_MSG_LO], b[at + R_MSG_HI]);
  text('","mention_count":');
  uint(b[at + R_MENTION]);
  text(',"last_pin_timestamp":');
  uint(b[at + R_PIN_HI] * TWO_32 + b[at + R_PIN_LO]);
  text(',"flags":');
  uint(b[at + R_FLAGS]);
  text(',"version":');
  uint(b[at + R_VER_HI] * TWO_32 + b[at + R_VER_LO]);
  text('}');
}

/** The answer written so far, copied out of the scratch. */
function take(): Buffer {
  const body = Buffer.allocUnsafe(pos);
  out.copy(body, 0, 0, pos);
  pos = 0;
  return body;
}

/**
 * One read state. `channelId` is the channel as the request named it: ids are validated canonical
 * (no sign, no leading zero), so it is the text the record's channel would give.
 */
export function renderReadState(userId: string, channelId: string | null, b: Uint32Array, at: number): Buffer {
  pos = 0;
  readState(userId, channelId, b, at);
  return take();
}

/** `{"user_id":…,"read_states":[…]}` for `n` consecutive read-state records from `at`. */
export function renderUserReadStates(userId: string, b: Uint32Array, at: number, n: number): Buffer {
  pos = 0;
  text('{"user_id":"');
  text(userId);
  text('","read_states":[');
  for (let i = 0; i < n; i++) {
    if (i > 0) text(',');
    readState(userId, null, b, at + i * RS_WORDS);
  }
  text(']}');
  return take();
}

/**
 * Results gathered in request order: op i's status is `statuses[i]`, its error code (if any)
 * `errors[i]`, and its read state (if `hasReadState[i]`) the RS_WORDS words at `words[i * RS_WORDS]`.
 * `shape` 'batch' renders `{"results":[{"status":…,"read_state"|"error":…}]}`, 'read_states' renders
 * `{"read_states":[…]}` (every op has its read state).
 */
export function renderGathered(
  shape: 'batch' | 'read_states',
  userIds: readonly string[],
  channelIds: readonly string[],
  statuses: Uint16Array,
  errors: readonly (string | undefined)[],
  hasReadState: Uint8Array,
  words: Uint32Array,
): Buffer {
  pos = 0;
  text(shape === 'batch' ? '{"results":[' : '{"read_states":[');
  for (let i = 0; i < statuses.length; i++) {
    if (i > 0) text(',');
    if (shape === 'read_states') {
      readState(userIds[i], channelIds[i], words, i * RS_WORDS);
      continue;
    }
    text('{"status":');
    uint(statuses[i]);
    if (hasReadState[i] === 1) {
      text(',"read_state":');
      readState(userIds[i], channelIds[i], words, i * RS_WORDS);
    } else if (errors[i] !== undefined) {
      text(',"error":"');
      text(errors[i]!);
      text('"');
    }
    text('}');
  }
  text(']}');
  return take();
}
