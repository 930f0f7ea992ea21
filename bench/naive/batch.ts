/**
 * POST /v1/batch: up to 10,000 ops of any users. Every op is validated before any runs (one bad
 * op rejects the batch, naming its index, and changes nothing); results in request order.
 */
import type { FastifyInstance } from 'fastify';
import type { BatchOpJson } from '../../src/batch-parser.js';
import { ApiError } from '../../src/errors.js';
import { batchSchema } from '../../src/schemas.js';
import type { NaiveContext } from './context.js';
import { requireId, requireIdOrZero } from './ids.js';
import { runOp, type Op } from './ops.js';
import { gather, sendBatch } from './replies.js';

type BatchOp = BatchOpJson;

/** Fields each op accepts besides op, user_id and channel_id. */
const ALLOWED: Record<Exclude<BatchOp['op'], 'summary'>, readonly string[]> = {
  get: [],
  delete: [],
  ack: ['message_id', 'mention_count', 'manual'],
  mention: ['message_id', 'count'],
  patch: ['last_pin_timestamp', 'flags'],
};
const FIELDS = ['message_id', 'mention_count', 'manual', 'count', 'last_pin_timestamp', 'flags'] as const;

function invalid(i: number, message: string): ApiError {
  return new ApiError('INVALID_BODY', `ops[${i}]: ${message}`);
}

/** Checks one op and builds it; throws INVALID_BODY or INVALID_ID naming the op's index. */
function parseOp(o: BatchOp, i: number): { userId: bigint; op: Op } {
  // The naive twin has no unread summary (README: the service's summary op walks the shard's slots).
  if (o.op === 'summary') throw invalid(i, 'the naive service has no summary op');
  if (o.channel_id === undefined) throw invalid(i, `${o.op} needs channel_id`);
  const allowed = ALLOWED[o.op];
  for (const f of FIELDS) {
    if (o[f] !== undefined && !allowed.includes(f)) throw invalid(i, `${o.op} does not take ${f}`);
  }
  try {
    const userId = requireId(o.user_id, 'user_id');
    const channel = requireId(o.channel_id, 'channel_id');
    const channelKey = o.channel_id;
    switch (o.op) {
      case 'get':
      case 'delete':
        return { userId, op: { op: o.op, channel, channelKey } };
      case 'ack':
        if (o.message_id === undefined) throw invalid(i, 'ack needs message_id');
        return {
          userId,
          op: { op: 'ack', channel, channelKey, message: requireIdOrZero(o.message_id, 'message_id'), mentionCount: o.mention_count ?? 0, manual: o.manual === true },
        };
      case 'mention': {
        const message = o.message_id === undefined ? undefined : requireId(o.message_id, 'message_id');
        return { userId, op: { op: 'mention', channel, channelKey, message, count: o.count ?? 1 } };
      }
      case 'patch':
        if (o.last_pin_timestamp === undefined && o.flags === undefined) throw invalid(i, 'patch needs last_pin_timestamp or flags');
        return { userId, op: { op: 'patch', channel, channelKey, pin: o.last_pin_timestamp, flags: o.flags } };
    }
  } catch (err) {
    if (err instanceof ApiError && err.code === 'INVALID_ID') throw new ApiError('INVALID_ID', `ops[${i}]: ${err.message}`);
    throw err;
  }
}

export function batchRoutes(app: FastifyInstance, ctx: NaiveContext): void {
  app.post<{ Body: { ops: BatchOp[] } }>('/v1/batch', { schema: batchSchema }, (req, reply) => {
    if (ctx.isClosing()) throw new ApiError('SHUTTING_DOWN');
    const raw = req.body.ops;
    const parsed = raw.map(parseOp);
    if (!ctx.cache.hasRoom(parsed.length)) throw new ApiError('SHARD_OVERLOADED');
    const collect = gather(parsed.length, (results) => sendBatch(reply, results));
    for (let i = 0; i < parsed.length; i++) runOp(ctx, raw[i].user_id, parsed[i].userId, parsed[i].op, true, (r) => collect(i, r));
    return reply;
  });
}
