/**
 * POST /v1/channels/:channel_id/mentions: one message mentions many users (duplicates once);
 * answers how many read states changed. Same checks as src/routes/channels.ts.
 */
import type { FastifyInstance } from 'fastify';
import { ApiError } from '../../src/errors.js';
import { channelMentionsSchema } from '../../src/schemas.js';
import type { NaiveContext } from './context.js';
import { requireId } from './ids.js';
import { runOp, type Op } from './ops.js';
import { gather, sendUpdated } from './replies.js';

interface Body {
  message_id: string;
  user_ids: string[];
  count?: number;
}

export function channelRoutes(app: FastifyInstance, ctx: NaiveContext): void {
  app.post<{ Params: { channel_id: string }; Body: Body }>(
    '/v1/channels/:channel_id/mentions',
    { schema: channelMentionsSchema },
    (req, reply) => {
      if (ctx.isClosing()) throw new ApiError('SHUTTING_DOWN');
      const channelKey = req.params.channel_id;
      const channel = requireId(channelKey, 'channel_id');
      const message = requireId(req.body.message_id, 'message_id');
      const unique = [...new Set(req.body.user_ids)];
      const userIds = unique.map((u) => requireId(u, `user_ids[${req.body.user_ids.indexOf(u)}]`));
      if (!ctx.cache.hasRoom(unique.length)) throw new ApiError('SHARD_OVERLOADED');
      const op: Op = { op: 'mention', channel, channelKey, message, count: req.body.count ?? 1 };
      const collect = gather(unique.length, (results) => sendUpdated(reply, results));
      for (let i = 0; i < unique.length; i++) runOp(ctx, unique[i], userIds[i], op, false, (r) => collect(i, r));
      return reply;
    },
  );
}
