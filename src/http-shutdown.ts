/**
 * Stopping the HTTP side within a deadline. Node's server.close() stops accepting and closes the
 * connections that are idle at that moment, then waits for every other one to end, and it also
 * stops the timer that enforces requestTimeout: a client that trickles a request body one byte at
 * a time would keep the process alive forever. So in-flight requests get a bounded grace period,
 * keep-alive connections are closed as soon as their request is answered, and whatever is still
 * open when the grace period ends is destroyed.
 */
import type { FastifyInstance } from 'fastify';

/** The most in-flight requests get: they are answered in milliseconds, not seconds, when healthy. */
export const MAX_IN_FLIGHT_GRACE_MS = 5_000;

/** How often connections that finished their request during the grace period are closed. */
const IDLE_SWEEP_MS = 100;

/** Grace for in-flight requests out of a shutdown timeout: the rest is for flushing to the store. */
export function inFlightGraceMs(shutdownTimeoutMs: number): number {
  return Math.min(MAX_IN_FLIGHT_GRACE_MS, Math.floor(shutdownTimeoutMs / 3));
}

function settlesWithin(p: Promise<unknown>, ms: number): Promise<boolean> {
  return new Promise((resolve) => {
    const timer = setTimeout(() => resolve(false), Math.max(0, ms));
    p.then(
      () => {
        clearTimeout(timer);
        resolve(true);
      },
      () => {
        clearTimeout(timer);
        resolve(true);
      },
    );
  });
}

function openConnections(app: FastifyInstance): Promise<number> {
  return new Promise((resolve) => app.server.getConnections((err, n) => resolve(err === null ? n : 0)));
}

export interface HttpCloseResult {
  /** connections destroyed because their request had not ended within the grace period */
  forced: number;
  /** false if even destroying them did not let the server close before the deadline */
  closed: boolean;
}

/**
 * Closes the fastify app: no new connections, graceMs for in-flight requests, then every
 * connection is destroyed; resolves once the server is closed or at the deadline.
 */
export async function closeHttp(app: FastifyInstance, graceMs: number, deadline: number): Promise<HttpCloseResult> {
  const closed = app.close();
  const sweep = setInterval(() => app.server.closeIdleConnections(), IDLE_SWEEP_MS);
  try {
    if (await settlesWithin(closed, Math.min(graceMs, deadline - Date.now()))) return { forced: 0, closed: true };
    const forced = await openConnections(app);
    app.server.closeAllConnections();
    return { forced, closed: await settlesWithin(closed, deadline - Date.now()) };
  } finally {
    clearInterval(sweep);
  }
}
