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
  ST_NO_CONTENT,
  ST_OK,
  ST_STORE_BACKLOG,
  ST_UNAVAILABLE,
} from '../workers/protocol.js';
import { ERRORS, RETRY_AFTER_SECONDS, codeForStatus, type ErrorCode } from './errors.js';
import { JSON_TYPE, renderGathered, renderReadState, renderUserReadStates } from './render-json.js';
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

/** One entry of a /v1/batch answer. */
export interface BatchResult {
  status: number;
  read_state?: ReadStateJson;
  error?: string;
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
    private readonly channelId: string,
  ) {}

  onResult(_index: number, b: Uint32Array, at: number): void {
    const status = b[at + RES_STATUS];
    if (status === ST_OK) {
      this.reply.header('content-type', JSON_TYPE).send(renderReadState(this.userId, this.channelId, b, at + RES_HEADER_WORDS));
    } else if (status === ST_NO_CONTENT) this.reply.code(204).send();
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
    this.reply.header('content-type', JSON_TYPE).send(renderUserReadStates(this.userId, b, at + RES_HEADER_WORDS, b[at + RES_COUNT]));
  }
}

/**
 * Gathers the results of a multi-op request (split across shards, so they may arrive in any
 * order) back into request order: each op's status, error code and read-state words, rendered
 * together once the last one is in (render-json.ts). `userIds[i]` and `channelIds[i]` are the user
 * and channel of op i, as the request named them.
 */
export class GatherSink implements OpSink {
  private readonly statuses: Uint16Array;
  private readonly errors: (string | undefined)[];
  private readonly hasReadState: Uint8Array;
  private readonly words: Uint32Array;
  private pending: number;

  constructor(
    private readonly reply: FastifyReply,
    private readonly userIds: string[],
    private readonly channelIds: string[],
    private readonly shape: 'batch' | 'read_states',
  ) {
    const n = userIds.length;
    this.statuses = new Uint16Array(n);
    this.errors = new Array<string | undefined>(n);
    this.hasReadState = new Uint8Array(n);
    this.words = new Uint32Array(n * RS_WORDS);
    this.pending = n;
  }

  onResult(index: number, b: Uint32Array, at: number): void {
    const raw = b[at + RES_STATUS];
    // A store backlog is a 503 like any other retryable refusal; its code says which.
    this.statuses[index] = raw === ST_STORE_BACKLOG ? ST_UNAVAILABLE : raw;
    if (raw === ST_OK && b[at + RES_COUNT] > 0) {
      this.hasReadState[index] = 1;
      const from = at + RES_HEADER_WORDS;
      const to = index * RS_WORDS;
      for (let w = 0; w < RS_WORDS; w++) this.words[to + w] = b[from + w];
    } else if (raw !== ST_OK && raw !== ST_NO_CONTENT) {
      this.errors[index] = codeForStatus(raw);
    }
    if (--this.pending === 0) this.finish();
  }

  private finish(): void {
    if (this.shape === 'read_states') {
      // ack-bulk answers a list of read states; a failed ack fails the request with its code.
      for (let i = 0; i < this.hasReadState.length; i++) {
        if (this.hasReadState[i] === 0) return sendError(this.reply, (this.errors[i] as ErrorCode | undefined) ?? codeForStatus(this.statuses[i]));
      }
    }
    const body = renderGathered(this.shape, this.userIds, this.channelIds, this.statuses, this.errors, this.hasReadState, this.words);
    this.reply.header('content-type', JSON_TYPE).send(body);
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
