/**
 * The one error path of the HTTP API: every failure (ours, validation, framework, unknown route)
 * answers {error, message} with a code from errors.ts. Shared by the service and the naive
 * comparison service so that both answer errors identically.
 */
import type { FastifyError, FastifyInstance } from 'fastify';
import { ApiError, ERRORS, type ErrorCode } from './errors.js';
import { sendError } from './replies.js';

/** Maps framework errors (fastify codes, validation) to our codes. */
function codeFor(err: FastifyError): ErrorCode {
  if (err.validation !== undefined) {
    if (err.validationContext === 'querystring') return 'INVALID_QUERY';
    // Every string the schemas constrain by pattern or length is an id.
    if (err.validation.some((v) => v.keyword === 'pattern' || v.keyword === 'maxLength')) return 'INVALID_ID';
    if (err.validationContext === 'params') return 'INVALID_ID';
    return 'INVALID_BODY';
  }
  switch (err.code) {
    case 'FST_ERR_CTP_BODY_TOO_LARGE':
      return 'BODY_TOO_LARGE';
    case 'FST_ERR_CTP_INVALID_MEDIA_TYPE':
      return 'UNSUPPORTED_MEDIA_TYPE';
    case 'FST_ERR_CTP_EMPTY_JSON_BODY':
    case 'FST_ERR_CTP_INVALID_JSON_BODY':
      return 'INVALID_JSON';
    default:
      if (err instanceof SyntaxError || err.statusCode === 400) return 'INVALID_JSON';
      if (err.statusCode === 413) return 'BODY_TOO_LARGE';
      if (err.statusCode === 415) return 'UNSUPPORTED_MEDIA_TYPE';
      return 'INTERNAL';
  }
}

export function installErrorHandlers(app: FastifyInstance): void {
  app.setErrorHandler((err: FastifyError, _req, reply) => {
    if (err instanceof ApiError) return sendError(reply, err.code, err.message);
    const code = codeFor(err);
    if (code === 'INTERNAL') app.log.error({ err }, 'unhandled error');
    const message = code === 'INTERNAL' ? ERRORS.INTERNAL.message : err.message;
    return sendError(reply, code, message);
  });
  app.setNotFoundHandler((req, reply) => sendError(reply, 'ROUTE_NOT_FOUND', `no route ${req.method} ${req.url.split('?')[0]}`));
}
