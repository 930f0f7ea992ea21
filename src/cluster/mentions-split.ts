/**
 * POST /v1/channels/:channel_id/mentions in cluster mode: the mentioned users this instance owns
 * are applied here, each other owner gets its users as one request of the same route, and the
 * answer adds up `updated`. A user whose partition has no owner refuses the whole request before
 * anything is applied; a part that fails fails the request with its code (applied null when other
 * parts may have been applied), as a failing shard does in a single instance.
 */
import type { FastifyReply } from 'fastify';
import type { IncomingHttpHeaders } from 'node:http';
import type { OpList } from '../../workers/op-list.js';
import { OpWord, ResultStatus, ResultWord } from '../../workers/protocol.js';
import { ApiError, ERRORS, codeForStatus, type ErrorCode, type ErrorDef } from '../errors.js';
import { formatId } from '../ids.js';
import { sendError } from '../replies.js';
import type { OpSink } from '../shard-lane.js';
import type { ShardRouter } from '../shard-router.js';
import { FORWARDED_BY, ownerRefusal, parseOwnerAnswer, type ForwardFailure, type ForwardSink, type Forwarder } from './forward.js';
import { Place, splitByOwner, type OwnerSplit } from './owner-split.js';
import type { ClusterView } from './view.js';

/** The request's fields besides the users, as the route read them. */
export interface MentionsRequest {
  /** path and query, as received */
  url: string;
  messageId: string;
  count: number;
  headers: IncomingHttpHeaders;
}

class MentionsMerge implements OpSink {
  private changed = 0;
  /** users (plus one for the setup) whose result has not arrived */
  private pending: number;
  private failure: ErrorCode | null = null;
  /** the failed part's own `applied` */
  private failureApplied: false | null | undefined = undefined;

  constructor(
    private readonly reply: FastifyReply,
    private readonly view: ClusterView,
    private readonly split: OwnerSplit,
    /** the parts the request went to (shards of this instance count as one) */
    private readonly parts: number,
  ) {
    this.pending = split.place.length + 1;
  }

  onResult(_index: number, b: Uint32Array, at: number): void {
    const status = b[at + ResultWord.Status];
    if (status === ResultStatus.Ok) this.changed += b[at + ResultWord.Changed];
    else {
      const code = codeForStatus(status);
      // Other users of this part may have been applied.
      this.fail(code, this.split.localCount > 1 ? null : (ERRORS[code] as ErrorDef).applied);
    }
    this.settled(1);
  }

  add(updated: number, users: number): void {
    this.changed += updated;
    this.settled(users);
  }

  fail(code: ErrorCode, applied: false | null | undefined): void {
    this.failure = code;
    this.failureApplied = applied;
  }

  settled(n: number): void {
    this.pending -= n;
    if (this.pending > 0) return;
    if (this.failure !== null) return sendError(this.reply, this.failure, undefined, this.parts > 1 || this.failureApplied === null);
    const { place, partition, epoch } = this.split;
    for (let i = 0; i < place.length; i++) {
      if (place[i] === Place.Local && !this.view.mayAnswer(partition[i], epoch[i])) {
        this.view.counters.leaseLostAnswers++;
        return sendError(this.reply, 'LEASE_LOST');
      }
    }
    this.reply.send({ updated: this.changed });
  }
}

/** One owner's share of the users. */
class MentionsPart implements ForwardSink {
  constructor(
    private readonly merge: MentionsMerge,
    private readonly view: ClusterView,
    private readonly users: number,
  ) {}

  onForwarded(status: number, _headers: IncomingHttpHeaders, body: Buffer): void {
    const a = parseOwnerAnswer(body);
    const updated = a?.updated;
    if (status === 200 && typeof updated === 'number') return this.merge.add(updated, this.users);
    const refusal = status === 200 ? null : ownerRefusal(a);
    if (refusal !== null) this.merge.fail(refusal.code, refusal.applied);
    else {
      // An answer that is not one of ours: nothing says the mentions were not applied.
      this.view.counters.forwardFailures++;
      this.merge.fail('FORWARD_FAILED', null);
    }
    this.merge.settled(this.users);
  }

  onForwardFailed(code: ForwardFailure): void {
    this.view.counters.forwardFailures++;
    this.merge.fail(code, (ERRORS[code] as ErrorDef).applied);
    this.merge.settled(this.users);
  }
}

export class ClusterMentions {
  constructor(
    private readonly router: ShardRouter,
    private readonly view: ClusterView,
    private readonly forwarder: Forwarder,
  ) {}

  /** `ops`: one validated mention per distinct user. Throws (nothing applied) for an unowned user or full shards. */
  submit(reply: FastifyReply, ops: OpList, req: MentionsRequest): void {
    const { view } = this;
    const split = splitByOwner(view, ops, req.headers[FORWARDED_BY] !== undefined);
    if (split.unownedCount > 0) {
      view.counters.refusedMoving += split.unownedCount;
      throw new ApiError('PARTITION_UNAVAILABLE');
    }
    const merge = new MentionsMerge(reply, view, split, split.remote.size + (split.localCount > 0 ? 1 : 0));
    if (split.allLocal) {
      if (!this.router.submitAll(ops, merge)) throw new ApiError('SHARD_OVERLOADED');
    } else if (split.localCount > 0) {
      // First: when the shards refuse, nothing has gone to another owner yet.
      if (!this.router.submitAll(split.localOps(ops).ops, merge)) throw new ApiError('SHARD_OVERLOADED');
    }
    const w = ops.words;
    for (const [url, indexes] of split.remote) {
      const userIds = new Array<string>(indexes.length);
      for (let k = 0; k < indexes.length; k++) {
        const at = indexes[k] * OpWord.Size;
        userIds[k] = formatId(w[at + OpWord.UserLo], w[at + OpWord.UserHi]);
      }
      const body = JSON.stringify({ message_id: req.messageId, user_ids: userIds, count: req.count });
      const headers: Record<string, string> = { 'content-type': 'application/json' };
      if (req.headers.authorization !== undefined) headers.authorization = req.headers.authorization;
      view.counters.forwarded++;
      this.forwarder.forward(url, 'POST', req.url, headers, body, new MentionsPart(merge, view, indexes.length));
    }
    merge.settled(1);
  }
}
