/**
 * POST /v1/channels/:channel_id/mentions: one message mentions many users; each user's read
 * state in the channel gets the same rule as a single mention. Split by shard and gathered (in
 * cluster mode first by partition owner, cluster/mentions-split.ts).
 */
import type { FastifyInstance } from 'fastify';
import { OpFlag, Opcode } from '../../workers/protocol.js';
import { OpList } from '../../workers/op-list.js';
import { ApiError } from '../errors.js';
import { CountChangedSink } from '../replies.js';
import { channelMentionsSchema } from '../schemas.js';
import { parsed, parseUserId, requireId } from '../validate.js';
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
      const ids = req.body.user_ids;
      // Duplicates count once; each id is checked once, in request order (an error names its index).
      const seen = new Set<string>();
      const ops = new OpList(ids.length);
      const head = Opcode.Mention | OpFlag.HasMsg | OpFlag.NoBody;
      const count = req.body.count ?? 1;
      for (let i = 0; i < ids.length; i++) {
        const id = ids[i];
        if (seen.has(id)) continue;
        seen.add(id);
        if (!parseUserId(id)) throw new ApiError('INVALID_ID', `user_ids[${i}] must be a decimal id from 1 to 18446744073709551615`);
        const at = ops.add(head, parsed.lo, parsed.hi, cLo, cHi);
        ops.setMessage(at, mLo, mHi);
        ops.setCount(at, count);
      }
      if (ctx.clusterRouting !== null) return ctx.clusterRouting.mentions.submit(reply, ops, { url: req.url, messageId: req.body.message_id, count, headers: req.headers });
      if (!router.submitAll(ops, new CountChangedSink(reply, ops.length))) throw new ApiError('SHARD_OVERLOADED');
    },
  );
}
