/**
 * Sends a request on to the instance that owns its partition (cluster mode) and hands the owner's
 * answer back, through one keep-alive connection pool per owner.
 *
 * What a failure means for the caller is decided by one fact: whether the request may have left
 * this process. Until undici hands the request to a connected socket (onRequestStart) nothing of
 * it has been written, so a failure up to there (connection refused, DNS, connect timeout, still
 * queued at the deadline, the pool closed) is PARTITION_UNAVAILABLE, not applied. From there on
 * the owner may have received it, so any failure, the deadline included, is FORWARD_FAILED, which
 * says it may have been applied.
 */
import type { IncomingHttpHeaders } from 'node:http';
import { Pool, type Dispatcher } from 'undici';
import { ERRORS, type ErrorCode } from '../errors.js';

/** Header a forwarded request carries: the instance that sent it (an owner never forwards it again). */
export const FORWARDED_BY = 'read-states-forwarded-by';
/** Header of every answer served on a single-user route in cluster mode: `<instance_id> <partition> <epoch>`. */
export const OWNER_HEADER = 'read-states-owner';
/** when (wall clock, ms) the owner let a success go out: the moment it still held the lease */
export const ANSWERED_AT_HEADER = 'read-states-answered-at';

export type ForwardFailure = 'PARTITION_UNAVAILABLE' | 'FORWARD_FAILED';

/** The one object a forwarded request reports to (like the shards' OpSink): exactly one call. */
export interface ForwardSink {
  /** The owner answered (any status); `body` is its raw bytes. */
  onForwarded(status: number, headers: IncomingHttpHeaders, body: Buffer): void;
  onForwardFailed(code: ForwardFailure, err: Error | null): void;
}

export interface ForwarderOptions {
  /** the whole exchange, queueing for a connection included (default 10 s) */
  timeoutMs?: number;
  /** connections per owner (default 16) */
  connections?: number;
}

export const DEFAULT_FORWARD_TIMEOUT_MS = 10_000;

/** The fields of an owner's JSON answer the splitting routes read; null when it is not a JSON object. */
export interface OwnerAnswer {
  results?: unknown;
  updated?: unknown;
  error?: unknown;
  applied?: unknown;
}

export function parseOwnerAnswer(body: Buffer): OwnerAnswer | null {
  try {
    const value: unknown = JSON.parse(body.toString('utf8'));
    return typeof value === 'object' && value !== null && !Array.isArray(value) ? (value as OwnerAnswer) : null;
  } catch {
    return null;
  }
}

/** An owner's refusal as (code, applied), when its answer is one of ours. */
export function ownerRefusal(a: OwnerAnswer | null): { code: ErrorCode; applied: false | null | undefined } | null {
  if (a === null || typeof a.error !== 'string' || !Object.hasOwn(ERRORS, a.error)) return null;
  if (a.applied !== undefined && a.applied !== false && a.applied !== null) return null;
  return { code: a.error as ErrorCode, applied: a.applied };
}

class ForwardTimeout extends Error {
  constructor(ms: number) {
    super(`the owner did not answer within ${ms} ms`);
  }
}

/** One request in flight: undici's handler, the deadline, and the answer as it arrives. */
class Forward implements Dispatcher.DispatchHandler {
  /** a socket took the request: from here on the owner may have received it */
  private started = false;
  /** the sink has been told (by the answer, an error or the deadline) */
  private settled = false;
  private controller: Dispatcher.DispatchController | null = null;
  private status = 0;
  private headers: IncomingHttpHeaders = {};
  private readonly chunks: Buffer[] = [];

  constructor(
    private readonly forwarder: Forwarder,
    private readonly sink: ForwardSink,
    readonly deadline: number,
  ) {}

  onRequestStart(controller: Dispatcher.DispatchController): void {
    // Answered as not applied at the deadline while still queued: it must not go out now.
    if (this.settled) return controller.abort(new Error('the forward was given up before a connection took it'));
    this.controller = controller;
    this.started = true;
  }

  onResponseStart(_controller: Dispatcher.DispatchController, statusCode: number, headers: IncomingHttpHeaders): void {
    this.status = statusCode;
    this.headers = headers;
  }

  onResponseData(_controller: Dispatcher.DispatchController, chunk: Buffer): void {
    this.chunks.push(chunk);
  }

  onResponseEnd(): void {
    if (this.settle()) this.sink.onForwarded(this.status, this.headers, this.chunks.length === 1 ? this.chunks[0] : Buffer.concat(this.chunks));
  }

  /** Also called without a controller, for requests that never reached a socket. */
  onResponseError(_controller: Dispatcher.DispatchController | undefined, err: Error): void {
    if (this.settle()) this.sink.onForwardFailed(this.started ? 'FORWARD_FAILED' : 'PARTITION_UNAVAILABLE', err);
  }

  /** The deadline passed. */
  expire(timeoutMs: number): void {
    if (!this.settle()) return;
    const err = new ForwardTimeout(timeoutMs);
    this.controller?.abort(err);
    this.sink.onForwardFailed(this.started ? 'FORWARD_FAILED' : 'PARTITION_UNAVAILABLE', err);
  }

  private settle(): boolean {
    if (this.settled) return false;
    this.settled = true;
    this.forwarder.inFlight.delete(this);
    return true;
  }
}

export class Forwarder {
  /** in start order, which is deadline order (one timeout for all): the sweep stops at the first one not due */
  readonly inFlight = new Set<Forward>();
  private readonly pools = new Map<string, Pool>();
  private readonly timeoutMs: number;
  private readonly connections: number;
  private readonly sweeper: NodeJS.Timeout;
  private closed = false;

  constructor(
    /** this instance's id, sent as FORWARDED_BY */
    readonly instanceId: string,
    options: ForwarderOptions = {},
  ) {
    this.timeoutMs = options.timeoutMs ?? DEFAULT_FORWARD_TIMEOUT_MS;
    this.connections = options.connections ?? 16;
    // One coarse timer for every forward instead of one per request.
    this.sweeper = setInterval(() => this.sweep(), Math.max(10, Math.min(250, this.timeoutMs / 4)));
    this.sweeper.unref();
  }

  /**
   * Sends `method path` with `body` to `baseUrl` (no trailing slash). `headers` are sent as given;
   * FORWARDED_BY is added to them. The sink hears exactly once, possibly from within this call
   * (a request undici refuses at once).
   */
  forward(baseUrl: string, method: Dispatcher.HttpMethod, path: string, headers: Record<string, string>, body: string | Buffer | null, sink: ForwardSink): void {
    const f = new Forward(this, sink, performance.now() + this.timeoutMs);
    if (this.closed) return f.onResponseError(undefined, new Error('the service is closing'));
    this.inFlight.add(f);
    headers[FORWARDED_BY] = this.instanceId;
    this.pool(baseUrl).dispatch({ method, path, headers, body }, f);
  }

  /** Ends every forward still in flight (as failed) and closes the connections. */
  async close(): Promise<void> {
    this.closed = true;
    clearInterval(this.sweeper);
    const pools = [...this.pools.values()];
    this.pools.clear();
    await Promise.all(pools.map((p) => p.destroy()));
  }

  private pool(baseUrl: string): Pool {
    let pool = this.pools.get(baseUrl);
    if (pool === undefined) {
      pool = new Pool(baseUrl, {
        connections: this.connections,
        pipelining: 1,
        // A dead owner's address may not refuse but drop: give up on connecting within the deadline.
        connect: { timeout: this.timeoutMs },
      });
      this.pools.set(baseUrl, pool);
    }
    return pool;
  }

  private sweep(): void {
    const now = performance.now();
    for (const f of this.inFlight) {
      if (f.deadline > now) break;
      f.expire(this.timeoutMs);
    }
  }
}
