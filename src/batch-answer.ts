/**
 * The answer of POST /v1/batch, `{"results":[…]}` in request order, written as bytes
 * (json-bytes.ts) from the shards' reply words once the last op's result is in. Until then the
 * sink only notes where each op's result record is: reply buffers are never reused once handed to
 * a sink (shard-lane.ts), so one rendering pass at the end needs no copy of them and no reordering
 * of results that came from several shards.
 *
 * Each entry has the text render-json.ts's renderBatchResult gives (the tests compare the two):
 * the read state with the user and channel as the request spelled them, the summary, or the
 * error code of the status (a constant per status).
 */
import type { FastifyReply } from 'fastify';
import { OpWord, Opcode, ResultStatus, ResultWord, SummaryWord, httpStatusOf, join53 } from '../workers/protocol.js';
import { SpanWord, type ParsedBatch } from './batch-parser.js';
import { ERRORS, codeForStatus, type ErrorDef } from './errors.js';
import { ascii, begin, bytes, finish, span, uint } from './json-bytes.js';
import { ID_DIGITS, RS_TAIL_MAX, WIDE_DIGITS, WORD_DIGITS, readStateTail } from './render-bytes.js';
import { JSON_TYPE, renderBatchResult } from './render-json.js';
import type { OpSink } from './shard-lane.js';

const OPEN = ascii('{"results":[');
const CLOSE = ascii(']}');
const COMMA = ascii(',');
const RS_USER = ascii('{"status":200,"read_state":{"user_id":"');
const RS_CHANNEL = ascii('","channel_id":"');
const RS_END = ascii('}');
const SM_USER = ascii('{"status":200,"summary":{"user_id":"');
const SM_VERSION = ascii('","version":');
const SM_READ_STATES = ascii(',"read_states":');
const SM_MENTIONS = ascii(',"mention_total":');
const SM_CHANNELS = ascii(',"channels_with_mentions":');
const END2 = ascii('}}');

const RS_MAX = RS_USER.length + ID_DIGITS + RS_CHANNEL.length + ID_DIGITS + RS_TAIL_MAX + RS_END.length;
const SM_MAX =
  SM_USER.length + ID_DIGITS + SM_VERSION.length + WIDE_DIGITS + SM_READ_STATES.length + WORD_DIGITS + SM_MENTIONS.length + WIDE_DIGITS + SM_CHANNELS.length + WORD_DIGITS + END2.length;

/** Entries without a body, by result status: `{"status":…}` or `{"status":…,"error":…,"applied"?}`. */
const BARE: Uint8Array[] = [];
const BARE_SUMMARY: Uint8Array[] = [];
let BARE_MAX = 0;
for (const raw of [ResultStatus.Ok, ResultStatus.NoContent, ResultStatus.NotFound, ResultStatus.Unavailable, ResultStatus.InsufficientStorage, ResultStatus.StoreBacklog, ResultStatus.UserLimit, ResultStatus.NotApplied]) {
  const code = codeForStatus(raw);
  const applied = (ERRORS[code] as ErrorDef).applied;
  const error = ascii(renderBatchResult(httpStatusOf(raw), null, code, applied));
  // A read-state op that changed nothing answers no body; a summary always has one when Ok.
  BARE[raw] = raw === ResultStatus.Ok || raw === ResultStatus.NoContent ? ascii(renderBatchResult(raw, null, null)) : error;
  BARE_SUMMARY[raw] = error;
  BARE_MAX = Math.max(BARE_MAX, error.length);
}
/** A status no table above knows (a bug elsewhere): the same text renderBatchResult would give. */
function bareOf(raw: number, summary: boolean): Uint8Array {
  const known = summary ? BARE_SUMMARY[raw] : BARE[raw];
  if (known !== undefined) return known;
  const code = codeForStatus(raw);
  return ascii(renderBatchResult(httpStatusOf(raw), null, code, (ERRORS[code] as ErrorDef).applied));
}

/** Bytes an entry can take at most. */
const ENTRY_MAX = Math.max(RS_MAX, SM_MAX, BARE_MAX, 64) + COMMA.length;

export class BatchAnswerSink implements OpSink {
  /** the reply buffers results came in, in arrival order (the same one repeats for many ops) */
  private readonly replies: Uint32Array[] = [];
  /** per op: its reply's index in `replies` (at most MAX_BATCH_OPS of them) and its record offset */
  private readonly replyOf: Uint16Array;
  private readonly offsets: Uint32Array;
  private pending: number;

  constructor(
    private readonly reply: FastifyReply,
    private readonly batch: ParsedBatch,
  ) {
    const n = batch.length;
    this.replyOf = new Uint16Array(n);
    this.offsets = new Uint32Array(n);
    this.pending = n;
  }

  onResult(index: number, b: Uint32Array, at: number): void {
    const replies = this.replies;
    let r = replies.length - 1;
    if (r < 0 || replies[r] !== b) r = replies.push(b) - 1;
    this.replyOf[index] = r;
    this.offsets[index] = at;
    if (--this.pending === 0) this.reply.header('content-type', JSON_TYPE).send(this.render());
  }

  private render(): Buffer {
    const { batch, replies, replyOf, offsets } = this;
    const n = batch.length;
    const words = batch.ops.words;
    begin(OPEN.length + n * ENTRY_MAX + CLOSE.length);
    bytes(OPEN);
    for (let i = 0; i < n; i++) {
      if (i > 0) bytes(COMMA);
      const summary = (words[i * OpWord.Size + OpWord.Head] & Opcode.Mask) === Opcode.Summary;
      renderEntry(batch, i, summary, replies[replyOf[i]], offsets[i]);
    }
    bytes(CLOSE);
    return finish();
  }
}

/** Op i's entry from its result record at `b[at]`. */
function renderEntry(batch: ParsedBatch, i: number, summary: boolean, b: Uint32Array, at: number): void {
  const raw = b[at + ResultWord.Status];
  const text = batch.idText;
  const s = i * SpanWord.Size;
  const sp = batch.idSpans;
  const r = at + ResultWord.HeaderSize;
  if (raw !== ResultStatus.Ok) return bytes(bareOf(raw, summary));
  if (summary) {
    bytes(SM_USER);
    span(text, sp[s + SpanWord.UserStart], sp[s + SpanWord.UserEnd]);
    bytes(SM_VERSION);
    uint(join53(b[r + SummaryWord.VerLo], b[r + SummaryWord.VerHi]));
    bytes(SM_READ_STATES);
    uint(b[r + SummaryWord.ReadStates]);
    bytes(SM_MENTIONS);
    uint(join53(b[r + SummaryWord.MentionsLo], b[r + SummaryWord.MentionsHi]));
    bytes(SM_CHANNELS);
    uint(b[r + SummaryWord.ChannelsWithMentions]);
    return bytes(END2);
  }
  if (b[at + ResultWord.Count] === 0) return bytes(bareOf(raw, false));
  bytes(RS_USER);
  span(text, sp[s + SpanWord.UserStart], sp[s + SpanWord.UserEnd]);
  bytes(RS_CHANNEL);
  span(text, sp[s + SpanWord.ChanStart], sp[s + SpanWord.ChanEnd]);
  readStateTail(b, r);
  bytes(RS_END);
}
