/**
 * Routes on one user's read states: get, get all, ack, mention, patch, delete, ack-bulk. Same
 * schemas, validation order and answers as src/routes/read-states.ts.
 */
import type { FastifyInstance, FastifyReply } from 'fastify';
import { ApiError } from '../../src/errors.js';
import {
  ackBulkSchema,
  ackSchema,
  deleteSchema,
  getAllSchema,
  getOneSchema,
  mentionSchema,
  patchSchema,
} from '../../src/schemas.js';
import type { NaiveContext } from './context.js';
import { requireId, requireIdOrZero } from './ids.js';
import { runOp, type Op } from './ops.js';
import { gather, sendList, sendReadStates, sendResult } from './replies.js';

interface UserParams {
  user_id: string;
}
interface ReadStateParams extends UserParams {
  channel_id: string;
}
interface AckBody {
  message_id: string;
  mention_count?: number;
  manual?: boolean;
}
interface MentionBody {
  message_id?: string;
  count?: number;
}
interface PatchBody {
  last_pin_timestamp?: number;
  flags?: number;
}
interface AckBulkBody {
  read_states: { channel_id: string; message_id: string }[];
}

/** A single-op route's op, built once the path's channel is parsed. */
type OpOf = (channel: bigint, channelKey: string) => Op;

export function readStateRoutes(app: FastifyInstance, ctx: NaiveContext): void {
  /** Parses the user and channel of the path, then runs one op for them. */
  function single(reply: FastifyReply, p: ReadStateParams, make: OpOf): FastifyReply {
    if (ctx.isClosing()) throw new ApiError('SHUTTING_DOWN');
    const userId = requireId(p.user_id, 'user_id');
    const channel = requireId(p.channel_id, 'channel_id');
    if (!ctx.cache.hasRoom(1)) throw new ApiError('SHARD_OVERLOADED');
    runOp(ctx, p.user_id, userId, make(channel, p.channel_id), true, (r) => sendResult(reply, r));
    return reply;
  }

  app.get<{ Params: UserParams }>('/v1/users/:user_id/read-states', { schema: getAllSchema }, (req, reply) => {
    if (ctx.isClosing()) throw new ApiError('SHUTTING_DOWN');
    const userKey = req.params.user_id;
    const userId = requireId(userKey, 'user_id');
    if (!ctx.cache.hasRoom(1)) throw new ApiError('SHARD_OVERLOADED');
    runOp(ctx, userKey, userId, { op: 'get_all' }, true, (r) => sendList(reply, userKey, r));
    return reply;
  });

  app.get<{ Params: ReadStateParams }>('/v1/users/:user_id/read-states/:channel_id', { schema: getOneSchema }, (req, reply) =>
    single(reply, req.params, (channel, channelKey) => ({ op: 'get', channel, channelKey })),
  );

  app.post<{ Params: ReadStateParams; Body: AckBody }>('/v1/users/:user_id/read-states/:channel_id/ack', { schema: ackSchema }, (req, reply) => {
    const b = req.body;
    const message = requireIdOrZero(b.message_id, 'message_id');
    return single(reply, req.params, (channel, channelKey) => ({
      op: 'ack',
      channel,
      channelKey,
      message,
      mentionCount: b.mention_count ?? 0,
      manual: b.manual === true,
    }));
  });

  app.post<{ Params: ReadStateParams; Body: MentionBody | undefined }>(
    '/v1/users/:user_id/read-states/:channel_id/mentions',
    { schema: mentionSchema },
    (req, reply) => {
      const b = req.body ?? {};
      const message = b.message_id === undefined ? undefined : requireId(b.message_id, 'message_id');
      return single(reply, req.params, (channel, channelKey) => ({ op: 'mention', channel, channelKey, message, count: b.count ?? 1 }));
    },
  );

  app.patch<{ Params: ReadStateParams; Body: PatchBody }>('/v1/users/:user_id/read-states/:channel_id', { schema: patchSchema }, (req, reply) => {
    const b = req.body;
    if (b.last_pin_timestamp === undefined && b.flags === undefined) throw new ApiError('EMPTY_PATCH');
    return single(reply, req.params, (channel, channelKey) => ({ op: 'patch', channel, channelKey, pin: b.last_pin_timestamp, flags: b.flags }));
  });

  app.delete<{ Params: ReadStateParams }>('/v1/users/:user_id/read-states/:channel_id', { schema: deleteSchema }, (req, reply) =>
    single(reply, req.params, (channel, channelKey) => ({ op: 'delete', channel, channelKey })),
  );

  app.post<{ Params: UserParams; Body: AckBulkBody }>('/v1/users/:user_id/read-states/ack-bulk', { schema: ackBulkSchema }, (req, reply) => {
    if (ctx.isClosing()) throw new ApiError('SHUTTING_DOWN');
    const userKey = req.params.user_id;
    const userId = requireId(userKey, 'user_id');
    const items = req.body.read_states;
    // Validate everything before running anything: a bad item changes nothing.
    const ops = items.map((item, i): Op => ({
      op: 'ack',
      channel: requireId(item.channel_id, `read_states[${i}].channel_id`),
      channelKey: item.channel_id,
      message: requireIdOrZero(item.message_id, `read_states[${i}].message_id`),
      mentionCount: 0,
      manual: false,
    }));
    if (!ctx.cache.hasRoom(ops.length)) throw new ApiError('SHARD_OVERLOADED');
    const collect = gather(ops.length, (results) => sendReadStates(reply, results));
    ops.forEach((op, i) => runOp(ctx, userKey, userId, op, true, (r) => collect(i, r)));
    return reply;
  });
}
