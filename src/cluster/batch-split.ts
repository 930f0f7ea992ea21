/**
 * POST /v1/batch in cluster mode: the ops this instance owns go to its shards, each other owner's
 * ops go to it as one sub-batch, ops of partitions without an owner are refused one by one, and
 * the results come back in request order in the usual batch answer.
 */
import type { FastifyReply } from 'fastify';
import type { IncomingHttpHeaders } from 'node:http';
import { ResultWord, httpStatusOf } from '../../workers/protocol.js';
import type { ParsedBatch } from '../batch-parser.js';
import { ApiError, ERRORS, type ErrorCode, type ErrorDef } from '../errors.js';
import { renderBatchOpResult } from '../replies.js';
import { JSON_TYPE, renderBatchResult, renderList } from '../render-json.js';
import type { OpSink } from '../shard-lane.js';
import type { ShardRouter } from '../shard-router.js';
import { FORWARDED_BY, ownerRefusal, parseOwnerAnswer, type ForwardFailure, type ForwardSink, type Forwarder } from './forward.js';
import { Place, splitByOwner, type OwnerSplit } from './owner-split.js';
import type { ClusterView } from './view.js';

/** A batch result that refuses the op with `code`. */
function refusedResult(code: ErrorCode): string {
  return renderBatchResult(ERRORS[code].status, null, code, (ERRORS[code] as ErrorDef).applied);
}

const PARTITION_UNAVAILABLE = refusedResult('PARTITION_UNAVAILABLE');
const LEASE_LOST = refusedResult('LEASE_LOST');

/** One batch's answer being put together: the local ops' results from the shards, the rest from owners. */
class BatchMerge implements OpSink {
  private readonly rendered: string[];
  /** HTTP status of each local op's result (the answer-time lease check looks at successes only) */
  private readonly statuses: Uint16Array;
  /** ops (plus one for the setup) whose result has not arrived */
  private pending: number;

  constructor(
    private readonly reply: FastifyReply,
    private readonly view: ClusterView,
    private readonly batch: ParsedBatch,
    private readonly split: OwnerSplit,
    /** request index of each op of the local list; null when the request's list went as is */
    private readonly localIndex: Uint32Array | null,
  ) {
    const n = batch.length;
    this.rendered = new Array<string>(n);
    this.statuses = new Uint16Array(n);
    this.pending = n + 1;
  }

  onResult(index: number, b: Uint32Array, at: number): void {
    const i = this.localIndex === null ? index : this.localIndex[index];
    this.statuses[i] = httpStatusOf(b[at + ResultWord.Status]);
    this.rendered[i] = renderBatchOpResult(this.batch.userId(i), this.batch.channelId(i), b, at);
    this.settled(1);
  }

  /** Sets op i's rendered result (not a local one). */
  set(i: number, result: string): void {
    this.rendered[i] = result;
  }

  /** `n` more results are in; the last one sends the answer. */
  settled(n: number): void {
    this.pending -= n;
    if (this.pending === 0) this.finish();
  }

  private finish(): void {
    const { place, partition, epoch } = this.split;
    for (let i = 0; i < place.length; i++) {
      if (place[i] !== Place.Local) continue;
      const status = this.statuses[i];
      if (((status >= 200 && status < 300) || status === 404) && !this.view.mayAnswer(partition[i], epoch[i])) {
        this.rendered[i] = LEASE_LOST;
        this.view.counters.leaseLostAnswers++;
      }
    }
    this.reply.header('content-type', JSON_TYPE).send(renderList('results', this.rendered));
  }
}

/** One owner's sub-batch: its results, or its failure, become those of its ops. */
class SubBatch implements ForwardSink {
  constructor(
    private readonly merge: BatchMerge,
    private readonly view: ClusterView,
    /** request index of each op of the sub-batch */
    private readonly ops: number[],
  ) {}

  onForwarded(status: number, _headers: IncomingHttpHeaders, body: Buffer): void {
    const a = parseOwnerAnswer(body);
    const results = a?.results;
    if (status === 200 && Array.isArray(results) && results.length === this.ops.length) {
      for (let k = 0; k < this.ops.length; k++) this.merge.set(this.ops[k], JSON.stringify(results[k]));
      return this.merge.settled(this.ops.length);
    }
    // The owner refused the whole sub-batch (overloaded, stopping, ...): each op gets its answer.
    const refusal = status === 200 ? null : ownerRefusal(a);
    if (refusal !== null) return this.each(renderBatchResult(status, null, refusal.code, refusal.applied));
    // An answer that is not one of ours: nothing says the ops were not applied.
    this.view.counters.forwardFailures++;
    this.each(refusedResult('FORWARD_FAILED'));
  }

  onForwardFailed(code: ForwardFailure): void {
    this.view.counters.forwardFailures++;
    this.each(refusedResult(code));
  }

  private each(result: string): void {
    for (const i of this.ops) this.merge.set(i, result);
    this.merge.settled(this.ops.length);
  }
}

export class ClusterBatch {
  constructor(
    private readonly router: ShardRouter,
    private readonly view: ClusterView,
    private readonly forwarder: Forwarder,
  ) {}

  /** Serves a parsed batch; throws SHARD_OVERLOADED before anything was applied. */
  submit(reply: FastifyReply, batch: ParsedBatch, headers: IncomingHttpHeaders): void {
    const { view } = this;
    const split = splitByOwner(view, batch.ops, headers[FORWARDED_BY] !== undefined);
    if (split.allLocal) {
      const merge = new BatchMerge(reply, view, batch, split, null);
      if (!this.router.submitAll(batch.ops, merge)) throw new ApiError('SHARD_OVERLOADED');
      merge.settled(1);
      return;
    }
    let merge: BatchMerge;
    if (split.localCount > 0) {
      // First: when the shards refuse, nothing has gone to another owner yet.
      const local = split.localOps(batch.ops);
      merge = new BatchMerge(reply, view, batch, split, local.index);
      if (!this.router.submitAll(local.ops, merge)) throw new ApiError('SHARD_OVERLOADED');
    } else {
      merge = new BatchMerge(reply, view, batch, split, null);
    }
    if (split.unownedCount > 0) {
      const { place } = split;
      for (let i = 0; i < place.length; i++) if (place[i] === Place.Unowned) merge.set(i, PARTITION_UNAVAILABLE);
      view.counters.refusedMoving += split.unownedCount;
      merge.settled(split.unownedCount);
    }
    if (split.remote.size > 0) this.sendOn(merge, split, batch, headers);
    merge.settled(1);
  }

  private sendOn(merge: BatchMerge, split: OwnerSplit, batch: ParsedBatch, headers: IncomingHttpHeaders): void {
    // The body is parsed as JSON only now that some op goes elsewhere; each op goes on as it was sent.
    const ops = (JSON.parse(batch.body.toString('utf8')) as { ops: unknown[] }).ops;
    for (const [url, indexes] of split.remote) {
      let body = '{"ops":[';
      for (let k = 0; k < indexes.length; k++) body += (k > 0 ? ',' : '') + JSON.stringify(ops[indexes[k]]);
      body += ']}';
      const out: Record<string, string> = { 'content-type': 'application/json' };
      if (headers.authorization !== undefined) out.authorization = headers.authorization;
      this.view.counters.forwarded++;
      this.forwarder.forward(url, 'POST', '/v1/batch', out, body, new SubBatch(merge, this.view, indexes));
    }
  }
}
