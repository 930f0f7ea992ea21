/**
 * Turning shard results into HTTP answers. A sink is the one object a request owns while its
 * operations are in a shard; it is answered from the reply buffer the worker sent back.
 */
import type { FastifyReply } from 'fastify';
import { ResultStatus, ResultWord, httpStatusOf } from '../workers/protocol.js';
import { ERRORS, RETRY_AFTER_SECONDS, codeForStatus, type ErrorCode, type ErrorDef } from './errors.js';
import { JSON_TYPE, metaVersion, renderBatchResult, renderList, renderReadState, renderSummary } from './render-json.js';
import { userReadStates } from './render-bytes.js';
import type { OpSink } from './shard-lane.js';

/** A read state as the API documents it (the naive service builds these; this one renders text). */
export interface ReadStateJson {
  user_id: string;
  channel_id: string;
  last_message_id: string;
  mention_count: number;
  last_pin_timestamp: number;
  flags: number;
  version: number;
}

/** An unread summary as the API documents it. */
export interface SummaryJson {
  user_id: string;
  version: number;
  read_states: number;
  mention_total: number;
  channels_with_mentions: number;
}

/** One entry of a /v1/batch answer. */
export interface BatchResult {
  status: number;
  read_state?: ReadStateJson;
  summary?: SummaryJson;
  error?: string;
  /** on refusals: false = not applied, null = may have been applied */
  applied?: boolean | null;
}

/** Observer of refusals (503/507), set by the metrics module; nothing is counted until it is. */
let onRejected: ((code: ErrorCode) => void) | null = null;
export function observeRejections(fn: ((code: ErrorCode) => void) | null): void {
  onRejected = fn;
}

/**
 * Answers an error in the one shape: {error, message} and, for refusals of operations, `applied`
 * (ERRORS). `partial`: the request carried several operations and some may have been applied.
 */
export function sendError(reply: FastifyReply, code: ErrorCode, message?: string, partial = false): void {
  reply.send(prepareError(reply, code, message, partial));
}

/** An error answer's body, {error, message, applied?}. */
export interface ErrorBody {
  error: ErrorCode;
  message: string;
  applied?: false | null;
}

/**
 * Everything sendError does but sending: status, Retry-After, the refusal counted; returns the
 * body. For hooks that replace an answer already on its way (onSend), where send() is not allowed.
 */
export function prepareError(reply: FastifyReply, code: ErrorCode, message?: string, partial = false): ErrorBody {
  const def: ErrorDef = ERRORS[code];
  if (def.status === 503) reply.header('retry-after', String(RETRY_AFTER_SECONDS));
  if (def.status === 503 || def.status === 507) onRejected?.(code);
  reply.code(def.status);
  return def.applied === undefined ? { error: code, message: message ?? def.message } : { error: code, message: message ?? def.message, applied: partial ? null : def.applied };
}

/** One single-op request: answers with the read state, 204, or the error for the status. */
export class ReadStateSink implements OpSink {
  constructor(
    private readonly reply: FastifyReply,
    private readonly userId: string,
    private readonly channelId: string,
  ) {}

  onResult(_index: number, b: Uint32Array, at: number): void {
    const status = b[at + ResultWord.Status];
    if (status === ResultStatus.Ok) {
      this.reply.header('content-type', JSON_TYPE).send(renderReadState('"' + this.userId + '"', this.channelId, b, at + ResultWord.HeaderSize));
    } else if (status === ResultStatus.NoContent) this.reply.code(204).send();
    else sendError(this.reply, codeForStatus(status));
  }
}

/** GET of a user's read states: all, a delta (`since`, -1 = none), one page. */
export class UserReadStatesSink implements OpSink {
  constructor(
    private readonly reply: FastifyReply,
    private readonly userId: string,
    private readonly since = -1,
  ) {}

  onResult(_index: number, b: Uint32Array, at: number): void {
    const status = b[at + ResultWord.Status];
    if (status !== ResultStatus.Ok) return sendError(this.reply, codeForStatus(status));
    const meta = at + ResultWord.HeaderSize;
    if (this.since > metaVersion(b, meta)) {
      return sendError(this.reply, 'SINCE_AHEAD', `since ${this.since} is above the user's version ${metaVersion(b, meta)}; sync again without since`);
    }
    this.reply.header('content-type', JSON_TYPE).send(userReadStates(this.userId, b, meta));
  }
}

/** GET of a user's unread summary. */
export class SummarySink implements OpSink {
  constructor(
    private readonly reply: FastifyReply,
    private readonly userId: string,
  ) {}

  onResult(_index: number, b: Uint32Array, at: number): void {
    const status = b[at + ResultWord.Status];
    if (status !== ResultStatus.Ok) return sendError(this.reply, codeForStatus(status));
    this.reply.header('content-type', JSON_TYPE).send(renderSummary(this.userId, b, at + ResultWord.HeaderSize));
  }
}

/** The channel id of a summary op in a batch (it names no channel). */
export const SUMMARY_OP = '';

/**
 * Gathers the results of a bulk ack (split across shards) back into request order, each read
 * state already rendered as JSON text (render-json.ts). `userIds[i]` and `channelIds[i]` are the
 * user and channel of op i, as the request named them.
 */
export class GatherSink implements OpSink {
  private readonly rendered: string[];
  /** status of op i, or 0 while it is outstanding */
  private readonly statuses: Uint16Array;
  private pending: number;

  constructor(
    private readonly reply: FastifyReply,
    private readonly userIds: string[],
    private readonly channelIds: string[],
  ) {
    this.rendered = new Array<string>(userIds.length);
    this.statuses = new Uint16Array(userIds.length);
    this.pending = userIds.length;
  }

  onResult(index: number, b: Uint32Array, at: number): void {
    const raw = b[at + ResultWord.Status];
    this.statuses[index] = raw;
    if (raw === ResultStatus.Ok && b[at + ResultWord.Count] > 0) {
      this.rendered[index] = renderReadState('"' + this.userIds[index] + '"', this.channelIds[index], b, at + ResultWord.HeaderSize);
    }
    if (--this.pending === 0) this.finish();
  }

  private finish(): void {
    // A failed ack fails the request with its code.
    for (let i = 0; i < this.statuses.length; i++) {
      if (this.rendered[i] === undefined) return sendError(this.reply, codeForStatus(this.statuses[i]), undefined, this.rendered.length > 1);
    }
    this.reply.header('content-type', JSON_TYPE).send(renderList('read_states', this.rendered));
  }
}

/**
 * One op's entry of a /v1/batch answer from its result record at `at`: the status, and the read
 * state, summary (SUMMARY_OP channel) or error code.
 */
export function renderBatchOpResult(userId: string, channelId: string, b: Uint32Array, at: number): string {
  const raw = b[at + ResultWord.Status];
  // A store backlog is a 503 like any other retryable refusal; its code says which.
  const status = httpStatusOf(raw);
  if (channelId === SUMMARY_OP) {
    const summary = raw === ResultStatus.Ok ? renderSummary(userId, b, at + ResultWord.HeaderSize) : null;
    const code = raw !== ResultStatus.Ok ? codeForStatus(raw) : null;
    return renderBatchResult(status, null, code, code === null ? undefined : (ERRORS[code] as ErrorDef).applied, summary);
  }
  const readState = raw === ResultStatus.Ok && b[at + ResultWord.Count] > 0 ? renderReadState('"' + userId + '"', channelId, b, at + ResultWord.HeaderSize) : null;
  const code = raw !== ResultStatus.Ok && raw !== ResultStatus.NoContent ? codeForStatus(raw) : null;
  return renderBatchResult(status, readState, code, code === null ? undefined : (ERRORS[code] as ErrorDef).applied);
}

/** Fan-out mentions: counts the read states that changed. */
export class CountChangedSink implements OpSink {
  private pending: number;
  private changed = 0;
  private failed = 0;

  private readonly total: number;

  constructor(
    private readonly reply: FastifyReply,
    ops: number,
  ) {
    this.pending = ops;
    this.total = ops;
  }

  onResult(_index: number, b: Uint32Array, at: number): void {
    if (b[at + ResultWord.Status] === ResultStatus.Ok) this.changed += b[at + ResultWord.Changed];
    else this.failed = b[at + ResultWord.Status];
    if (--this.pending > 0) return;
    // Other users' mentions of this request may have been applied.
    if (this.failed !== 0) sendError(this.reply, codeForStatus(this.failed), undefined, this.total > 1);
    else this.reply.send({ updated: this.changed });
  }
}
