/**
 * read-states/client: a typed client of the read-states HTTP API. It depends on undici only, never
 * on the service's own sources, so that another program can take it as a dependency.
 */
export { ReadStatesClient, type CallOptions, type GetReadStatesOptions, type ReadStatesClientOptions, type RetryOptions } from './client.js';
export type { ClusterRoutingOptions } from './cluster.js';
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
export {
  ACK_BULK_RESULT_SHAPE,
  BATCH_OP_RESULT_SHAPE,
  BATCH_RESULT_SHAPE,
  CLUSTER_MEMBER_SHAPE,
  CLUSTER_STATE_SHAPE,
  FAN_OUT_RESULT_SHAPE,
  HEALTH_STATUS_SHAPE,
  PARTITION_OWNER_SHAPE,
  READ_STATE_SHAPE,
  RESPONSE_SHAPES,
  USER_READ_STATES_SHAPE,
  USER_SUMMARY_SHAPE,
  type FieldShape,
  type JsonType,
  type ObjectShape,
} from './shapes.js';
export type * from './types.js';
