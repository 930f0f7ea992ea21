/**
 * Answers with many read states written as bytes (json-bytes.ts) straight from a shard's reply
 * words: a user's read states (connect, delta sync) here, a /v1/batch answer in batch-answer.ts.
 * Built as strings, each cost a string per value and a rope the socket write flattens and encodes
 * again. The text is what render-json.ts's string renderers give, byte for byte (the tests compare
 * the two); those stay for answers of one read state.
 */
import { ListMetaWord, RsWord, join53 } from '../workers/protocol.js';
import { ascii, begin, bytes, chars, finish, id64, uint } from './json-bytes.js';

/** The longest digits: an id, any value of two words, one word. */
export const ID_DIGITS = 20;
export const WIDE_DIGITS = 20;
export const WORD_DIGITS = 10;

const RS_MESSAGE = ascii('","last_message_id":"');
const RS_MENTIONS = ascii('","mention_count":');
const RS_PIN = ascii(',"last_pin_timestamp":');
const RS_FLAGS = ascii(',"flags":');
const RS_VERSION = ascii(',"version":');
const CLOSE = ascii('}');

/** Bytes readStateTail() writes at most. */
export const RS_TAIL_MAX =
  RS_MESSAGE.length + ID_DIGITS + RS_MENTIONS.length + WORD_DIGITS + RS_PIN.length + WIDE_DIGITS + RS_FLAGS.length + WORD_DIGITS + RS_VERSION.length + WIDE_DIGITS + CLOSE.length;

/**
 * A read state's fields after its channel id, from the record at `b[r]`: from the channel's
 * closing quote to the object's closing brace.
 */
export function readStateTail(b: Uint32Array, r: number): void {
  bytes(RS_MESSAGE);
  id64(b[r + RsWord.MsgLo], b[r + RsWord.MsgHi]);
  bytes(RS_MENTIONS);
  uint(b[r + RsWord.Mention]);
  bytes(RS_PIN);
  uint(join53(b[r + RsWord.PinLo], b[r + RsWord.PinHi]));
  bytes(RS_FLAGS);
  uint(b[r + RsWord.Flags]);
  bytes(RS_VERSION);
  uint(join53(b[r + RsWord.VerLo], b[r + RsWord.VerHi]));
  bytes(CLOSE);
}

const U_USER = ascii('{"user_id":"');
const U_VERSION = ascii('","version":');
const U_FULL = ascii(',"full":true,"read_states":[');
const U_DELTA = ascii(',"full":false,"read_states":[');
const U_RS_CHANNEL = ascii('","channel_id":"');
const U_DELETED = ascii('],"deleted_channel_ids":[');
const U_LIST_END = ascii(']');
const U_NEXT = ascii(',"next_after":"');
const QUOTE = ascii('"');
const COMMA = ascii(',');
const QUOTE_COMMA_QUOTE = ascii('","');
const U_END = ascii('}');
const QUOTED_END = ascii('"}');

/**
 * `{"user_id","version","full","read_states":[…],"deleted_channel_ids"?:[…],"next_after"?}` from
 * an Opcode.GetAll answer whose meta record is at `at` (protocol.ts): the read states follow it,
 * then the deleted channel ids. `userId` is the validated id of the request (digits only).
 */
export function userReadStates(userId: string, b: Uint32Array, at: number): Buffer {
  const full = b[at + ListMetaWord.Full] === 1;
  const n = b[at + ListMetaWord.RsCount];
  const dels = full ? 0 : b[at + ListMetaWord.DelCount];
  const rsMax = U_USER.length + ID_DIGITS + U_RS_CHANNEL.length + ID_DIGITS + RS_TAIL_MAX + COMMA.length;
  begin(128 + 2 * ID_DIGITS + n * rsMax + dels * (ID_DIGITS + 3) + U_DELETED.length + U_NEXT.length);
  bytes(U_USER);
  chars(userId);
  bytes(U_VERSION);
  uint(join53(b[at + ListMetaWord.VerLo], b[at + ListMetaWord.VerHi]));
  bytes(full ? U_FULL : U_DELTA);
  const first = at + RsWord.Size;
  for (let i = 0; i < n; i++) {
    const r = first + i * RsWord.Size;
    if (i > 0) bytes(COMMA);
    bytes(U_USER);
    chars(userId);
    bytes(U_RS_CHANNEL);
    id64(b[r + RsWord.ChanLo], b[r + RsWord.ChanHi]);
    readStateTail(b, r);
  }
  if (!full) {
    bytes(U_DELETED);
    const d = first + n * RsWord.Size;
    for (let i = 0; i < dels; i++) {
      bytes(i > 0 ? QUOTE_COMMA_QUOTE : QUOTE);
      id64(b[d + i * 2], b[d + i * 2 + 1]);
    }
    if (dels > 0) bytes(QUOTE);
  }
  bytes(U_LIST_END);
  if (b[at + ListMetaWord.More] === 1 && n > 0) {
    const last = first + (n - 1) * RsWord.Size;
    bytes(U_NEXT);
    id64(b[last + RsWord.ChanLo], b[last + RsWord.ChanHi]);
    bytes(QUOTED_END);
  } else bytes(U_END);
  return finish();
}
