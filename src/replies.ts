/**
 * Turning shard results into HTTP answers. A sink is the one object a request owns while its
 * operations are in a shard; it is answered from the reply buffer the worker sent back.
 */
import type { FastifyReply } from 'fastify';
import {
  RES_COUNT,
  RES_CHANGED,
  RES_HEADER_WORDS,
  RES_STATUS,
  RS_WORDS,
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
  ST_NO_CONTENT,
  ST_OK,
  ST_STORE_BACKLOG,
  ST_UNAVAILABLE,
  join53,
} from '../workers/protocol.js';
import { ERRORS, RETRY_AFTER_SECONDS, codeForStatus, type ErrorCode } from './errors.js';
import { formatId } from './ids.js';
import type { OpSink } from './shard-lane.js';

export interface ReadStateJson {
  user_id: string;
  channel_id: string;
  last_message_id: string;
  mention_count: number;
  last_pin_timestamp: number;
  flags: number;
  version: number;
}

export function readStateJson(userId: string, b: Uint32Array, at: number): ReadStateJson {
  return {
    user_id: userId,
    channel_id: formatId(b[at + R_CHAN_LO], b[at + R_CHAN_HI]),
    last_message_id: formatId(b[at + R_MSG_LO], b[at + R_MSG_HI]),
    mention_count: b[at + R_MENTION],
    last_pin_timestamp: join53(b[at + R_PIN_LO], b[at + R_PIN_HI]),
    flags: b[at + R_FLAGS],
    version: join53(b[at + R_VER_LO], b[at + R_VER_HI]),
  };
}

/** Observer of refusals (503/507), set by the metrics module; nothing is counted until it is. */
let onRejected: ((code: ErrorCode) => void) | null = null;
export function observeRejections(fn: ((code: ErrorCode) => void) | null): void {
  onRejected = fn;
}

export function sendError(reply: FastifyReply, code: ErrorCode, message?: string): void {
  const def = ERRORS[code];
  if (def.status === 503) reply.header('retry-after', String(RETRY_AFTER_SECONDS));
  if (def.status === 503 || def.status === 507) onRejected?.(code);
  reply.code(def.status).send({ error: code, message: message ?? def.message });
}

/** One single-op request: answers with the read state, 204, or the error for the status. */
export class ReadStateSink implements OpSink {
  constructor(
    private readonly reply: FastifyReply,
    private readonly userId: string,
  ) {}

  onResult(_index: number, b: Uint32Array, at: number): void {
    const status = b[at + RES_STATUS];
    if (status === ST_OK) this.reply.send(readStateJson(this.userId, b, at + RES_HEADER_WORDS));
    else if (status === ST_NO_CONTENT) this.reply.code(204).send();
    else sendError(this.reply, codeForStatus(status));
  }
}

/** GET of all of a user's read states. */
export class UserReadStatesSink implements OpSink {
  constructor(
    private readonly reply: FastifyReply,
    private readonly userId: string,
  ) {}

  onResult(_index: number, b: Uint32Array, at: number): void {
    const status = b[at + RES_STATUS];
    if (status !== ST_OK) return sendError(this.reply, codeForStatus(status));
    const n = b[at + RES_COUNT];
    const list = new Array<ReadStateJson>(n);
    for (let i = 0; i < n; i++) list[i] = readStateJson(this.userId, b, at + RES_HEADER_WORDS + i * RS_WORDS);
    this.reply.send({ user_id: this.userId, read_states: list });
  }
}

export interface BatchResult {
  status: number;
  read_state?: ReadStateJson;
  error?: string;
}

/**
 * Gathers the results of a multi-op request (split across shards) back into request order.
 * `userIds[i]` is the user of op i, needed to render its read state.
 */
export class GatherSink implements OpSink {
  private readonly results: BatchResult[];
  private pending: number;

  constructor(
    private readonly reply: FastifyReply,
    private readonly userIds: string[],
    private readonly shape: 'batch' | 'read_states',
  ) {
    this.results = new Array<BatchResult>(userIds.length);
    this.pending = userIds.length;
  }

  onResult(index: number, b: Uint32Array, at: number): void {
    const status = b[at + RES_STATUS];
    // A store backlog is a 503 like any other retryable refusal; its code says which.
    const r: BatchResult = { status: status === ST_STORE_BACKLOG ? ST_UNAVAILABLE : status };
    if (status === ST_OK && b[at + RES_COUNT] > 0) r.read_state = readStateJson(this.userIds[index], b, at + RES_HEADER_WORDS);
    else if (status !== ST_OK && status !== ST_NO_CONTENT) r.error = codeForStatus(status);
    this.results[index] = r;
    if (--this.pending === 0) this.finish();
  }

  private finish(): void {
    if (this.shape === 'batch') {
      this.reply.send({ results: this.results });
      return;
    }
    // ack-bulk answers a list of read states; a failed ack fails the request with its code.
    const list = new Array<ReadStateJson>(this.results.length);
    for (let i = 0; i < this.results.length; i++) {
      const r = this.results[i];
      if (r.read_state === undefined) return sendError(this.reply, codeForStatus(r.status));
      list[i] = r.read_state;
    }
    this.reply.send({ read_states: list });
  }
}

/** Fan-out mentions: counts the read states that changed. */
export class CountChangedSink implements OpSink {
  private pending: number;
  private changed = 0;
  private failed = 0;

  constructor(
    private readonly reply: FastifyReply,
    ops: number,
  ) {
    this.pending = ops;
  }

  onResult(_index: number, b: Uint32Array, at: number): void {
    if (b[at + RES_STATUS] === ST_OK) this.changed += b[at + RES_CHANGED];
    else this.failed = b[at + RES_STATUS];
    if (--this.pending > 0) return;
    if (this.failed !== 0) sendError(this.reply, codeForStatus(this.failed));
    else this.reply.send({ updated: this.changed });
  }
}
