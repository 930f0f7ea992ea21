/**
 * JSON answers written straight from a shard's reply buffer, without building a JS object per
 * read state for a serializer to walk.
 *
 * Why by hand: a batch of 100 ops or a connect of a user with 300 channels used to build one
 * object per read state (plus one per batch result) only for fast-json-stringify to turn it back
 * into text; that was a fifth of the main thread's CPU per batch op and most of what the main
 * thread allocated (PERFORMANCE.md, the /v1/batch profile). Every value here is either a
 * canonical decimal id (validated digits, or digits we format) or a number, so nothing needs
 * escaping, and the field order is the one the route schemas document. The route schemas still
 * describe these bodies (OpenAPI, and fastify's serializer for every other answer); the tests
 * compare every rendering with JSON.parse against the fields in the buffer.
 */
import {
  M_DEL_COUNT,
  M_FULL,
  M_MORE,
  M_RS_COUNT,
  M_VER_HI,
  M_VER_LO,
  SUM_CHANNELS_WITH_MENTIONS,
  SUM_MENTIONS_HI,
  SUM_MENTIONS_LO,
  SUM_READ_STATES,
  SUM_VER_HI,
  SUM_VER_LO,
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
  join53,
} from '../workers/protocol.js';
import { formatId } from './ids.js';

/** The content type of every rendered body (fastify sends a string with it as is). */
export const JSON_TYPE = 'application/json; charset=utf-8';

/**
 * One read state as a JSON object. `userJson` is the user id already in quotes, so a user's many
 * read states share one string. `channelId` is the channel as the request named it, when it did:
 * ids are validated canonical (no sign, no leading zero), so the request's text is what formatting
 * the record's channel would give, and formatting a 64-bit id is the costliest part of a rendering.
 */
export function renderReadState(userJson: string, channelId: string | null, b: Uint32Array, at: number): string {
  return (
    '{"user_id":' +
    userJson +
    ',"channel_id":"' +
    (channelId ?? formatId(b[at + R_CHAN_LO], b[at + R_CHAN_HI])) +
    '","last_message_id":"' +
    formatId(b[at + R_MSG_LO], b[at + R_MSG_HI]) +
    '","mention_count":' +
    b[at + R_MENTION] +
    ',"last_pin_timestamp":' +
    join53(b[at + R_PIN_LO], b[at + R_PIN_HI]) +
    ',"flags":' +
    b[at + R_FLAGS] +
    ',"version":' +
    join53(b[at + R_VER_LO], b[at + R_VER_HI]) +
    '}'
  );
}

/** The version in an OP_GET_ALL answer's meta record at `at`. */
export function metaVersion(b: Uint32Array, at: number): number {
  return join53(b[at + M_VER_LO], b[at + M_VER_HI]);
}

/**
 * `{"user_id","version","full","read_states":[…],"deleted_channel_ids"?:[…],"next_after"?}` from
 * an OP_GET_ALL answer whose meta record is at `at` (protocol.ts): the read states follow it, then
 * the deleted channel ids.
 */
export function renderUserReadStates(userId: string, b: Uint32Array, at: number): string {
  const userJson = '"' + userId + '"';
  const full = b[at + M_FULL] === 1;
  const n = b[at + M_RS_COUNT];
  let out = '{"user_id":' + userJson + ',"version":' + metaVersion(b, at) + ',"full":' + full + ',"read_states":[';
  const first = at + RS_WORDS;
  for (let i = 0; i < n; i++) {
    if (i > 0) out += ',';
    out += renderReadState(userJson, null, b, first + i * RS_WORDS);
  }
  out += ']';
  if (!full) {
    out += ',"deleted_channel_ids":[';
    const dels = b[at + M_DEL_COUNT];
    const d = first + n * RS_WORDS;
    for (let i = 0; i < dels; i++) {
      if (i > 0) out += ',';
      out += '"' + formatId(b[d + i * 2], b[d + i * 2 + 1]) + '"';
    }
    out += ']';
  }
  if (b[at + M_MORE] === 1 && n > 0) {
    const last = first + (n - 1) * RS_WORDS;
    out += ',"next_after":"' + formatId(b[last + R_CHAN_LO], b[last + R_CHAN_HI]) + '"';
  }
  return out + '}';
}

/** `{"user_id","version","read_states","mention_total","channels_with_mentions"}` from an OP_SUMMARY record. */
export function renderSummary(userId: string, b: Uint32Array, at: number): string {
  return (
    '{"user_id":"' +
    userId +
    '","version":' +
    join53(b[at + SUM_VER_LO], b[at + SUM_VER_HI]) +
    ',"read_states":' +
    b[at + SUM_READ_STATES] +
    ',"mention_total":' +
    join53(b[at + SUM_MENTIONS_LO], b[at + SUM_MENTIONS_HI]) +
    ',"channels_with_mentions":' +
    b[at + SUM_CHANNELS_WITH_MENTIONS] +
    '}'
  );
}

/** One entry of a /v1/batch answer: the status, and the read state (or summary) or the error code. */
export function renderBatchResult(status: number, readState: string | null, error: string | null, applied?: false | null, summary: string | null = null): string {
  if (summary !== null) return '{"status":' + status + ',"summary":' + summary + '}';
  if (readState !== null) return '{"status":' + status + ',"read_state":' + readState + '}';
  if (error !== null) return '{"status":' + status + ',"error":"' + error + '"' + (applied === undefined ? '}' : ',"applied":' + applied + '}');
  return '{"status":' + status + '}';
}

/** Joins rendered items into `{"<key>":[…]}`. */
export function renderList(key: string, items: string[]): string {
  return '{"' + key + '":[' + items.join(',') + ']}';
}
