/**
 * Every error the API can answer with, by code. Codes are machine-readable (no spaces) and stable;
 * README's "Errors" table documents each one (a test checks that it does).
 */

export interface ErrorDef {
  readonly status: number;
  readonly message: string;
  /**
   * For refusals of an operation, said in the answer as `applied`: false = not applied, safe to
   * retry as is; null = may have been applied (a retried mention may count twice).
   */
  readonly applied?: false | null;
}

export const ERRORS = {
  INVALID_ID: { status: 400, message: 'ids must be canonical unsigned 64-bit decimal strings' },
  INVALID_BODY: { status: 400, message: 'the request body does not match the schema' },
  INVALID_JSON: { status: 400, message: 'the request body is not valid JSON' },
  INVALID_QUERY: { status: 400, message: 'the query string does not match the route: an unknown parameter, or a value out of range' },
  SINCE_AHEAD: { status: 400, message: "since is above the user's current version: it was not handed out for this user (or the store lost changes); sync again without since" },
  EMPTY_PATCH: { status: 400, message: 'a patch needs at least one of last_pin_timestamp, flags' },
  UNAUTHORIZED: { status: 401, message: 'this service needs an Authorization: Bearer <token> header with the configured token' },
  NOT_FOUND: { status: 404, message: 'no such read state' },
  ROUTE_NOT_FOUND: { status: 404, message: 'no such route' },
  BODY_TOO_LARGE: { status: 413, message: 'the request body is larger than the limit' },
  UNSUPPORTED_MEDIA_TYPE: { status: 415, message: 'the request body must be application/json' },
  SHARD_OVERLOADED: { status: 503, message: "the shard's queue is full; the operation was not applied, retry later", applied: false },
  SHARD_UNAVAILABLE: { status: 503, message: 'the shard worker failed while applying the operation: it may have been applied; retry later (a mention may then count twice)', applied: null },
  SHARD_RESTARTED: { status: 503, message: 'the shard worker failed before it applied the operation: it was not applied, retry it', applied: false },
  NOT_READY: { status: 503, message: 'not every shard worker answers' },
  SHUTTING_DOWN: { status: 503, message: 'the service is shutting down; the operation was not applied, retry it on another instance or after the restart', applied: false },
  STORE_UNAVAILABLE: { status: 503, message: 'the store is failing; changes are kept in memory and retried' },
  STORE_BACKLOG: { status: 503, message: 'the cache is full of changes the store has not taken yet; the operation was not applied, retry later', applied: false },
  USER_TOO_LARGE: { status: 507, message: "the user's read states do not fit in their shard", applied: false },
  USER_READ_STATE_LIMIT: { status: 507, message: 'the user already has --max-read-states-per-user read states; delete some first', applied: false },
  PARTITION_UNAVAILABLE: { status: 503, message: "the user's partition has no owner right now (an instance stopped, died or is handing it over) or its owner cannot be reached; the operation was not applied, retry after Retry-After", applied: false },
  FORWARD_FAILED: { status: 503, message: "the instance owning the user's partition did not answer in time: the operation may have been applied there; retry later (a mention may then count twice)", applied: null },
  LEASE_LOST: { status: 503, message: "this instance lost the partition's lease before it could answer: the operation may have been applied but may not be kept; retry it (a mention may then count twice)", applied: null },
  INTERNAL: { status: 500, message: 'internal error' },
} as const satisfies Record<string, ErrorDef>;

export type ErrorCode = keyof typeof ERRORS;

/** Seconds a client should wait before retrying a 503. */
export const RETRY_AFTER_SECONDS = 1;

export class ApiError extends Error {
  readonly code: ErrorCode;
  readonly status: number;
  constructor(code: ErrorCode, message?: string) {
    super(message ?? ERRORS[code].message);
    this.code = code;
    this.status = ERRORS[code].status;
  }
}

/** The error code that answers a result status coming back from a shard. */
export function codeForStatus(status: number): ErrorCode {
  switch (status) {
    case 404:
      return 'NOT_FOUND';
    case 507:
      return 'USER_TOO_LARGE';
    case 503:
      return 'SHARD_UNAVAILABLE';
    case 599:
      return 'STORE_BACKLOG';
    case 598:
      return 'USER_READ_STATE_LIMIT';
    case 597:
      return 'SHARD_RESTARTED';
    default:
      return 'INTERNAL';
  }
}
