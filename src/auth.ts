/**
 * Bearer-token authentication (--auth-token-file): every route but /health answers 401
 * UNAUTHORIZED unless the request carries `Authorization: Bearer <token>`. Installed only when a
 * token is configured, so a service without one pays nothing per request.
 */
import { createHash, timingSafeEqual } from 'node:crypto';
import type { FastifyInstance } from 'fastify';
import { sendError } from './replies.js';

/** Routes a load balancer or supervisor probes without credentials: liveness says nothing about the data. */
const OPEN_ROUTES = new Set(['/health']);

const BEARER = /^Bearer[ ]+([^ ]+)[ ]*$/i;

function digest(text: string): Buffer {
  return createHash('sha256').update(text, 'utf8').digest();
}

/**
 * Compares digests rather than the tokens: both sides are 32 bytes whatever was sent, so the
 * comparison time says nothing about the token's length or its first differing byte.
 */
export function tokenMatches(presented: string, expectedDigest: Buffer): boolean {
  return timingSafeEqual(digest(presented), expectedDigest);
}

export function installBearerAuth(app: FastifyInstance, token: string): void {
  const expected = digest(token);
  app.addHook('onRequest', (req, reply, done) => {
    // routeOptions.url is the matched route pattern, so no spelling of the path (query, encoding) opens another route.
    const route = req.routeOptions.url;
    if (route !== undefined && OPEN_ROUTES.has(route)) return done();
    const header = req.headers.authorization;
    const match = header === undefined ? null : BEARER.exec(header);
    if (match !== null && tokenMatches(match[1], expected)) return done();
    reply.header('www-authenticate', match === null ? 'Bearer realm="read-states"' : 'Bearer realm="read-states", error="invalid_token"');
    sendError(reply, 'UNAUTHORIZED', match === null ? 'missing Authorization: Bearer <token> header' : 'the bearer token is not the configured one');
  });
}
