/**
 * Routes on one user's read states: get, get all (a delta with `since`, a page with `limit` and
 * `after`), summary, ack, mention, patch, delete, ack-bulk.
 */
import type { FastifyInstance } from 'fastify';
import { OpFlag, Opcode } from '../../workers/protocol.js';
import { OpList } from '../../workers/op-list.js';
import { ApiError } from '../errors.js';
import { GatherSink, ReadStateSink, SummarySink, UserReadStatesSink } from '../replies.js';
import type { OpSink } from '../shard-lane.js';
import {
  ackBulkSchema,
  MAX_PAGE,
  ackSchema,
  deleteSchema,
  getAllSchema,
  getOneSchema,
  mentionSchema,
  patchSchema,
  summarySchema,
} from '../schemas.js';
import { parseId } from '../ids.js';
import { parsed, requireId, requireIdOrZero } from '../validate.js';
import type { RouteContext } from './context.js';

interface UserParams {
  user_id: string;
}
interface ListQuery {
  since?: string;
  limit?: string;
  after?: string;
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

/** The one operation of a single-op request: handlers run one at a time and submit() copies it. */
const one = new OpList(1);

export function readStateRoutes(app: FastifyInstance, ctx: RouteContext): void {
  const { router } = ctx;

  /** Starts the request's op on the path's user and channel; returns its offset in `one`. */
  function begin(p: ReadStateParams, head: number): number {
    if (ctx.isClosing()) throw new ApiError('SHUTTING_DOWN');
    requireId(p.user_id, 'user_id');
    const uLo = parsed.lo;
    const uHi = parsed.hi;
    requireId(p.channel_id, 'channel_id');
    one.clear();
    return one.add(head, uLo, uHi, parsed.lo, parsed.hi);
  }

  /**
   * Queues the op; its sink answers later. Handlers return nothing: a returned reply is a thenable
   * that fastify would wait on with end-of-stream listeners on every response.
   */
  function submit(sink: OpSink): void {
    if (!router.submit(one, 0, sink, 0)) throw new ApiError('SHARD_OVERLOADED');
  }

  app.get<{ Params: UserParams; Querystring: ListQuery }>('/v1/users/:user_id/read-states', { schema: getAllSchema }, (req, reply) => {
    if (ctx.isClosing()) throw new ApiError('SHUTTING_DOWN');
    const q = req.query;
    let head = Opcode.GetAll;
    let since = -1;
    if (q.since !== undefined) {
      since = Number(q.since);
      if (!Number.isSafeInteger(since)) throw new ApiError('INVALID_QUERY', `since must be an integer from 0 to ${Number.MAX_SAFE_INTEGER}`);
      head |= OpFlag.HasSince;
    }
    let limit = 0;
    if (q.limit !== undefined) {
      limit = Number(q.limit);
      if (limit > MAX_PAGE) throw new ApiError('INVALID_QUERY', `limit must be from 1 to ${MAX_PAGE}`);
      head |= OpFlag.HasLimit;
    }
    let aLo = 0;
    let aHi = 0;
    if (q.after !== undefined) {
      if (!parseId(q.after)) throw new ApiError('INVALID_QUERY', 'after must be a decimal id from 0 to 18446744073709551615');
      aLo = parsed.lo;
      aHi = parsed.hi;
      head |= OpFlag.HasAfter;
    }
    requireId(req.params.user_id, 'user_id');
    one.clear();
    // the list's parameters in the op's fields: after as the channel, limit as the count, since as the pin
    const at = one.add(head, parsed.lo, parsed.hi, aLo, aHi);
    one.setCount(at, limit);
    one.setPin(at, since < 0 ? 0 : since);
    submit(new UserReadStatesSink(reply, req.params.user_id, since));
  });

  app.get<{ Params: UserParams }>('/v1/users/:user_id/summary', { schema: summarySchema }, (req, reply) => {
    if (ctx.isClosing()) throw new ApiError('SHUTTING_DOWN');
    requireId(req.params.user_id, 'user_id');
    one.clear();
    one.add(Opcode.Summary, parsed.lo, parsed.hi, 0, 0);
    submit(new SummarySink(reply, req.params.user_id));
  });

  app.get<{ Params: ReadStateParams }>(
    '/v1/users/:user_id/read-states/:channel_id',
    { schema: getOneSchema },
    (req, reply) => {
      begin(req.params, Opcode.Get);
      submit(new ReadStateSink(reply, req.params.user_id, req.params.channel_id));
    },
  );

  app.post<{ Params: ReadStateParams; Body: AckBody }>(
    '/v1/users/:user_id/read-states/:channel_id/ack',
    { schema: ackSchema },
    (req, reply) => {
      const b = req.body;
      const at = begin(req.params, Opcode.Ack | OpFlag.HasMsg | (b.manual === true ? OpFlag.Manual : 0));
      requireIdOrZero(b.message_id, 'message_id');
      one.setMessage(at, parsed.lo, parsed.hi);
      one.setCount(at, b.mention_count ?? 0);
      submit(new ReadStateSink(reply, req.params.user_id, req.params.channel_id));
    },
  );

  app.post<{ Params: ReadStateParams; Body: MentionBody | undefined }>(
    '/v1/users/:user_id/read-states/:channel_id/mentions',
    { schema: mentionSchema },
    (req, reply) => {
      const b = req.body ?? {};
      const at = begin(req.params, b.message_id !== undefined ? Opcode.Mention | OpFlag.HasMsg : Opcode.Mention);
      if (b.message_id !== undefined) {
        requireId(b.message_id, 'message_id');
        one.setMessage(at, parsed.lo, parsed.hi);
      }
      one.setCount(at, b.count ?? 1);
      submit(new ReadStateSink(reply, req.params.user_id, req.params.channel_id));
    },
  );

  app.patch<{ Params: ReadStateParams; Body: PatchBody }>(
    '/v1/users/:user_id/read-states/:channel_id',
    { schema: patchSchema },
    (req, reply) => {
      const b = req.body;
      const head =
        Opcode.Patch | (b.last_pin_timestamp !== undefined ? OpFlag.HasPin : 0) | (b.flags !== undefined ? OpFlag.HasFlags : 0);
      if (head === Opcode.Patch) throw new ApiError('EMPTY_PATCH');
      const at = begin(req.params, head);
      one.setPin(at, b.last_pin_timestamp ?? 0);
      one.setFlags(at, b.flags ?? 0);
      submit(new ReadStateSink(reply, req.params.user_id, req.params.channel_id));
    },
  );

  app.delete<{ Params: ReadStateParams }>(
    '/v1/users/:user_id/read-states/:channel_id',
    { schema: deleteSchema },
    (req, reply) => {
      begin(req.params, Opcode.Delete);
      submit(new ReadStateSink(reply, req.params.user_id, req.params.channel_id));
    },
  );

  app.post<{ Params: UserParams; Body: AckBulkBody }>(
    '/v1/users/:user_id/read-states/ack-bulk',
    { schema: ackBulkSchema },
    (req, reply) => {
      if (ctx.isClosing()) throw new ApiError('SHUTTING_DOWN');
      const userId = req.params.user_id;
      requireId(userId, 'user_id');
      const uLo = parsed.lo;
      const uHi = parsed.hi;
      const items = req.body.read_states;
      // Validate everything before submitting anything: a bad item changes nothing.
      const ops = new OpList(items.length);
      const channelIds = new Array<string>(items.length);
      for (let i = 0; i < items.length; i++) {
        requireId(items[i].channel_id, `read_states[${i}].channel_id`);
        const at = ops.add(Opcode.Ack | OpFlag.HasMsg, uLo, uHi, parsed.lo, parsed.hi);
        requireIdOrZero(items[i].message_id, `read_states[${i}].message_id`);
        ops.setMessage(at, parsed.lo, parsed.hi);
        channelIds[i] = items[i].channel_id;
      }
      const sink = new GatherSink(reply, new Array<string>(items.length).fill(userId), channelIds);
      if (!router.submitAll(ops, sink)) throw new ApiError('SHARD_OVERLOADED');
    },
  );
}
