/**
 * The body of POST /v1/batch, parsed from its bytes straight into the operation list
 * (workers/op-list.ts): no JS object or string per operation (the answer echoes each op's ids as
 * byte ranges of the body), and the schema checked while the bytes are read instead of by a
 * second walk over a parsed tree.
 *
 * Two readers, one meaning:
 * - the fast reader takes the shape clients send (`{"ops":[{...},...]}` with plain strings,
 *   non-negative integers and booleans, any whitespace, keys in any order). On anything else (an
 *   escape, a number such as 1e3 or 2.0, a duplicate or unknown key, a schema violation, broken
 *   JSON) it gives up, and
 * - the exact reader decides: JSON.parse and the route's JSON schema (ajv, the options fastify
 *   uses) produce the same answer as any other route's validation, error codes included.
 * Both fill the same staging columns, and one function (encode) applies the checks a schema cannot
 * express (fields an op kind does not take, ids above 2^64-1) and writes the operations; the tests
 * hold the fast reader to the exact one on random bodies.
 */
import { Ajv, type ErrorObject, type ValidateFunction } from 'ajv';
import { OpList } from '../workers/op-list.js';
import { OpFlag, Opcode } from '../workers/protocol.js';
import { ApiError } from './errors.js';
import { parsed, requireId, requireIdOrZero } from './validate.js';
import { BATCH_OPS, MAX_BATCH_OPS, MAX_COUNT, MAX_I32, MAX_PIN, MAX_U32, batchSchema } from './schemas.js';

/**
 * What a parsed body hands the route: the operations, and the user and channel ids as the request
 * spelled them (answers echo them), as byte ranges of `idText`.
 */
export class ParsedBatch {
  constructor(
    readonly ops: OpList,
    /** the body as received (cluster mode sends ops of other owners on as they were sent) */
    readonly body: Buffer,
    /** the body itself, or, when the exact reader parsed it, the ids one after another */
    readonly idText: Buffer,
    /** per op, SpanWord.Size offsets into idText; a summary's channel range is empty */
    readonly idSpans: Uint32Array,
  ) {}

  get length(): number {
    return this.ops.length;
  }

  userId(i: number): string {
    return this.idText.toString('latin1', this.idSpans[i * SpanWord.Size + SpanWord.UserStart], this.idSpans[i * SpanWord.Size + SpanWord.UserEnd]);
  }

  /** The channel id of op i; '' (replies.ts SUMMARY_OP) for a summary, which names none. */
  channelId(i: number): string {
    return this.idText.toString('latin1', this.idSpans[i * SpanWord.Size + SpanWord.ChanStart], this.idSpans[i * SpanWord.Size + SpanWord.ChanEnd]);
  }
}

/** Offsets of an op's id ranges in ParsedBatch.idSpans. */
export const enum SpanWord {
  UserStart = 0,
  UserEnd = 1,
  ChanStart = 2,
  ChanEnd = 3,
  Size = 4,
}

const enum Kind {
  Get = 0,
  Ack = 1,
  Mention = 2,
  Patch = 3,
  Delete = 4,
  /** the user's unread summary: no channel */
  Summary = 5,
}

/** Optional fields as bits, so "does this op carry a field its kind does not take" is one mask test. */
const enum Field {
  Msg = 1,
  MentionCount = 2,
  Manual = 4,
  Count = 8,
  Pin = 16,
  Flags = 32,
  /** not a field: the value of `manual` */
  ManualTrue = 64,
  /** channel_id is present (every kind but summary needs it) */
  Channel = 128,
}
const FIELD_NAMES = ['message_id', 'mention_count', 'manual', 'count', 'last_pin_timestamp', 'flags'] as const;
const KIND_NAMES = ['get', 'ack', 'mention', 'patch', 'delete', 'summary'] as const;
/** Fields each op kind accepts besides op, user_id and channel_id. */
const ALLOWED = [0, Field.Msg | Field.MentionCount | Field.Manual, Field.Msg | Field.Count, Field.Pin | Field.Flags, 0, 0];
/** Bits of `present` that are not optional fields. */
const NOT_FIELDS = Field.ManualTrue | Field.Channel;

const enum Ch {
  Tab = 9,
  Lf = 10,
  Cr = 13,
  Space = 32,
  Quote = 34,
  Comma = 44,
  Zero = 48,
  Nine = 57,
  Colon = 58,
  Backslash = 92,
  LBracket = 91,
  RBracket = 93,
  LBrace = 123,
  RBrace = 125,
  Dot = 46,
  UpperE = 69,
  LowerE = 101,
}

/** The ops as read, before encode(): one column per field, `present` the Field bits. */
class Staging {
  n = 0;
  kind = new Uint8Array(64);
  present = new Uint8Array(64);
  count = new Float64Array(64);
  pin = new Float64Array(64);
  flags = new Float64Array(64);
  /** id halves as the fast reader parsed them: user, channel, message (6 words per op) */
  ids = new Uint32Array(64 * 6);
  /** where the fast reader found them in the body: [start, end) of user, channel, message */
  spans = new Uint32Array(64 * 6);
  /** whether `ids` and `spans` hold the fast reader's ids, or encode must parse the strings (exact) */
  idsParsed = false;
  /** the exact reader's ids */
  userIds: string[] = [];
  channelIds: string[] = [];
  messageIds: string[] = [];

  reset(): void {
    this.n = 0;
    this.idsParsed = false;
    this.userIds = [];
    this.channelIds = [];
    this.messageIds = [];
  }

  /** Back to the initial size once idle: a 10,000-op batch grew it to ~740 KB. */
  trim(): void {
    if (this.kind.length === 64) return;
    this.kind = new Uint8Array(64);
    this.present = new Uint8Array(64);
    this.count = new Float64Array(64);
    this.pin = new Float64Array(64);
    this.flags = new Float64Array(64);
    this.ids = new Uint32Array(64 * 6);
    this.spans = new Uint32Array(64 * 6);
    this.reset();
  }

  /** Room for op `i`; returns i. */
  next(): number {
    const i = this.n++;
    if (i === this.kind.length) {
      this.kind = grown(this.kind, new Uint8Array(i * 2));
      this.present = grown(this.present, new Uint8Array(i * 2));
      this.count = grown(this.count, new Float64Array(i * 2));
      this.pin = grown(this.pin, new Float64Array(i * 2));
      this.flags = grown(this.flags, new Float64Array(i * 2));
      this.ids = grown(this.ids, new Uint32Array(i * 2 * 6));
      this.spans = grown(this.spans, new Uint32Array(i * 2 * 6));
    }
    this.present[i] = 0;
    this.count[i] = 0;
    this.pin[i] = 0;
    this.flags[i] = 0;
    return i;
  }
}

function grown<T extends Uint8Array | Uint32Array | Float64Array>(old: T, into: T): T {
  into.set(old);
  return into;
}

const staging = new Staging();

/** Gives back the staging a big batch grew (call between requests, once the thread is idle). */
export function trimBatchStaging(): void {
  staging.trim();
}

// ---- the fast reader --------------------------------------------------------------------------

/** Keys of an op, by their first letters (checked in full): index into the switch of readOp. */
const K_OP = 0;
const K_USER = 1;
const K_CHANNEL = 2;
const K_MESSAGE = 3;
const K_MENTION_COUNT = 4;
const K_MANUAL = 5;
const K_COUNT = 6;
const K_PIN = 7;
const K_FLAGS = 8;
const QUOTED_KEYS = ['op', 'user_id', 'channel_id', 'message_id', 'mention_count', 'manual', 'count', 'last_pin_timestamp', 'flags'].map((k) => Buffer.from(`"${k}"`, 'latin1'));
const QUOTED_KINDS = KIND_NAMES.map((k) => Buffer.from(`"${k}"`, 'latin1'));
const OPS_KEY = Buffer.from('"ops"', 'latin1');
const TRUE = Buffer.from('true', 'latin1');
const FALSE = Buffer.from('false', 'latin1');

/**
 * The body being read (past its end every read is undefined, which no test below accepts). The
 * readers copy `text` and `pos` into locals for their loops and store `pos` back once: as module
 * variables, every byte read and every increment would be a load and a store of a context slot.
 */
let text: Uint8Array = Buffer.alloc(0);
let pos = 0;

/** Whether `word` is at `pos`. */
function at(word: Uint8Array): boolean {
  const t = text;
  const p = pos;
  const n = word.length;
  for (let i = 0; i < n; i++) if (t[p + i] !== word[i]) return false;
  return true;
}

function ws(): void {
  const t = text;
  let p = pos;
  for (;;) {
    const c = t[p];
    if (c === Ch.Space || c === Ch.Lf || c === Ch.Cr || c === Ch.Tab) p++;
    else break;
  }
  pos = p;
}

const TWO_32 = 4294967296;

/**
 * An id as the schema's pattern takes it (0, or 1-20 digits without a leading zero) into
 * `st.ids[at]`, `st.ids[at + 1]` (its halves) and `st.spans[at]`, `st.spans[at + 1]` (where its
 * digits are); false to give up (also above 2^64 - 1: the exact reader then says INVALID_ID).
 * The first 15 digits are read as one exact double (below 10^15 < 2^53); the rest, at most 5,
 * join it in one split into halves: v * 10^k + rest, with v = vh * 2^32 + vl, is
 * (vh * 10^k + carry) * 2^32 + low, where vl * 10^k + rest < 2^49 gives carry and low exactly.
 */
function idAt(st: Staging, at: number): boolean {
  const t = text;
  let p = pos;
  if (t[p] !== Ch.Quote) return false;
  const start = ++p;
  let v = 0;
  let d = t[p] - Ch.Zero;
  while (d >= 0 && d <= 9 && p - start < 15) {
    v = v * 10 + d;
    d = t[++p] - Ch.Zero;
  }
  let lo: number;
  let hi: number;
  if (d >= 0 && d <= 9) {
    let rest = 0;
    let scale = 1;
    while (d >= 0 && d <= 9 && scale < 1e6) {
      rest = rest * 10 + d;
      scale *= 10;
      d = t[++p] - Ch.Zero;
    }
    // more than 20 digits: give up below
    const vh = Math.floor(v / TWO_32);
    const x = (v - vh * TWO_32) * scale + rest;
    const carry = Math.floor(x / TWO_32);
    lo = x - carry * TWO_32;
    hi = vh * scale + carry;
  } else {
    hi = Math.floor(v / TWO_32);
    lo = v - hi * TWO_32;
  }
  const len = p - start;
  if (t[p] !== Ch.Quote || len === 0 || len > 20 || hi >= TWO_32 || (len > 1 && t[start] === Ch.Zero)) return false;
  st.ids[at] = lo;
  st.ids[at + 1] = hi;
  st.spans[at] = start;
  st.spans[at + 1] = p;
  pos = p + 1;
  return true;
}

/**
 * The key at `pos` (a quoted string) as a K_* index, without making a string of it; -1 for any
 * other key (or one spelled with escapes: the exact reader decides).
 */
function keyAt(): number {
  if (text[pos] !== Ch.Quote) return -1;
  let k = -1;
  switch (text[pos + 1]) {
    case 111: // o
      k = K_OP;
      break;
    case 117: // u
      k = K_USER;
      break;
    case 99: // c
      k = text[pos + 2] === 104 ? K_CHANNEL : K_COUNT;
      break;
    case 109: // m
      k = text[pos + 2] === 101 ? (text[pos + 3] === 115 ? K_MESSAGE : K_MENTION_COUNT) : K_MANUAL;
      break;
    case 108: // l
      k = K_PIN;
      break;
    case 102: // f
      k = K_FLAGS;
      break;
    default:
      return -1;
  }
  const q = QUOTED_KEYS[k];
  if (!at(q)) return -1;
  pos += q.length;
  return k;
}

/** The op kind at `pos` (a quoted string) without making a string of it; -1 to give up. */
function kindAt(): number {
  for (let k = 0; k < QUOTED_KINDS.length; k++) {
    if (at(QUOTED_KINDS[k])) {
      pos += QUOTED_KINDS[k].length;
      return k;
    }
  }
  return -1;
}

/** A non-negative integer in plain digits within [min, max], or -1 to give up. */
function int(min: number, max: number): number {
  const t = text;
  const start = pos;
  let p = start;
  let v = 0;
  for (;;) {
    const d = t[p] - Ch.Zero;
    if (!(d >= 0 && d <= 9)) break;
    v = v * 10 + d;
    p++;
  }
  pos = p;
  const len = p - start;
  // 16 digits can exceed 2^53 (inexact); a fraction, exponent or leading zero: the exact reader.
  if (len === 0 || len > 15 || (len > 1 && t[start] === Ch.Zero)) return -1;
  const c = t[p];
  if (c === Ch.Dot || c === Ch.UpperE || c === Ch.LowerE) return -1;
  return v >= min && v <= max ? v : -1;
}

/** true/false, or -1 to give up. */
function bool(): number {
  if (at(TRUE)) {
    pos += 4;
    return 1;
  }
  if (at(FALSE)) {
    pos += 5;
    return 0;
  }
  return -1;
}

function kindOf(s: string): number {
  for (let k = 0; k < KIND_NAMES.length; k++) if (KIND_NAMES[k] === s) return k;
  return -1;
}

/** One op object into staging; false to give up. */
function readOp(st: Staging): boolean {
  if (text[pos] !== Ch.LBrace) return false;
  pos++;
  const i = st.next();
  let seen = 0;
  ws();
  if (text[pos] === Ch.RBrace) return false;
  for (;;) {
    const k = keyAt();
    if (k < 0 || (seen & (1 << k)) !== 0) return false;
    seen |= 1 << k;
    ws();
    if (text[pos] !== Ch.Colon) return false;
    pos++;
    ws();
    switch (k) {
      case K_OP: {
        const kind = kindAt();
        if (kind < 0) return false;
        st.kind[i] = kind;
        break;
      }
      case K_USER:
        if (!idAt(st, i * 6)) return false;
        break;
      case K_CHANNEL:
        if (!idAt(st, i * 6 + 2)) return false;
        st.present[i] |= Field.Channel;
        break;
      case K_MESSAGE:
        if (!idAt(st, i * 6 + 4)) return false;
        st.present[i] |= Field.Msg;
        break;
      case K_MENTION_COUNT: {
        const v = int(0, MAX_I32);
        if (v < 0) return false;
        st.count[i] = v;
        st.present[i] |= Field.MentionCount;
        break;
      }
      case K_MANUAL: {
        const b = bool();
        if (b < 0) return false;
        st.present[i] |= b === 1 ? Field.Manual | Field.ManualTrue : Field.Manual;
        break;
      }
      case K_COUNT: {
        const v = int(1, MAX_COUNT);
        if (v < 0) return false;
        st.count[i] = v;
        st.present[i] |= Field.Count;
        break;
      }
      case K_PIN: {
        const v = int(0, MAX_PIN);
        if (v < 0) return false;
        st.pin[i] = v;
        st.present[i] |= Field.Pin;
        break;
      }
      case K_FLAGS: {
        const v = int(0, MAX_U32);
        if (v < 0) return false;
        st.flags[i] = v;
        st.present[i] |= Field.Flags;
        break;
      }
    }
    ws();
    const c = text[pos++];
    if (c === Ch.RBrace) break;
    if (c !== Ch.Comma) return false;
    ws();
  }
  // op and user_id are required, channel_id too but for summaries (encode says which is missing).
  return (seen & 3) === 3;
}

function fastRead(body: Uint8Array, st: Staging): boolean {
  text = body;
  pos = 0;
  st.reset();
  ws();
  if (text[pos] !== Ch.LBrace) return false;
  pos++;
  ws();
  if (!at(OPS_KEY)) return false;
  pos += 5;
  ws();
  if (text[pos] !== Ch.Colon) return false;
  pos++;
  ws();
  if (text[pos] !== Ch.LBracket) return false;
  pos++;
  ws();
  for (;;) {
    if (!readOp(st)) return false;
    if (st.n > MAX_BATCH_OPS) return false;
    ws();
    const c = text[pos++];
    if (c === Ch.RBracket) break;
    if (c !== Ch.Comma) return false;
    ws();
  }
  ws();
  if (text[pos++] !== Ch.RBrace) return false;
  ws();
  st.idsParsed = pos === text.length;
  return st.idsParsed;
}

// ---- the exact reader -------------------------------------------------------------------------

/** One op of a /v1/batch body as JSON (the exact reader's view; the naive twin reads the same). */
export interface BatchOpJson {
  op: (typeof BATCH_OPS)[number];
  user_id: string;
  /** every op but summary */
  channel_id?: string;
  message_id?: string;
  mention_count?: number;
  manual?: boolean;
  count?: number;
  last_pin_timestamp?: number;
  flags?: number;
}

let validator: ValidateFunction | null = null;

/** The route schema, compiled with the options fastify's own validation uses (server.ts). */
function validate(body: unknown): ErrorObject | null {
  if (validator === null) {
    const ajv = new Ajv({ coerceTypes: false, removeAdditional: false, useDefaults: false, allErrors: false });
    validator = ajv.compile(batchSchema.body);
  }
  return validator(body) ? null : (validator.errors?.[0] ?? null);
}

function exactRead(body: Buffer, st: Staging): void {
  let value: unknown;
  try {
    value = JSON.parse(body.toString('utf8'));
  } catch (err) {
    throw new ApiError('INVALID_JSON', (err as Error).message);
  }
  const e = validate(value);
  if (e !== null) {
    // As http-errors.ts maps fastify's validation errors: every pattern or length is an id.
    const code = e.keyword === 'pattern' || e.keyword === 'maxLength' ? 'INVALID_ID' : 'INVALID_BODY';
    throw new ApiError(code, `body${e.instancePath} ${e.message ?? 'is invalid'}`);
  }
  const ops = (value as { ops: BatchOpJson[] }).ops;
  st.reset();
  for (const op of ops) {
    const i = st.next();
    st.kind[i] = kindOf(op.op);
    st.userIds[i] = op.user_id;
    let present = 0;
    if (op.channel_id !== undefined) {
      present |= Field.Channel;
      st.channelIds[i] = op.channel_id;
    }
    if (op.message_id !== undefined) {
      present |= Field.Msg;
      st.messageIds[i] = op.message_id;
    }
    if (op.mention_count !== undefined) {
      present |= Field.MentionCount;
      st.count[i] = op.mention_count;
    }
    if (op.count !== undefined) {
      present |= Field.Count;
      st.count[i] = op.count;
    }
    if (op.manual !== undefined) present |= op.manual ? Field.Manual | Field.ManualTrue : Field.Manual;
    if (op.last_pin_timestamp !== undefined) {
      present |= Field.Pin;
      st.pin[i] = op.last_pin_timestamp;
    }
    if (op.flags !== undefined) {
      present |= Field.Flags;
      st.flags[i] = op.flags;
    }
    st.present[i] = present;
  }
}

// ---- both -----------------------------------------------------------------------------------

function invalid(i: number, message: string): ApiError {
  return new ApiError('INVALID_BODY', `ops[${i}]: ${message}`);
}

/**
 * Id `which` (0 user, 1 channel, 2 message) of op i into `parsed`, checked as requireId /
 * requireIdOrZero would: the fast reader's halves when it parsed them, else the string.
 */
function idOf(st: Staging, body: Buffer, i: number, which: number, field: string, zeroOk: boolean): void {
  if (st.idsParsed) {
    const lo = st.ids[i * 6 + which * 2];
    const hi = st.ids[i * 6 + which * 2 + 1];
    if (zeroOk || lo !== 0 || hi !== 0) {
      parsed.lo = lo;
      parsed.hi = hi;
      return;
    }
  }
  const s = st.idsParsed
    ? body.toString('latin1', st.spans[i * 6 + which * 2], st.spans[i * 6 + which * 2 + 1])
    : which === 0
      ? st.userIds[i]
      : which === 1
        ? st.channelIds[i]
        : st.messageIds[i];
  if (zeroOk) requireIdOrZero(s, field);
  else requireId(s, field);
}

/**
 * Where each op's user and channel ids are spelled: in the body (fast reader), or for the exact
 * reader's strings (validated canonical digits by now) in a text of their own.
 */
function idRanges(st: Staging, body: Buffer, summaries: Uint8Array): { text: Buffer; spans: Uint32Array } {
  const spans = new Uint32Array(st.n * SpanWord.Size);
  if (st.idsParsed) {
    for (let i = 0; i < st.n; i++) {
      const a = i * SpanWord.Size;
      spans[a + SpanWord.UserStart] = st.spans[i * 6];
      spans[a + SpanWord.UserEnd] = st.spans[i * 6 + 1];
      if (summaries[i] === 0) {
        spans[a + SpanWord.ChanStart] = st.spans[i * 6 + 2];
        spans[a + SpanWord.ChanEnd] = st.spans[i * 6 + 3];
      }
    }
    return { text: body, spans };
  }
  let all = '';
  for (let i = 0; i < st.n; i++) {
    const a = i * SpanWord.Size;
    spans[a + SpanWord.UserStart] = all.length;
    all += st.userIds[i];
    spans[a + SpanWord.UserEnd] = spans[a + SpanWord.ChanStart] = all.length;
    if (summaries[i] === 0) all += st.channelIds[i];
    spans[a + SpanWord.ChanEnd] = all.length;
  }
  return { text: Buffer.from(all, 'latin1'), spans };
}

/** The checks a schema cannot express, then the operations in the wire layout. */
function encode(st: Staging, body: Buffer): ParsedBatch {
  const ops = new OpList(st.n);
  const summaries = new Uint8Array(st.n);
  for (let i = 0; i < st.n; i++) {
    const kind = st.kind[i];
    const present = st.present[i];
    const extra = present & ~ALLOWED[kind] & ~NOT_FIELDS;
    if (extra !== 0) throw invalid(i, `${KIND_NAMES[kind]} does not take ${FIELD_NAMES[31 - Math.clz32(extra & -extra)]}`);
    try {
      idOf(st, body, i, 0, 'user_id', false);
      const uLo = parsed.lo;
      const uHi = parsed.hi;
      if (kind === Kind.Summary) {
        if ((present & Field.Channel) !== 0) throw invalid(i, 'summary does not take channel_id');
        ops.add(Opcode.Summary, uLo, uHi, 0, 0);
        summaries[i] = 1;
        continue;
      }
      if ((present & Field.Channel) === 0) throw invalid(i, `${KIND_NAMES[kind]} needs channel_id`);
      idOf(st, body, i, 1, 'channel_id', false);
      let at: number;
      switch (kind) {
        case Kind.Get:
          ops.add(Opcode.Get, uLo, uHi, parsed.lo, parsed.hi);
          break;
        case Kind.Delete:
          ops.add(Opcode.Delete, uLo, uHi, parsed.lo, parsed.hi);
          break;
        case Kind.Ack:
          if ((present & Field.Msg) === 0) throw invalid(i, 'ack needs message_id');
          at = ops.add(Opcode.Ack | OpFlag.HasMsg | ((present & Field.ManualTrue) !== 0 ? OpFlag.Manual : 0), uLo, uHi, parsed.lo, parsed.hi);
          idOf(st, body, i, 2, 'message_id', true);
          ops.setMessage(at, parsed.lo, parsed.hi);
          ops.setCount(at, (present & Field.MentionCount) !== 0 ? st.count[i] : 0);
          break;
        case Kind.Mention:
          at = ops.add((present & Field.Msg) !== 0 ? Opcode.Mention | OpFlag.HasMsg : Opcode.Mention, uLo, uHi, parsed.lo, parsed.hi);
          if ((present & Field.Msg) !== 0) {
            idOf(st, body, i, 2, 'message_id', false);
            ops.setMessage(at, parsed.lo, parsed.hi);
          }
          ops.setCount(at, (present & Field.Count) !== 0 ? st.count[i] : 1);
          break;
        case Kind.Patch:
          if ((present & (Field.Pin | Field.Flags)) === 0) throw invalid(i, 'patch needs last_pin_timestamp or flags');
          at = ops.add(Opcode.Patch | ((present & Field.Pin) !== 0 ? OpFlag.HasPin : 0) | ((present & Field.Flags) !== 0 ? OpFlag.HasFlags : 0), uLo, uHi, parsed.lo, parsed.hi);
          ops.setPin(at, st.pin[i]);
          ops.setFlags(at, st.flags[i]);
          break;
      }
    } catch (err) {
      if (err instanceof ApiError && err.code === 'INVALID_ID') throw new ApiError('INVALID_ID', `ops[${i}]: ${err.message}`);
      throw err;
    }
  }
  const ids = idRanges(st, body, summaries);
  return new ParsedBatch(ops, body, ids.text, ids.spans);
}

const NOTHING = Buffer.alloc(0);

/** Whether the fast reader takes this body (tests: the common shapes must not fall back). */
export function readsFast(body: Buffer): boolean {
  const ok = fastRead(body, staging);
  text = NOTHING;
  staging.reset();
  return ok;
}

/**
 * Parses and validates a /v1/batch body. Throws ApiError INVALID_JSON, INVALID_BODY or INVALID_ID
 * (nothing is submitted then). `exactOnly` skips the fast reader (the tests compare the two).
 */
export function parseBatch(body: Buffer, exactOnly = false): ParsedBatch {
  const fast = !exactOnly && fastRead(body, staging);
  text = NOTHING;
  if (!fast) exactRead(body, staging);
  const out = encode(staging, body);
  staging.reset();
  return out;
}
