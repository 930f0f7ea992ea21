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
import { ListMetaWord, RsWord, SummaryWord, join53 } from '../workers/protocol.js';
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
    (channelId ?? formatId(b[at + RsWord.ChanLo], b[at + RsWord.ChanHi])) +
    '","last_message_id":"' +
    formatId(b[at + RsWord.MsgLo], b[at + RsWord.MsgHi]) +
    '","mention_count":' +
    b[at + RsWord.Mention] +
    ',"last_pin_timestamp":' +
    join53(b[at + RsWord.PinLo], b[at + RsWord.PinHi]) +
    ',"flags":' +
    b[at + RsWord.Flags] +
    ',"version":' +
    join53(b[at + RsWord.VerLo], b[at + RsWord.VerHi]) +
    '}'
  );
}

/** The version in an Opcode.GetAll answer's meta record at `at`. */
export function metaVersion(b: Uint32Array, at: number): number {
  return join53(b[at + ListMetaWord.VerLo], b[at + ListMetaWord.VerHi]);
}

/**
 * `{"user_id","version","full","read_states":[…],"deleted_channel_ids"?:[…],"next_after"?}` from
 * an Opcode.GetAll answer whose meta record is at `at` (protocol.ts): the read states follow it, then
 * the deleted channel ids.
 */
export function renderUserReadStates(userId: string, b: Uint32Array, at: number): string {
  const userJson = '"' + userId + '"';
  const full = b[at + ListMetaWord.Full] === 1;
  const n = b[at + ListMetaWord.RsCount];
  let out = '{"user_id":' + userJson + ',"version":' + metaVersion(b, at) + ',"full":' + full + ',"read_states":[';
  const first = at + RsWord.Size;
  for (let i = 0; i < n; i++) {
    if (i > 0) out += ',';
    out += renderReadState(userJson, null, b, first + i * RsWord.Size);
  }
  out += ']';
  if (!full) {
    out += ',"deleted_channel_ids":[';
    const dels = b[at + ListMetaWord.DelCount];
    const d = first + n * RsWord.Size;
    for (let i = 0; i < dels; i++) {
      if (i > 0) out += ',';
      out += '"' + formatId(b[d + i * 2], b[d + i * 2 + 1]) + '"';
    }
    out += ']';
  }
  if (b[at + ListMetaWord.More] === 1 && n > 0) {
    const last = first + (n - 1) * RsWord.Size;
    out += ',"next_after":"' + formatId(b[last + RsWord.ChanLo], b[last + RsWord.ChanHi]) + '"';
  }
  return out + '}';
}

/** `{"user_id","version","read_states","mention_total","channels_with_mentions"}` from an Opcode.Summary record. */
export function renderSummary(userId: string, b: Uint32Array, at: number): string {
  return (
    '{"user_id":"' +
    userId +
    '","version":' +
    join53(b[at + SummaryWord.VerLo], b[at + SummaryWord.VerHi]) +
    ',"read_states":' +
    b[at + SummaryWord.ReadStates] +
    ',"mention_total":' +
    join53(b[at + SummaryWord.MentionsLo], b[at + SummaryWord.MentionsHi]) +
    ',"channels_with_mentions":' +
    b[at + SummaryWord.ChannelsWithMentions] +
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
