/**
 * Errors the client throws. Every failure is a ReadStatesError carrying the server's code (the
 * body's `error` field) or one of the client's own codes, the HTTP status when there was an answer,
 * and `applied`: false = provably not applied (safe to retry as is), null = it may have been
 * applied, undefined = the question does not arise (bad input, a read).
 */

/**
 * The codes the service answers with, by HTTP status. A copy of the server's list (the client does
 * not depend on the server's sources); a test checks that both lists are the same.
 */
export const SERVER_ERROR_STATUS = {
  INVALID_ID: 400,
  INVALID_BODY: 400,
  INVALID_JSON: 400,
  INVALID_QUERY: 400,
  SINCE_AHEAD: 400,
  EMPTY_PATCH: 400,
  UNAUTHORIZED: 401,
  NOT_FOUND: 404,
  ROUTE_NOT_FOUND: 404,
  BODY_TOO_LARGE: 413,
  UNSUPPORTED_MEDIA_TYPE: 415,
  SHARD_OVERLOADED: 503,
  SHARD_UNAVAILABLE: 503,
  SHARD_RESTARTED: 503,
  NOT_READY: 503,
  SHUTTING_DOWN: 503,
  STORE_UNAVAILABLE: 503,
  STORE_BACKLOG: 503,
  USER_TOO_LARGE: 507,
  USER_READ_STATE_LIMIT: 507,
  PARTITION_UNAVAILABLE: 503,
  FORWARD_FAILED: 503,
  LEASE_LOST: 503,
  INTERNAL: 500,
} as const;

export type ServerErrorCode = keyof typeof SERVER_ERROR_STATUS;
export const SERVER_ERROR_CODES = Object.keys(SERVER_ERROR_STATUS) as ServerErrorCode[];

/** Codes of failures the client itself detects. */
export const CLIENT_ERROR_CODES = [
  /** no answer: connection refused, reset, closed, DNS failure */
  'CONNECTION_ERROR',
  /** the call's timeoutMs passed */
  'TIMEOUT',
  /** the caller's AbortSignal fired */
  'ABORTED',
  /** close() was called */
  'CLIENT_CLOSED',
  /** the answer is not what the API documents (not JSON, wrong shape) */
  'BAD_RESPONSE',
  /** the list route answered without version and full: the server predates delta sync and paging */
  'UNSUPPORTED_BY_SERVER',
] as const;

export type ClientErrorCode = (typeof CLIENT_ERROR_CODES)[number];

/** Every code a ReadStatesError can carry (a code a newer server added passes through as a string). */
export type ReadStatesErrorCode = ServerErrorCode | ClientErrorCode;

export interface ReadStatesErrorInit {
  code: ReadStatesErrorCode | (string & {});
  message: string;
  status?: number;
  applied?: false | null;
  retryAfterMs?: number;
  attempts?: number;
  cause?: unknown;
}

export class ReadStatesError extends Error {
  /** the server's code (body `error`) or a client code */
  readonly code: ReadStatesErrorCode | (string & {});
  /** HTTP status of the answer (of the op's result in a batch); undefined when there was none */
  readonly status: number | undefined;
  /** false: not applied, safe to retry; null: may have been applied; undefined: not an operation refusal */
  readonly applied: false | null | undefined;
  /** the answer's Retry-After, in ms */
  readonly retryAfterMs: number | undefined;
  /** requests made for this call before it failed (0: none was sent) */
  attempts: number;

  constructor(init: ReadStatesErrorInit) {
    super(init.message, init.cause === undefined ? undefined : { cause: init.cause });
    this.name = new.target.name;
    this.code = init.code;
    this.status = init.status;
    this.applied = init.applied;
    this.retryAfterMs = init.retryAfterMs;
    this.attempts = init.attempts ?? 0;
  }
}

/** 4xx: the request is wrong (bad id, body, JSON, size, media type, route); nothing was changed. */
export class InvalidRequestError extends ReadStatesError {}
/** 404 NOT_FOUND: no such read state. */
export class NotFoundError extends ReadStatesError {}
/** 401 UNAUTHORIZED: missing or wrong bearer token. */
export class UnauthorizedError extends ReadStatesError {}
/** 503, 429, 507: the service refused the operation; `applied` says whether it may have run. */
export class UnavailableError extends ReadStatesError {}
/** 500 and other unexpected statuses, or an answer that is not what the API documents. */
export class ServerError extends ReadStatesError {}
/**
 * No answer. `applied` is false only when the request provably never left (the connection was
 * refused or never established), else null.
 */
export class ConnectionError extends ReadStatesError {}
/** The call's timeoutMs passed. `applied` false if no request was on the wire then, else null. */
export class TimeoutError extends ReadStatesError {}
/** The caller's signal fired. `applied` false if no request was on the wire then, else null. */
export class AbortError extends ReadStatesError {}
/** The client was closed before the call could be sent. */
export class ClientClosedError extends ReadStatesError {}

/** The error class for an HTTP answer's status and code. */
export function errorForAnswer(init: ReadStatesErrorInit & { status: number }): ReadStatesError {
  const s = init.status;
  if (s === 404 && init.code === 'NOT_FOUND') return new NotFoundError(init);
  if (s === 401) return new UnauthorizedError(init);
  if (s === 503 || s === 429 || s === 507) return new UnavailableError(init);
  if (s >= 400 && s < 500) return new InvalidRequestError(init);
  return new ServerError(init);
}

/** A copy of `err` for another caller (each caller gets an error object of its own). */
export function copyError(err: ReadStatesError): ReadStatesError {
  const Ctor = err.constructor as new (init: ReadStatesErrorInit) => ReadStatesError;
  return new Ctor({
    code: err.code,
    message: err.message,
    status: err.status,
    applied: err.applied,
    retryAfterMs: err.retryAfterMs,
    attempts: err.attempts,
    cause: err.cause,
  });
}
