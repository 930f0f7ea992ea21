/**
 * read-states/client: a typed client of the read-states HTTP API. It depends on undici only, never
 * on the service's own sources, so that another program can take it as a dependency.
 */
export { ReadStatesClient, type CallOptions, type GetReadStatesOptions, type ReadStatesClientOptions, type RetryOptions } from './client.js';
export {
  AbortError,
  CLIENT_ERROR_CODES,
  ClientClosedError,
  ConnectionError,
  InvalidRequestError,
  NotFoundError,
  ReadStatesError,
  SERVER_ERROR_CODES,
  SERVER_ERROR_STATUS,
  ServerError,
  TimeoutError,
  UnauthorizedError,
  UnavailableError,
  type ClientErrorCode,
  type ReadStatesErrorCode,
  type ReadStatesErrorInit,
  type ServerErrorCode,
} from './errors.js';
export type * from './types.js';
