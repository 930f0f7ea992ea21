/**
 * POST /v1/batch: up to 10,000 operations of any users in one request, the high-throughput path
 * (a summary op names a user and no channel).
 * All ops are validated before any is submitted (one bad op rejects the batch and changes
 * nothing), then split by shard; results come back in request order.
 */
import type { FastifyInstance } from 'fastify';
import {
  F_HAS_FLAGS,
  F_HAS_MSG,
  F_HAS_PIN,
  F_MANUAL,
  OP_ACK,
  OP_DELETE,
  OP_GET,
  OP_MENTION,
  OP_PATCH,
  OP_SUMMARY,
} from '../../workers/protocol.js';
import { ApiError } from '../errors.js';
import { GatherSink, SUMMARY_OP } from '../replies.js';
import { batchSchema } from '../schemas.js';
import { parsed, requireId, requireIdOrZero } from '../validate.js';
import type { RouteContext } from './context.js';

interface BatchOp {
  op: 'get' | 'ack' | 'mention' | 'patch' | 'delete' | 'summary';
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

/** Optional fields as bits, so "does this op carry a field its kind does not take" is one mask test. */
const FIELDS = ['message_id', 'mention_count', 'manual', 'count', 'last_pin_timestamp', 'flags'] as const;
const B_MSG = 1;
const B_MENTION_COUNT = 2;
const B_MANUAL = 4;
const B_COUNT = 8;
const B_PIN = 16;
const B_FLAGS = 32;
/** Fields each op accepts besides op, user_id and channel_id. */
const ALLOWED: Record<BatchOp['op'], number> = {
  get: 0,
  delete: 0,
  ack: B_MSG | B_MENTION_COUNT | B_MANUAL,
  mention: B_MSG | B_COUNT,
  patch: B_PIN | B_FLAGS,
  summary: 0,
};

function presentFields(op: BatchOp): number {
  return (
    (op.message_id !== undefined ? B_MSG : 0) |
    (op.mention_count !== undefined ? B_MENTION_COUNT : 0) |
    (op.manual !== undefined ? B_MANUAL : 0) |
    (op.count !== undefined ? B_COUNT : 0) |
    (op.last_pin_timestamp !== undefined ? B_PIN : 0) |
    (op.flags !== undefined ? B_FLAGS : 0)
  );
}

/** The rare path: names the first field the op's kind does not take. */
function extraField(i: number, op: BatchOp, extra: number): ApiError {
  let bit = 0;
  while ((extra & (1 << bit)) === 0) bit++;
  return invalid(i, `${op.op} does not take ${FIELDS[bit]}`);
}

/** Words per validated op in the scratch array: head, uLo, uHi, cLo, cHi, mLo, mHi, count, flags. */
const W = 9;

function invalid(i: number, message: string): ApiError {
  return new ApiError('INVALID_BODY', `ops[${i}]: ${message}`);
}

export function batchRoutes(app: FastifyInstance, ctx: RouteContext): void {
  const { router } = ctx;

  app.post<{ Body: { ops: BatchOp[] } }>('/v1/batch', { schema: batchSchema }, (req, reply) => {
    if (ctx.isClosing()) throw new ApiError('SHUTTING_DOWN');
    const ops = req.body.ops;
    const n = ops.length;
    const words = new Uint32Array(n * W);
    const pins = new Float64Array(n);
    const perShard = new Uint32Array(router.shards);
    const userIds = new Array<string>(n);
    const channelIds = new Array<string>(n);
    for (let i = 0; i < n; i++) {
      const op = ops[i];
      const extra = presentFields(op) & ~ALLOWED[op.op];
      if (extra !== 0) throw extraField(i, op, extra);
      const w = i * W;
      try {
        requireId(op.user_id, 'user_id');
        words[w + 1] = parsed.lo;
        words[w + 2] = parsed.hi;
        let head = 0;
        if (op.op === 'summary') {
          if (op.channel_id !== undefined) throw invalid(i, 'summary does not take channel_id');
        } else {
          if (op.channel_id === undefined) throw invalid(i, `${op.op} needs channel_id`);
          requireId(op.channel_id, 'channel_id');
          words[w + 3] = parsed.lo;
          words[w + 4] = parsed.hi;
        }
        switch (op.op) {
          case 'summary':
            head = OP_SUMMARY;
            break;
          case 'get':
            head = OP_GET;
            break;
          case 'delete':
            head = OP_DELETE;
            break;
          case 'ack':
            if (op.message_id === undefined) throw invalid(i, 'ack needs message_id');
            requireIdOrZero(op.message_id, 'message_id');
            head = OP_ACK | F_HAS_MSG | (op.manual === true ? F_MANUAL : 0);
            words[w + 7] = op.mention_count ?? 0;
            break;
          case 'mention':
            head = OP_MENTION;
            if (op.message_id !== undefined) {
              requireId(op.message_id, 'message_id');
              head |= F_HAS_MSG;
            }
            words[w + 7] = op.count ?? 1;
            break;
          case 'patch':
            if (op.last_pin_timestamp === undefined && op.flags === undefined) {
              throw invalid(i, 'patch needs last_pin_timestamp or flags');
            }
            head = OP_PATCH | (op.last_pin_timestamp !== undefined ? F_HAS_PIN : 0) | (op.flags !== undefined ? F_HAS_FLAGS : 0);
            pins[i] = op.last_pin_timestamp ?? 0;
            words[w + 8] = op.flags ?? 0;
            break;
        }
        if ((head & F_HAS_MSG) !== 0) {
          words[w + 5] = parsed.lo;
          words[w + 6] = parsed.hi;
        }
        words[w] = head;
      } catch (err) {
        if (err instanceof ApiError && err.code === 'INVALID_ID') throw new ApiError('INVALID_ID', `ops[${i}]: ${err.message}`);
        throw err;
      }
      userIds[i] = op.user_id;
      channelIds[i] = op.channel_id ?? SUMMARY_OP;
      perShard[router.shardFor(words[w + 1], words[w + 2])]++;
    }
    if (!router.hasRoomFor(perShard)) throw new ApiError('SHARD_OVERLOADED');
    const sink = new GatherSink(reply, userIds, channelIds, 'batch');
    for (let i = 0; i < n; i++) {
      const w = i * W;
      router.submit(
        words[w],
        words[w + 1],
        words[w + 2],
        words[w + 3],
        words[w + 4],
        words[w + 5],
        words[w + 6],
        words[w + 7],
        pins[i],
        words[w + 8],
        sink,
        i,
      );
    }
    return reply;
  });
}
