/**
 * ReadStatesClient: a typed client of the read-states HTTP API over one undici Pool (keep-alive,
 * no pipelining, a bounded number of connections).
 *
 * - Single-op calls (getReadState, ack, mention, patch, deleteReadState) made in the same
 *   event-loop turn are coalesced into one POST /v1/batch (a turn with one op uses its own route);
 *   each caller gets its own result or error from the batch's per-op results.
 * - Retries, with exponential backoff, jitter and Retry-After (capped), only for answers that say
 *   the operation was not applied (503/429 with `applied: false`, or a connection that was never
 *   established); never for `applied: null`, an unknown outcome, or a 4xx. In a batch only the ops
 *   whose result said "not applied" are retried.
 * - Every call has a deadline (timeoutMs, retries included) and may take an AbortSignal.
 * - With `cluster` (cluster.ts), each single-user call goes straight to the instance that owns the
 *   user's partition, by the map GET /v1/cluster gives; a coalesced batch is split by owner. One
 *   Pool per instance, made when first needed.
 */
import { Pool, type Dispatcher } from 'undici';
import type { IncomingHttpHeaders } from 'node:http';
import {
  AbortError,
  ClientClosedError,
  ConnectionError,
  ReadStatesError,
  ServerError,
  TimeoutError,
  UnavailableError,
  copyError,
  errorForAnswer,
} from './errors.js';
import { ClusterRouter, type ClusterRoutingOptions } from './cluster.js';
import type {
  AckBulkItem,
  AckBulkResult,
  AckInput,
  BatchOp,
  BatchResult,
  ClusterState,
  FanOutInput,
  FanOutResult,
  HealthStatus,
  Id,
  MentionInput,
  PatchInput,
  ReadState,
  ReadStatesQuery,
  UserReadStates,
  UserSummary,
} from './types.js';
import {
  ACK_BULK_RESULT_SHAPE,
  BATCH_RESULT_SHAPE,
  CLUSTER_STATE_SHAPE,
  FAN_OUT_RESULT_SHAPE,
  HEALTH_STATUS_SHAPE,
  READ_STATE_SHAPE,
  USER_READ_STATES_SHAPE,
  USER_SUMMARY_SHAPE,
  mismatch,
  type ObjectShape,
} from './shapes.js';
import {
  MAX_BATCH_OPS,
  MAX_BULK_ACKS,
  MAX_COUNT,
  MAX_FANOUT_USERS,
  MAX_I32,
  MAX_PAGE,
  MAX_U32,
  bool,
  emptyPatch,
  idText,
  intIn,
  listOf,
} from './validate.js';

export interface RetryOptions {
  /** requests per call in all, the first included (default 4; 1 = never retry) */
  maxAttempts?: number;
  /** backoff before the first retry, doubled for each further one, with jitter (default 50 ms) */
  baseDelayMs?: number;
  /** the backoff's ceiling (default 1000 ms) */
  maxDelayMs?: number;
  /** a Retry-After is waited for up to this long (default 2000 ms) */
  maxRetryAfterMs?: number;
}

export interface ReadStatesClientOptions {
  /** the service's base URL, e.g. http://127.0.0.1:3000 (a path is kept as a prefix) */
  url: string | URL;
  /** sent as `Authorization: Bearer <token>` */
  authToken?: string;
  /** connections the pool may open (default 8) */
  connections?: number;
  /** default deadline of a call, retries included (default 10000 ms) */
  timeoutMs?: number;
  /** ms to establish a connection (default 5000) */
  connectTimeoutMs?: number;
  /** idle keep-alive connections are closed after this long unless the server says less (default 10000 ms) */
  keepAliveTimeoutMs?: number;
  /** coalesce single-op calls of one event-loop turn into POST /v1/batch (default true) */
  coalesce?: boolean;
  /** at most this many ops per coalesced batch (default 1000; the server takes up to 10000) */
  maxBatchOps?: number;
  /** retry policy; false: never retry */
  retry?: RetryOptions | false;
  /**
   * Route each single-user call (and each op of a coalesced batch) straight to the instance that
   * owns the user's partition, by the map GET /v1/cluster answers at `url` (loaded at first use,
   * reloaded every refreshMs and when an answer says it is stale). Default false: every call goes
   * to `url`. Against a single instance (`{cluster: null}`) it changes nothing.
   */
  cluster?: boolean | ClusterRoutingOptions;
}

export interface CallOptions {
  /** this call's deadline, retries included (default: the client's timeoutMs) */
  timeoutMs?: number;
  signal?: AbortSignal;
  /** this call's retry policy, over the client's; false: never retry */
  retry?: RetryOptions | false;
}

export type GetReadStatesOptions = ReadStatesQuery & CallOptions;

type Retry = Required<RetryOptions>;
const DEFAULT_RETRY: Retry = { maxAttempts: 4, baseDelayMs: 50, maxDelayMs: 1000, maxRetryAfterMs: 2000 };

/** The single-op calls that can be coalesced. */
type SingleOp = Exclude<BatchOp, { op: 'summary' }>;

interface HttpAnswer {
  status: number;
  headers: IncomingHttpHeaders;
  body: unknown;
}

/** Where a request goes: an instance's pool and the path prefix of its URL. */
interface Target {
  /** the instance's base URL as the map gives it; '' for the configured URL */
  readonly url: string;
  readonly pool: Pool;
  readonly base: string;
}

/** Answers that say the client's map is stale: the partition is not (or no longer) where it sent the call. */
const STALE_MAP_CODES = new Set(['PARTITION_UNAVAILABLE', 'FORWARD_FAILED', 'LEASE_LOST']);

/** One HTTP request carrying one or more op calls. */
interface Carrier {
  live: number;
  complete: boolean;
  ctrl: AbortController;
}

/** One single-op call, from the caller's invocation to its result. */
interface OpCall {
  op: SingleOp;
  resolve(value: ReadState | undefined): void;
  reject(err: ReadStatesError): void;
  retry: Retry | null;
  deadline: number;
  timeoutMs: number;
  signal: AbortSignal | undefined;
  /** requests whose answer was about this op */
  attempts: number;
  phase: 'queued' | 'sent' | 'backoff' | 'done';
  timer: NodeJS.Timeout | undefined;
  backoffTimer: NodeJS.Timeout | undefined;
  onAbort: (() => void) | undefined;
  carrier: Carrier | undefined;
  lastError: ReadStatesError | undefined;
}

/** Errors of connections that were never established: the request did not leave. */
const NEVER_SENT = new Set([
  'ECONNREFUSED',
  'ENOTFOUND',
  'EAI_AGAIN',
  'EHOSTUNREACH',
  'ENETUNREACH',
  'EADDRNOTAVAIL',
  'UND_ERR_CONNECT_TIMEOUT',
]);

function isRecord(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

function errCode(err: unknown): string | undefined {
  return isRecord(err) && typeof err.code === 'string' ? err.code : undefined;
}

function neverSent(err: unknown): boolean {
  if (err instanceof AggregateError) return err.errors.length > 0 && err.errors.every(neverSent);
  const code = errCode(err);
  if (code !== undefined && NEVER_SENT.has(code)) return true;
  // undici wraps some connect errors; look one level down.
  const cause = isRecord(err) ? err.cause : undefined;
  return cause !== undefined && cause !== err && errCode(cause) !== undefined && NEVER_SENT.has(errCode(cause)!);
}

function parseRetryAfter(headers: IncomingHttpHeaders): number | undefined {
  const raw = headers['retry-after'];
  const text = Array.isArray(raw) ? raw[0] : raw;
  if (text === undefined) return undefined;
  if (/^\s*\d+\s*$/.test(text)) return Number(text) * 1000;
  const at = Date.parse(text);
  return Number.isNaN(at) ? undefined : Math.max(0, at - Date.now());
}

/** Retried: refusals that say the operation was not applied, and connections never established. */
function retryable(err: ReadStatesError): boolean {
  if (err.applied !== false) return false;
  if (err instanceof ConnectionError) return true;
  return err.status === 503 || err.status === 429;
}

function badResponse(what: string, status: number | undefined, attempts: number): ServerError {
  return new ServerError({ code: 'BAD_RESPONSE', message: `unexpected answer: ${what}`, status, applied: null, attempts });
}

/** The body as T if it has T's shape (shapes.ts), else BAD_RESPONSE. */
function conforming<T>(res: HttpAnswer, shape: ObjectShape, what: string, attempts = 1): T {
  const why = mismatch(res.body, shape);
  if (why !== null) throw badResponse(`not ${what} (${why})`, res.status, attempts);
  return res.body as T;
}

function describe(op: SingleOp): string {
  return `${op.op} ${op.user_id}/${op.channel_id}`;
}

function opPath(op: SingleOp): string {
  return `/v1/users/${op.user_id}/read-states/${op.channel_id}`;
}

/** A single op as a request of its own route (the path without the target's prefix). */
function singleRequest(op: SingleOp): { method: Dispatcher.HttpMethod; path: string; body?: unknown } {
  switch (op.op) {
    case 'get':
      return { method: 'GET', path: opPath(op) };
    case 'delete':
      return { method: 'DELETE', path: opPath(op) };
    case 'ack': {
      const body: Record<string, unknown> = { message_id: op.message_id };
      if (op.mention_count !== undefined) body.mention_count = op.mention_count;
      if (op.manual !== undefined) body.manual = op.manual;
      return { method: 'POST', path: opPath(op) + '/ack', body };
    }
    case 'mention': {
      const body: Record<string, unknown> = {};
      if (op.message_id !== undefined) body.message_id = op.message_id;
      if (op.count !== undefined) body.count = op.count;
      return { method: 'POST', path: opPath(op) + '/mentions', body };
    }
    case 'patch': {
      const body: Record<string, unknown> = {};
      if (op.last_pin_timestamp !== undefined) body.last_pin_timestamp = op.last_pin_timestamp;
      if (op.flags !== undefined) body.flags = op.flags;
      return { method: 'PATCH', path: opPath(op), body };
    }
  }
}

export class ReadStatesClient {
  /** the configured URL's */
  private readonly home: Target;
  private readonly poolOptions: Pool.Options;
  /** every pool, by origin (an owner on the configured URL's origin shares its pool) */
  private readonly pools = new Map<string, Pool>();
  /** owners' targets, by their URL as the map gives it */
  private readonly targets = new Map<string, Target>();
  private readonly router: ClusterRouter | null;
  private readonly authorization: string | undefined;
  private readonly timeoutMs: number;
  private readonly coalesce: boolean;
  private readonly maxBatchOps: number;
  private readonly retry: Retry | null;

  private queue: OpCall[] = [];
  private flushHandle: NodeJS.Immediate | undefined;
  /** op calls not yet answered */
  private readonly calls = new Set<OpCall>();
  /** requests and direct calls under way (close() waits for them) */
  private readonly inflight = new Set<Promise<unknown>>();
  private closed = false;
  private closing: Promise<void> | undefined;
  private readonly closeCtrl = new AbortController();

  constructor(options: ReadStatesClientOptions) {
    const url = new URL(options.url);
    if (url.protocol !== 'http:' && url.protocol !== 'https:') throw new TypeError(`url must be http(s), got ${url.protocol}`);
    const connections = options.connections ?? 8;
    if (!Number.isInteger(connections) || connections < 1) throw new TypeError('connections must be an integer >= 1');
    this.maxBatchOps = options.maxBatchOps ?? 1000;
    if (!Number.isInteger(this.maxBatchOps) || this.maxBatchOps < 1 || this.maxBatchOps > MAX_BATCH_OPS) {
      throw new TypeError(`maxBatchOps must be an integer from 1 to ${MAX_BATCH_OPS}`);
    }
    this.timeoutMs = options.timeoutMs ?? 10_000;
    if (!(this.timeoutMs > 0)) throw new TypeError('timeoutMs must be > 0');
    this.coalesce = options.coalesce ?? true;
    this.retry = options.retry === false ? null : { ...DEFAULT_RETRY, ...options.retry };
    if (options.authToken !== undefined) {
      if (!/^[\x21-\x7e]+$/.test(options.authToken)) throw new TypeError('authToken must be one token of visible ASCII');
      this.authorization = `Bearer ${options.authToken}`;
    }
    this.poolOptions = {
      connections,
      pipelining: 1,
      keepAliveTimeout: options.keepAliveTimeoutMs ?? 10_000,
      connect: { timeout: options.connectTimeoutMs ?? 5_000 },
    };
    this.home = { url: '', pool: this.poolOf(url.origin), base: url.pathname.replace(/\/+$/, '') };
    const cluster = options.cluster ?? false;
    if (cluster === false) this.router = null;
    else {
      const refreshMs = (cluster === true ? undefined : cluster.refreshMs) ?? 5_000;
      if (!Number.isFinite(refreshMs) || refreshMs < 100) throw new TypeError('cluster.refreshMs must be >= 100');
      // One load never outlives the next refresh, nor a call's deadline.
      this.router = new ClusterRouter((signal) => this.http(this.home, 'GET', '/v1/cluster', undefined, signal), refreshMs, Math.min(refreshMs, this.timeoutMs));
    }
  }

  // --- one read state (coalesced) -------------------------------------------------------------

  /** GET /v1/users/{user}/read-states/{channel}; NotFoundError if there is none. */
  getReadState(user: Id, channel: Id, opts?: CallOptions): Promise<ReadState> {
    return this.guard(() => this.single({ op: 'get', user_id: idText(user, 'user'), channel_id: idText(channel, 'channel') }, opts)) as Promise<ReadState>;
  }

  /** POST .../ack: moves forward only unless `manual`; creates the read state if absent. */
  ack(user: Id, channel: Id, input: AckInput, opts?: CallOptions): Promise<ReadState> {
    return this.guard(() => {
      const op: SingleOp = { op: 'ack', user_id: idText(user, 'user'), channel_id: idText(channel, 'channel'), message_id: idText(input.messageId, 'messageId', 0) };
      if (input.mentionCount !== undefined) op.mention_count = intIn(input.mentionCount, 'mentionCount', 0, MAX_I32);
      if (input.manual !== undefined) op.manual = bool(input.manual, 'manual');
      return this.single(op, opts);
    }) as Promise<ReadState>;
  }

  /** POST .../mentions: adds `count` (default 1) unless messageId is not newer than what was read. */
  mention(user: Id, channel: Id, input: MentionInput = {}, opts?: CallOptions): Promise<ReadState> {
    return this.guard(() => {
      const op: SingleOp = { op: 'mention', user_id: idText(user, 'user'), channel_id: idText(channel, 'channel') };
      if (input.messageId !== undefined) op.message_id = idText(input.messageId, 'messageId');
      if (input.count !== undefined) op.count = intIn(input.count, 'count', 1, MAX_COUNT);
      return this.single(op, opts);
    }) as Promise<ReadState>;
  }

  /** PATCH: lastPinTimestamp (forward only) and/or flags. */
  patch(user: Id, channel: Id, input: PatchInput, opts?: CallOptions): Promise<ReadState> {
    return this.guard(() => {
      const op: SingleOp = { op: 'patch', user_id: idText(user, 'user'), channel_id: idText(channel, 'channel') };
      if (input.lastPinTimestamp !== undefined) op.last_pin_timestamp = intIn(input.lastPinTimestamp, 'lastPinTimestamp', 0, Number.MAX_SAFE_INTEGER);
      if (input.flags !== undefined) op.flags = intIn(input.flags, 'flags', 0, MAX_U32);
      if (op.last_pin_timestamp === undefined && op.flags === undefined) throw emptyPatch();
      return this.single(op, opts);
    }) as Promise<ReadState>;
  }

  /** DELETE; NotFoundError if there was none. */
  deleteReadState(user: Id, channel: Id, opts?: CallOptions): Promise<void> {
    return this.guard(() => this.single({ op: 'delete', user_id: idText(user, 'user'), channel_id: idText(channel, 'channel') }, opts)) as Promise<void>;
  }

  // --- multi-op routes (one request each) -----------------------------------------------------

  /**
   * GET /v1/users/{user}/read-states: all of them, ordered by channel id (`full: true`). With
   * `since` (a `version` an earlier answer gave for this user) a delta (`full: false`): the read
   * states changed after it and `deleted_channel_ids`; if since is too old to answer exactly, a
   * full answer instead. With `limit` (1..10000) and `after`, one page: `next_after` is present
   * when more remain. When paging, keep the first page's `version` as the next `since`.
   * A since above the user's version fails with SINCE_AHEAD: sync again without it.
   */
  getReadStates(user: Id, opts: GetReadStatesOptions = {}): Promise<UserReadStates> {
    return this.guard(() => {
      const userId = idText(user, 'user');
      const query: string[] = [];
      if (opts.since !== undefined) query.push(`since=${intIn(opts.since, 'since', 0, Number.MAX_SAFE_INTEGER, 'INVALID_QUERY')}`);
      if (opts.limit !== undefined) query.push(`limit=${intIn(opts.limit, 'limit', 1, MAX_PAGE, 'INVALID_QUERY')}`);
      if (opts.after !== undefined) query.push(`after=${idText(opts.after, 'after', 0, 'INVALID_QUERY')}`);
      const path = `/v1/users/${userId}/read-states${query.length > 0 ? '?' + query.join('&') : ''}`;
      return this.direct('GET', path, undefined, opts, true, userId, (res) => {
        const b = res.body;
        if (isRecord(b) && Array.isArray(b.read_states) && b.version === undefined && b.full === undefined) {
          // Rather than pass a full list off as a delta or a page.
          throw new ServerError({ code: 'UNSUPPORTED_BY_SERVER', message: 'the server answered without version and full: it predates delta sync and paging', status: res.status });
        }
        return conforming<UserReadStates>(res, USER_READ_STATES_SHAPE, "a user's read states");
      });
    });
  }

  /** GET /v1/users/{user}/summary: how many read states, their mention total, how many have mentions. */
  summary(user: Id, opts?: CallOptions): Promise<UserSummary> {
    return this.guard(() => {
      const userId = idText(user, 'user');
      return this.direct('GET', `/v1/users/${userId}/summary`, undefined, opts, true, userId, (res) => conforming<UserSummary>(res, USER_SUMMARY_SHAPE, 'a summary'));
    });
  }

  /**
   * POST /v1/users/{user}/read-states/ack-bulk: up to 1000 normal acks of one user, answered in
   * request order. If some fail the whole call fails (with applied: null when several were sent).
   */
  ackBulk(user: Id, items: AckBulkItem[], opts?: CallOptions): Promise<AckBulkResult> {
    return this.guard(() => {
      const userId = idText(user, 'user');
      const list = listOf<AckBulkItem>(items, 'items', 1, MAX_BULK_ACKS);
      const read_states = list.map((it, i) => ({ channel_id: idText(it.channelId, `items[${i}].channelId`), message_id: idText(it.messageId, `items[${i}].messageId`, 0) }));
      return this.direct('POST', `/v1/users/${userId}/read-states/ack-bulk`, { read_states }, opts, true, userId, (res) => {
        const b = conforming<AckBulkResult>(res, ACK_BULK_RESULT_SHAPE, 'a list of read states');
        if (b.read_states.length !== list.length) throw badResponse('not one read state per ack', res.status, 1);
        return b;
      });
    });
  }

  /** POST /v1/channels/{channel}/mentions: one message mentions up to 10000 users (duplicates count once). */
  fanOutMention(channel: Id, users: Id[], input: FanOutInput, opts?: CallOptions): Promise<FanOutResult> {
    return this.guard(() => {
      const channelId = idText(channel, 'channel');
      const user_ids = listOf<Id>(users, 'users', 1, MAX_FANOUT_USERS).map((u, i) => idText(u, `users[${i}]`));
      const body: Record<string, unknown> = { message_id: idText(input.messageId, 'messageId'), user_ids };
      if (input.count !== undefined) body.count = intIn(input.count, 'count', 1, MAX_COUNT);
      // Many users, many partitions: one request to the configured instance, which splits it by owner.
      return this.direct('POST', `/v1/channels/${channelId}/mentions`, body, opts, true, undefined, (res) => {
        return conforming<FanOutResult>(res, FAN_OUT_RESULT_SHAPE, 'an updated count');
      });
    });
  }

  /**
   * POST /v1/batch as is: the ops go in one request (up to 10000) and the per-op results come back
   * raw, failures included; only a refusal of the whole request that says "not applied" is retried.
   * A summary op (`{op: 'summary', user_id}`) is answered `{status: 200, summary}`.
   */
  batch(ops: BatchOp[], opts?: CallOptions): Promise<BatchResult> {
    return this.guard(() => {
      listOf<BatchOp>(ops, 'ops', 1, MAX_BATCH_OPS);
      // As is, to the configured instance (which forwards the parts it does not own): the caller
      // reads its results raw, failures included, and one request stays one request.
      return this.direct('POST', '/v1/batch', { ops }, opts, true, undefined, (res) => {
        const b = conforming<BatchResult>(res, BATCH_RESULT_SHAPE, 'batch results');
        if (b.results.length !== ops.length) throw badResponse('not one result per op', res.status, 1);
        return b;
      });
    });
  }

  /** GET /health: the process is up (never needs a token). */
  health(opts?: CallOptions): Promise<HealthStatus> {
    return this.guard(() => this.direct('GET', '/health', undefined, opts, false, undefined, (res) => conforming<HealthStatus>(res, HEALTH_STATUS_SHAPE, 'a status')));
  }

  /** GET /ready: every shard answers and the store works; else an UnavailableError (NOT_READY, STORE_UNAVAILABLE, SHUTTING_DOWN). */
  ready(opts?: CallOptions): Promise<HealthStatus> {
    return this.guard(() => this.direct('GET', '/ready', undefined, opts, false, undefined, (res) => conforming<HealthStatus>(res, HEALTH_STATUS_SHAPE, 'a status')));
  }

  /**
   * GET /v1/cluster at the configured URL, as is: the cluster's members and who owns each partition
   * (`{cluster: null}` from a single instance). The `cluster` option routes by it on its own.
   */
  clusterState(opts?: CallOptions): Promise<ClusterState> {
    return this.guard(() => this.direct('GET', '/v1/cluster', undefined, opts, true, undefined, (res) => conforming<ClusterState>(res, CLUSTER_STATE_SHAPE, 'a cluster map')));
  }

  /**
   * Stops taking calls (they fail with CLIENT_CLOSED), sends what is queued, lets requests under
   * way finish (calls waiting to be retried fail with their last error) and closes the connections.
   */
  close(): Promise<void> {
    if (this.closing !== undefined) return this.closing;
    this.closed = true;
    this.closeCtrl.abort();
    this.closing = (async () => {
      if (this.flushHandle !== undefined) {
        clearImmediate(this.flushHandle);
        this.flush();
      }
      if (this.router !== null) {
        // Calls held for a map go out (to the configured URL) once its load is abandoned.
        await this.router.close();
        if (this.flushHandle !== undefined) {
          clearImmediate(this.flushHandle);
          this.flush();
        }
      }
      for (const c of [...this.calls]) {
        if (c.phase === 'backoff') this.finish(c, c.lastError ?? this.closedError());
      }
      while (this.inflight.size > 0) await Promise.allSettled([...this.inflight]);
      await Promise.all([...this.pools.values()].map((p) => p.close()));
    })();
    return this.closing;
  }

  // --- internals --------------------------------------------------------------------------------

  /** Runs fn, turning a synchronous throw (bad input) into a rejection. */
  private guard<T>(fn: () => Promise<T>): Promise<T> {
    try {
      return fn();
    } catch (err) {
      return Promise.reject(err);
    }
  }

  private closedError(): ClientClosedError {
    return new ClientClosedError({ code: 'CLIENT_CLOSED', message: 'the client is closed', applied: false });
  }

  private policy(opts: CallOptions | undefined): { timeoutMs: number; retry: Retry | null } {
    const timeoutMs = opts?.timeoutMs ?? this.timeoutMs;
    if (!(timeoutMs > 0)) throw new TypeError('timeoutMs must be > 0');
    let retry = this.retry;
    if (opts?.retry === false) retry = null;
    else if (opts?.retry !== undefined) retry = { ...(this.retry ?? DEFAULT_RETRY), ...opts.retry };
    return { timeoutMs, retry };
  }

  /** Ms to wait before the next attempt, or null: do not retry. */
  private retryDelay(retry: Retry | null, attempts: number, err: ReadStatesError, deadline: number): number | null {
    if (retry === null || this.closed || attempts >= retry.maxAttempts || !retryable(err)) return null;
    const exp = Math.min(retry.maxDelayMs, retry.baseDelayMs * 2 ** (attempts - 1));
    let delay = exp / 2 + Math.random() * (exp / 2);
    if (err.retryAfterMs !== undefined) delay = Math.max(delay, Math.min(err.retryAfterMs, retry.maxRetryAfterMs));
    if (Date.now() + delay >= deadline) return null;
    return delay;
  }

  private track<T>(p: Promise<T>): Promise<T> {
    this.inflight.add(p);
    const done = (): void => {
      this.inflight.delete(p);
    };
    p.then(done, done);
    return p;
  }

  private poolOf(origin: string): Pool {
    let pool = this.pools.get(origin);
    if (pool === undefined) {
      pool = new Pool(origin, this.poolOptions);
      this.pools.set(origin, pool);
    }
    return pool;
  }

  /** Where a call about this user goes now: its partition's owner by the map, else the configured URL. */
  private targetOf(userId: string | undefined): Target {
    if (this.router === null || userId === undefined) return this.home;
    const url = this.router.ownerOf(userId);
    if (url === null) return this.home;
    let t = this.targets.get(url);
    if (t === undefined) {
      // The map's URLs were checked to be http(s) when it was loaded.
      const u = new URL(url);
      t = { url, pool: this.poolOf(u.origin), base: u.pathname.replace(/\/+$/, '') };
      this.targets.set(url, t);
    }
    return t;
  }

  /**
   * A failed attempt that says the map is stale: an answer that the partition is not where the
   * call went, or no connection to an owner (the map still names it: it may have died). The
   * call's own retry rules are not changed by it.
   */
  private noteFailure(target: Target, err: ReadStatesError): void {
    if (this.router === null || this.closed) return;
    if (err instanceof ConnectionError && target !== this.home) this.router.unreachable(target.url);
    else if (err instanceof UnavailableError && STALE_MAP_CODES.has(err.code)) this.router.stale();
  }

  private async http(target: Target, method: Dispatcher.HttpMethod, path: string, body: unknown, signal: AbortSignal): Promise<HttpAnswer> {
    const headers: Record<string, string> = { accept: 'application/json' };
    if (this.authorization !== undefined) headers.authorization = this.authorization;
    let payload: string | undefined;
    if (body !== undefined) {
      payload = JSON.stringify(body);
      headers['content-type'] = 'application/json';
    }
    const res = await target.pool.request({ method, path: target.base + path, headers, body: payload, signal });
    const text = await res.body.text();
    let json: unknown;
    if (text.length > 0) {
      try {
        json = JSON.parse(text);
      } catch {
        if (res.statusCode >= 200 && res.statusCode < 300) throw badResponse('not JSON', res.statusCode, 0);
        json = undefined;
      }
    }
    return { status: res.statusCode, headers: res.headers, body: json };
  }

  /** The error an HTTP answer that is not 2xx stands for. */
  private answerError(res: HttpAnswer, attempts: number): ReadStatesError {
    const b = isRecord(res.body) ? res.body : {};
    const applied = b.applied === false || b.applied === null ? b.applied : undefined;
    return errorForAnswer({
      code: typeof b.error === 'string' ? b.error : `HTTP_${res.status}`,
      message: typeof b.message === 'string' ? b.message : `HTTP ${res.status}`,
      status: res.status,
      applied,
      retryAfterMs: parseRetryAfter(res.headers),
      attempts,
    });
  }

  /** The error of a request that got no answer. */
  private transportError(err: unknown, attempts: number): ReadStatesError {
    if (err instanceof ReadStatesError) return err;
    const code = errCode(err);
    if (code === 'UND_ERR_CLOSED' || code === 'UND_ERR_DESTROYED') {
      return new ClientClosedError({ code: 'CLIENT_CLOSED', message: 'the client is closed', applied: null, attempts, cause: err });
    }
    const sent = !neverSent(err);
    const why = err instanceof Error ? err.message : String(err);
    return new ConnectionError({
      code: 'CONNECTION_ERROR',
      message: `no answer from the service${code === undefined ? '' : ` (${code})`}: ${why}`,
      applied: sent ? null : false,
      attempts,
      cause: err,
    });
  }

  /**
   * One request (retried as the policy allows) for the routes that are not coalesced. `user`: the
   * one user the route is about, for routing (undefined: the configured URL). `accept` turns a 2xx
   * answer into the result (or throws BAD_RESPONSE).
   */
  private direct<T>(
    method: Dispatcher.HttpMethod,
    path: string,
    body: unknown,
    opts: CallOptions | undefined,
    retries: boolean,
    user: string | undefined,
    accept: (res: HttpAnswer) => T,
  ): Promise<T> {
    if (this.closed) return Promise.reject(this.closedError());
    const { timeoutMs, retry: policy } = this.policy(opts);
    const retry = retries ? policy : null;
    const signal = opts?.signal;
    const deadline = Date.now() + timeoutMs;
    const run = async (): Promise<T> => {
      const ctrl = new AbortController();
      let why: 'timeout' | 'abort' | null = null;
      const timer = setTimeout(() => {
        why ??= 'timeout';
        ctrl.abort();
      }, timeoutMs);
      const onAbort = (): void => {
        why ??= 'abort';
        ctrl.abort();
      };
      signal?.addEventListener('abort', onAbort, { once: true });
      let attempts = 0;
      const gaveUp = (applied: false | null): ReadStatesError =>
        why === 'timeout'
          ? new TimeoutError({ code: 'TIMEOUT', message: `${method} ${path}: no answer within ${timeoutMs} ms`, applied, attempts })
          : new AbortError({ code: 'ABORTED', message: `${method} ${path}: aborted`, applied, attempts, cause: signal?.reason });
      try {
        if (signal?.aborted === true) {
          why = 'abort';
          throw gaveUp(false);
        }
        for (;;) {
          const wait = user === undefined ? undefined : this.router?.waitFor(attempts > 0);
          if (wait !== undefined) {
            await this.settledOrAborted(wait, ctrl.signal);
            if (why !== null) throw gaveUp(false);
          }
          const target = this.targetOf(user);
          attempts++;
          let err: ReadStatesError;
          try {
            const res = await this.http(target, method, path, body, ctrl.signal);
            if (res.status >= 200 && res.status < 300) return accept(res);
            err = this.answerError(res, attempts);
          } catch (e) {
            if (why !== null) throw gaveUp(null);
            err = this.transportError(e, attempts);
          }
          err.attempts = attempts;
          this.noteFailure(target, err);
          const delay = this.retryDelay(retry, attempts, err, deadline);
          if (delay === null) throw err;
          await this.sleep(delay, ctrl.signal);
          if (why !== null) throw gaveUp(false);
          if (this.closed) throw err;
        }
      } finally {
        clearTimeout(timer);
        signal?.removeEventListener('abort', onAbort);
      }
    };
    return this.track(run());
  }

  /** Waits for `p` (which never rejects), or less if `signal` fires. */
  private settledOrAborted(p: Promise<void>, signal: AbortSignal): Promise<void> {
    if (signal.aborted) return Promise.resolve();
    return new Promise((resolve) => {
      const done = (): void => {
        signal.removeEventListener('abort', done);
        resolve();
      };
      signal.addEventListener('abort', done, { once: true });
      void p.then(done);
    });
  }

  /** Waits `ms`, or less if `signal` fires or the client closes. */
  private sleep(ms: number, signal: AbortSignal): Promise<void> {
    return new Promise((resolve) => {
      const done = (): void => {
        clearTimeout(timer);
        signal.removeEventListener('abort', done);
        this.closeCtrl.signal.removeEventListener('abort', done);
        resolve();
      };
      const timer = setTimeout(done, ms);
      signal.addEventListener('abort', done, { once: true });
      this.closeCtrl.signal.addEventListener('abort', done, { once: true });
    });
  }

  // --- coalesced single ops ---------------------------------------------------------------------

  private single(op: SingleOp, opts: CallOptions | undefined): Promise<ReadState | undefined> {
    if (this.closed) return Promise.reject(this.closedError());
    const { timeoutMs, retry } = this.policy(opts);
    const signal = opts?.signal;
    if (signal?.aborted === true) {
      return Promise.reject(new AbortError({ code: 'ABORTED', message: `${describe(op)}: aborted`, applied: false, cause: signal.reason }));
    }
    return new Promise<ReadState | undefined>((resolve, reject) => {
      const c: OpCall = {
        op,
        resolve,
        reject,
        retry,
        deadline: Date.now() + timeoutMs,
        timeoutMs,
        signal,
        attempts: 0,
        phase: 'queued',
        timer: undefined,
        backoffTimer: undefined,
        onAbort: undefined,
        carrier: undefined,
        lastError: undefined,
      };
      c.timer = setTimeout(() => this.giveUp(c, 'timeout'), timeoutMs);
      if (signal !== undefined) {
        c.onAbort = () => this.giveUp(c, 'abort');
        signal.addEventListener('abort', c.onAbort, { once: true });
      }
      this.calls.add(c);
      this.dispatch(c);
    });
  }

  private dispatch(c: OpCall): void {
    c.phase = 'queued';
    const wait = this.router?.waitFor(c.attempts > 0);
    if (wait !== undefined) {
      // Held (still 'queued': its deadline and signal apply, and it was not sent) until the map
      // it is to be routed by is there.
      void wait.then(() => {
        if (c.phase !== 'queued') return;
        // A retry held when the client closed fails as one waiting for its backoff would.
        if (this.closed && c.attempts > 0) return this.finish(c, c.lastError ?? this.closedError());
        this.enqueue(c);
      });
      return;
    }
    this.enqueue(c);
  }

  private enqueue(c: OpCall): void {
    if (!this.coalesce) return this.send([c], this.targetOf(c.op.user_id));
    this.queue.push(c);
    this.flushHandle ??= setImmediate(() => this.flush());
  }

  /** Sends what this event-loop turn queued: by target (the owner of each op's user), one batch per maxBatchOps ops. */
  private flush(): void {
    this.flushHandle = undefined;
    const queued = this.queue.filter((c) => c.phase === 'queued');
    this.queue = [];
    const byTarget = new Map<Target, OpCall[]>();
    for (const c of queued) {
      const t = this.targetOf(c.op.user_id);
      const list = byTarget.get(t);
      if (list === undefined) byTarget.set(t, [c]);
      else list.push(c);
    }
    for (const [t, calls] of byTarget) {
      for (let i = 0; i < calls.length; i += this.maxBatchOps) this.send(calls.slice(i, i + this.maxBatchOps), t);
    }
  }

  /** The call's deadline passed or its signal fired. */
  private giveUp(c: OpCall, why: 'timeout' | 'abort'): void {
    if (c.phase === 'done') return;
    // On the wire: it may have been applied. Queued or waiting to be retried: it was not.
    const applied = c.phase === 'sent' ? null : false;
    const err =
      why === 'timeout'
        ? new TimeoutError({ code: 'TIMEOUT', message: `${describe(c.op)}: no answer within ${c.timeoutMs} ms`, applied, attempts: c.attempts })
        : new AbortError({ code: 'ABORTED', message: `${describe(c.op)}: aborted`, applied, attempts: c.attempts, cause: c.signal?.reason });
    this.finish(c, err);
  }

  /** Answers the call (an error, or its value) and lets go of everything it holds. */
  private finish(c: OpCall, err: ReadStatesError | null, value?: ReadState): void {
    if (c.phase === 'done') return;
    c.phase = 'done';
    clearTimeout(c.timer);
    if (c.backoffTimer !== undefined) clearTimeout(c.backoffTimer);
    if (c.onAbort !== undefined) c.signal?.removeEventListener('abort', c.onAbort);
    this.calls.delete(c);
    const carrier = c.carrier;
    c.carrier = undefined;
    // The last caller of a request under way gave up: nobody waits for its answer any more.
    if (carrier !== undefined && --carrier.live === 0 && !carrier.complete) carrier.ctrl.abort();
    if (err !== null) c.reject(err);
    else c.resolve(value);
  }

  /** A failed attempt: retried after a backoff if the policy allows, else the call's answer. */
  private failed(c: OpCall, err: ReadStatesError): void {
    err.attempts = c.attempts;
    c.lastError = err;
    const delay = this.retryDelay(c.retry, c.attempts, err, c.deadline);
    if (delay === null) return this.finish(c, err);
    c.phase = 'backoff';
    c.backoffTimer = setTimeout(() => {
      c.backoffTimer = undefined;
      if (c.phase !== 'backoff') return;
      if (this.closed) return this.finish(c, err);
      this.dispatch(c);
    }, delay);
  }

  private carry(calls: OpCall[]): Carrier {
    const carrier: Carrier = { live: calls.length, complete: false, ctrl: new AbortController() };
    for (const c of calls) {
      c.phase = 'sent';
      c.attempts++;
      c.carrier = carrier;
    }
    return carrier;
  }

  /** Calls of this carrier still waiting for its answer; detached from it. */
  private landed(calls: OpCall[], carrier: Carrier): OpCall[] {
    carrier.complete = true;
    const live = calls.filter((c) => c.phase === 'sent' && c.carrier === carrier);
    for (const c of live) c.carrier = undefined;
    return live;
  }

  private send(calls: OpCall[], target: Target): void {
    if (calls.length === 1) this.sendSingle(calls[0], target);
    else this.sendBatch(calls, target);
  }

  /** A failed attempt of an op sent to `target`. */
  private failedAt(c: OpCall, target: Target, err: ReadStatesError): void {
    this.noteFailure(target, err);
    this.failed(c, err);
  }

  /** One op on its own route. */
  private sendSingle(c: OpCall, target: Target): void {
    const carrier = this.carry([c]);
    const req = singleRequest(c.op);
    const p = this.http(target, req.method, req.path, req.body, carrier.ctrl.signal).then(
      (res) => {
        if (this.landed([c], carrier).length === 0) return;
        if (res.status === 204 && c.op.op === 'delete') return this.finish(c, null);
        if (res.status === 200 && c.op.op !== 'delete') {
          const why = mismatch(res.body, READ_STATE_SHAPE);
          if (why !== null) return this.finish(c, badResponse(`not a read state (${why})`, res.status, c.attempts));
          return this.finish(c, null, res.body as unknown as ReadState);
        }
        if (res.status >= 200 && res.status < 300) return this.finish(c, badResponse(`status ${res.status}`, res.status, c.attempts));
        this.failedAt(c, target, this.answerError(res, c.attempts));
      },
      (err: unknown) => {
        if (this.landed([c], carrier).length === 0) return;
        this.failedAt(c, target, this.transportError(err, c.attempts));
      },
    );
    this.track(p);
  }

  /** Several ops in one POST /v1/batch; each call is answered from its own result. */
  private sendBatch(calls: OpCall[], target: Target): void {
    const carrier = this.carry(calls);
    const ops = calls.map((c) => c.op);
    const p = this.http(target, 'POST', '/v1/batch', { ops }, carrier.ctrl.signal).then(
      (res) => {
        const live = this.landed(calls, carrier);
        if (live.length === 0) return;
        if (res.status === 200) return this.answerBatch(calls, res, target);
        if (res.status === 400 || res.status === 413) {
          // Bad input (or too big) rejects the whole batch and changes nothing: split it to
          // find the op at fault, so that the others still get their answers.
          for (const c of live) c.attempts--;
          const half = Math.ceil(live.length / 2);
          this.send(live.slice(0, half), target);
          this.send(live.slice(half), target);
          return;
        }
        const err = this.answerError(res, 0);
        this.noteFailure(target, err);
        for (const c of live) this.failed(c, copyError(err));
      },
      (err: unknown) => {
        const live = this.landed(calls, carrier);
        if (live.length === 0) return;
        const e = this.transportError(err, 0);
        this.noteFailure(target, e);
        for (const c of live) this.failed(c, copyError(e));
      },
    );
    this.track(p);
  }

  private answerBatch(calls: OpCall[], res: HttpAnswer, target: Target): void {
    const results = isRecord(res.body) && Array.isArray(res.body.results) && res.body.results.length === calls.length ? (res.body.results as unknown[]) : null;
    for (let i = 0; i < calls.length; i++) {
      const c = calls[i];
      if (c.phase !== 'sent') continue;
      const r = results === null ? undefined : results[i];
      if (!isRecord(r) || typeof r.status !== 'number') {
        this.finish(c, badResponse('not one result per op', res.status, c.attempts));
        continue;
      }
      const status = r.status;
      if (status === 204 && c.op.op === 'delete') this.finish(c, null);
      else if (status === 200 && c.op.op !== 'delete' && mismatch(r.read_state, READ_STATE_SHAPE) === null) this.finish(c, null, r.read_state as ReadState);
      else if (status >= 200 && status < 300) this.finish(c, badResponse(`result status ${status}`, status, c.attempts));
      else {
        const code = typeof r.error === 'string' ? r.error : `HTTP_${status}`;
        const applied = r.applied === false || r.applied === null ? r.applied : undefined;
        this.failedAt(c, target, errorForAnswer({ code, message: `${describe(c.op)}: ${code} (status ${status} in a batch)`, status, applied, attempts: c.attempts }));
      }
    }
  }
}
