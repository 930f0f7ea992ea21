/**
 * POST /v1/channels/:channel_id/mentions: one message mentions many users; each user's read
 * state in the channel gets the same rule as a single mention. Split by shard and gathered.
 */
import type { FastifyInstance } from 'fastify';
import { F_HAS_MSG, F_NO_BODY, OP_MENTION } from '../../workers/protocol.js';
import { ApiError } from '../errors.js';
import { CountChangedSink } from '../replies.js';
import { channelMentionsSchema } from '../schemas.js';
import { parsed, requireId } from '../validate.js';
import type { RouteContext } from './context.js';

interface Body {
  message_id: string;
  user_ids: string[];
  count?: number;
}

export function channelRoutes(app: FastifyInstance, ctx: RouteContext): void {
  const { router } = ctx;

  app.post<{ Params: { channel_id: string }; Body: Body }>(
    '/v1/channels/:channel_id/mentions',
    { schema: channelMentionsSchema },
    (req, reply) => {
      if (ctx.isClosing()) throw new ApiError('SHUTTING_DOWN');
      requireId(req.params.channel_id, 'channel_id');
      const cLo = parsed.lo;
      const cHi = parsed.hi;
      requireId(req.body.message_id, 'message_id');
      const mLo = parsed.lo;
      const mHi = parsed.hi;
      const unique = [...new Set(req.body.user_ids)];
      const users = new Uint32Array(unique.length * 2);
      const perShard = new Uint32Array(router.shards);
      for (let i = 0; i < unique.length; i++) {
        requireId(unique[i], `user_ids[${req.body.user_ids.indexOf(unique[i])}]`);
        users[i * 2] = parsed.lo;
        users[i * 2 + 1] = parsed.hi;
        perShard[router.shardFor(parsed.lo, parsed.hi)]++;
      }
      if (!router.hasRoomFor(perShard)) throw new ApiError('SHARD_OVERLOADED');
      const sink = new CountChangedSink(reply, unique.length);
      const head = OP_MENTION | F_HAS_MSG | F_NO_BODY;
      const count = req.body.count ?? 1;
      for (let i = 0; i < unique.length; i++) {
        router.submit(head, users[i * 2], users[i * 2 + 1], cLo, cHi, mLo, mHi, count, 0, 0, sink, i);
      }
      return reply;
    },
  );
}
