/**
 * Cluster mode on the HTTP side: each single-user request is served here only while this instance
 * owns the user's partition (when it arrives, and again when its op is submitted), is sent on to
 * the owner otherwise (one hop at most), and is refused when the partition has no owner. An answer served here goes out as a success only if the lease
 * still allows it when it is sent. /v1/batch and the channel mentions fan-out split their
 * operations by owner (batch-split.ts, mentions-split.ts) through the ClusterRouting returned here.
 */
import type { FastifyInstance, FastifyReply, FastifyRequest, HookHandlerDoneFunction, RouteOptions } from 'fastify';
import type { IncomingHttpHeaders } from 'node:http';
import type { Dispatcher } from 'undici';
import type { ClusterView } from './view.js';
import { ANSWERED_AT_HEADER, FORWARDED_BY, OWNER_HEADER, type ForwardFailure, type ForwardSink, type Forwarder } from './forward.js';
import { ClusterBatch } from './batch-split.js';
import { ClusterMentions } from './mentions-split.js';
import { parsed, parseUserId } from '../validate.js';
import { prepareError, sendError } from '../replies.js';
import { JSON_TYPE } from '../render-json.js';
import type { RouteContext } from '../routes/context.js';

declare module 'fastify' {
  interface FastifyRequest {
    /** cluster mode: the partition whose owner serves this request here; -1 when none does */
    clusterPartition: number;
    /** the epoch it was accepted under */
    clusterEpoch: number;
  }
}

/** Single-user routes: the user's partition decides where they are served. */
const USER_ROUTE = '/v1/users/:user_id';

/** What the multi-user routes need in cluster mode (null in RouteContext for a single instance). */
export interface ClusterRouting {
  readonly batch: ClusterBatch;
  readonly mentions: ClusterMentions;
}

/** Answer headers of a forwarded request that go back to the caller as the owner sent them. */
const COPIED_HEADERS = ['content-type', 'retry-after', OWNER_HEADER, ANSWERED_AT_HEADER] as const;

/** A forwarded single-user request: the owner's answer, or the failure, becomes the reply. */
class ForwardedReply implements ForwardSink {
  constructor(
    private readonly reply: FastifyReply,
    private readonly view: ClusterView,
  ) {}

  onForwarded(status: number, headers: IncomingHttpHeaders, body: Buffer): void {
    for (const name of COPIED_HEADERS) {
      const value = headers[name];
      if (typeof value === 'string') this.reply.header(name, value);
    }
    this.reply.code(status);
    if (body.length === 0) this.reply.send();
    else this.reply.send(body);
  }

  onForwardFailed(code: ForwardFailure): void {
    this.view.counters.forwardFailures++;
    sendError(this.reply, code);
  }
}

/**
 * The body of a request to forward, read off the socket before fastify parses it (the owner
 * parses and validates it): the same bytes go on, and a non-owner never builds its JSON tree.
 */
class BodyReader {
  private readonly chunks: Buffer[] = [];
  private size = 0;

  constructor(
    private readonly req: FastifyRequest,
    private readonly reply: FastifyReply,
    private readonly partition: number,
    private readonly limit: number,
    private readonly send: (req: FastifyRequest, reply: FastifyReply, p: number, body: Buffer) => void,
  ) {
    req.raw.on('data', this.onData);
    req.raw.on('end', this.onEnd);
  }

  private readonly onData = (chunk: Buffer): void => {
    this.size += chunk.length;
    if (this.size > this.limit) {
      this.stop();
      // The rest of the body is discarded by node once the answer has gone out.
      sendError(this.reply, 'BODY_TOO_LARGE');
      return;
    }
    this.chunks.push(chunk);
  };

  private readonly onEnd = (): void => {
    this.stop();
    this.send(this.req, this.reply, this.partition, Buffer.concat(this.chunks, this.size));
  };

  private stop(): void {
    this.req.raw.off('data', this.onData);
    this.req.raw.off('end', this.onEnd);
  }
}

/** `hooks` with `hook` last, once (a GET route's HEAD twin is declared with the GET's hooks). */
function appendHook<T>(hooks: T | T[] | undefined, hook: T): T[] {
  if (hooks === undefined) return [hook];
  const list = Array.isArray(hooks) ? hooks : [hooks];
  return list.includes(hook) ? list : [...list, hook];
}

/**
 * Installs cluster routing on `app`: call before the routes are declared (the single-user routes
 * get their hooks as they are declared). Returns what the batch and channel routes use.
 */
export function installClusterRouting(app: FastifyInstance, ctx: RouteContext, view: ClusterView, forwarder: Forwarder): ClusterRouting {
  const counters = view.counters;
  const bodyLimit = app.initialConfig.bodyLimit ?? 1024 * 1024;
  app.decorateRequest('clusterPartition', -1);
  app.decorateRequest('clusterEpoch', 0);

  function forwardWithBody(req: FastifyRequest, reply: FastifyReply, p: number, body: Buffer | null): void {
    // Asked again: the owner may have changed while the body arrived.
    const url = view.ownerUrl(p);
    if (url === null) {
      counters.refusedMoving++;
      return sendError(reply, 'PARTITION_UNAVAILABLE');
    }
    const headers: Record<string, string> = {};
    const h = req.headers;
    if (h.authorization !== undefined) headers.authorization = h.authorization;
    if (h['content-type'] !== undefined) headers['content-type'] = h['content-type'];
    counters.forwarded++;
    forwarder.forward(url, req.method as Dispatcher.HttpMethod, req.url, headers, body, new ForwardedReply(reply, view));
  }

  function onUserRequest(req: FastifyRequest, reply: FastifyReply, done: HookHandlerDoneFunction): void {
    // An invalid id is the route's to reject, as in a single instance.
    if (!parseUserId((req.params as { user_id?: unknown }).user_id)) return done();
    const p = view.partitionOf(parsed.lo, parsed.hi);
    if (view.ownsNow(p)) {
      const epoch = view.epochOf(p);
      req.clusterPartition = p;
      req.clusterEpoch = epoch;
      reply.header(OWNER_HEADER, view.instanceId + ' ' + p + ' ' + epoch);
      return done();
    }
    // One hop only: the sender thought this instance owns p; the views disagree while p moves.
    if (req.headers[FORWARDED_BY] !== undefined || view.ownerUrl(p) === null) {
      counters.refusedMoving++;
      return sendError(reply, 'PARTITION_UNAVAILABLE');
    }
    // Not calling done(): the route's handler does not run; the owner's answer is the reply.
    const length = req.headers['content-length'];
    if (length === undefined && req.headers['transfer-encoding'] === undefined) return forwardWithBody(req, reply, p, null);
    if (length !== undefined && Number(length) > bodyLimit) return sendError(reply, 'BODY_TOO_LARGE');
    new BodyReader(req, reply, p, bodyLimit, forwardWithBody);
  }

  /**
   * Again right before the handler submits the op (same turn), for routes with a body: reading it
   * may take a while, and a handover that began meanwhile has already waited for the shards and
   * flushed, so an op applied now would be acknowledged yet not handed over. Nothing is applied.
   */
  function recheckBeforeApply(req: FastifyRequest, reply: FastifyReply, done: HookHandlerDoneFunction): void {
    const p = req.clusterPartition;
    if (p === -1) return done();
    if (view.ownsNow(p)) {
      // held again under a newer epoch (lost and taken back while the body arrived): applied under that one
      const epoch = view.epochOf(p);
      if (epoch !== req.clusterEpoch) {
        req.clusterEpoch = epoch;
        reply.header(OWNER_HEADER, view.instanceId + ' ' + p + ' ' + epoch);
      }
      return done();
    }
    req.clusterPartition = -1;
    reply.removeHeader(OWNER_HEADER);
    counters.refusedMoving++;
    sendError(reply, 'PARTITION_UNAVAILABLE');
  }

  function checkLeaseOnSend(req: FastifyRequest, reply: FastifyReply, payload: unknown, done: (err: null, payload: unknown) => void): void {
    const p = req.clusterPartition;
    const status = reply.statusCode;
    // A 404 is an answer about the data too (a stale copy may lack what the next owner has).
    if (p === -1 || status < 200 || (status >= 300 && status !== 404)) return done(null, payload);
    if (view.mayAnswer(p, req.clusterEpoch)) {
      // A process paused right after this line delivers the answer later: this says when it was decided.
      reply.header(ANSWERED_AT_HEADER, String(Date.now()));
      return done(null, payload);
    }
    // Applied under a lease that has ended: the next owner may not have it, so no success.
    counters.leaseLostAnswers++;
    const body = prepareError(reply, 'LEASE_LOST');
    reply.header('content-type', JSON_TYPE);
    done(null, JSON.stringify(body));
  }

  app.addHook('onRoute', (route: RouteOptions) => {
    if (route.url !== USER_ROUTE && !route.url.startsWith(USER_ROUTE + '/')) return;
    route.onRequest = appendHook(route.onRequest, onUserRequest);
    route.onSend = appendHook(route.onSend, checkLeaseOnSend);
    // Without a body, fastify runs the handler in the turn onRequest ran in.
    const methods = Array.isArray(route.method) ? route.method : [route.method];
    if (methods.some((m) => m !== 'GET' && m !== 'HEAD')) route.preHandler = appendHook(route.preHandler, recheckBeforeApply);
  });

  return { batch: new ClusterBatch(ctx.router, view, forwarder), mentions: new ClusterMentions(ctx.router, view, forwarder) };
}
