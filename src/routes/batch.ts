/**
 * POST /v1/batch: up to 10,000 operations of any users in one request, the high-throughput path.
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
} from '../../workers/protocol.js';
import { OpList } from '../../workers/op-list.js';
import { ApiError } from '../errors.js';
import { GatherSink } from '../replies.js';
import { batchSchema } from '../schemas.js';
import { parsed, requireId, requireIdOrZero } from '../validate.js';
import type { RouteContext } from './context.js';

interface BatchOp {
  op: 'get' | 'ack' | 'mention' | 'patch' | 'delete';
  user_id: string;
  channel_id: string;
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

function invalid(i: number, message: string): ApiError {
  return new ApiError('INVALID_BODY', `ops[${i}]: ${message}`);
}

export function batchRoutes(app: FastifyInstance, ctx: RouteContext): void {
  const { router } = ctx;

  app.post<{ Body: { ops: BatchOp[] } }>('/v1/batch', { schema: batchSchema }, (req, reply) => {
    if (ctx.isClosing()) throw new ApiError('SHUTTING_DOWN');
    const body = req.body.ops;
    const n = body.length;
    const ops = new OpList(n);
    const userIds = new Array<string>(n);
    const channelIds = new Array<string>(n);
    for (let i = 0; i < n; i++) {
      const op = body[i];
      const extra = presentFields(op) & ~ALLOWED[op.op];
      if (extra !== 0) throw extraField(i, op, extra);
      try {
        requireId(op.user_id, 'user_id');
        const uLo = parsed.lo;
        const uHi = parsed.hi;
        requireId(op.channel_id, 'channel_id');
        let at: number;
        switch (op.op) {
          case 'get':
            ops.add(OP_GET, uLo, uHi, parsed.lo, parsed.hi);
            break;
          case 'delete':
            ops.add(OP_DELETE, uLo, uHi, parsed.lo, parsed.hi);
            break;
          case 'ack':
            if (op.message_id === undefined) throw invalid(i, 'ack needs message_id');
            at = ops.add(OP_ACK | F_HAS_MSG | (op.manual === true ? F_MANUAL : 0), uLo, uHi, parsed.lo, parsed.hi);
            requireIdOrZero(op.message_id, 'message_id');
            ops.setMessage(at, parsed.lo, parsed.hi);
            ops.setCount(at, op.mention_count ?? 0);
            break;
          case 'mention':
            at = ops.add(op.message_id !== undefined ? OP_MENTION | F_HAS_MSG : OP_MENTION, uLo, uHi, parsed.lo, parsed.hi);
            if (op.message_id !== undefined) {
              requireId(op.message_id, 'message_id');
              ops.setMessage(at, parsed.lo, parsed.hi);
            }
            ops.setCount(at, op.count ?? 1);
            break;
          case 'patch':
            if (op.last_pin_timestamp === undefined && op.flags === undefined) {
              throw invalid(i, 'patch needs last_pin_timestamp or flags');
            }
            at = ops.add(OP_PATCH | (op.last_pin_timestamp !== undefined ? F_HAS_PIN : 0) | (op.flags !== undefined ? F_HAS_FLAGS : 0), uLo, uHi, parsed.lo, parsed.hi);
            ops.setPin(at, op.last_pin_timestamp ?? 0);
            ops.setFlags(at, op.flags ?? 0);
            break;
        }
      } catch (err) {
        if (err instanceof ApiError && err.code === 'INVALID_ID') throw new ApiError('INVALID_ID', `ops[${i}]: ${err.message}`);
        throw err;
      }
      userIds[i] = op.user_id;
      channelIds[i] = op.channel_id;
    }
    if (!router.submitAll(ops, new GatherSink(reply, userIds, channelIds, 'batch'))) throw new ApiError('SHARD_OVERLOADED');
    return reply;
  });
}
