/**
 * Op results -> HTTP answers, as src/replies.ts does for shard results: one op, a gathered list
 * in request order (batch, ack-bulk), or a count of changed read states (fan-out).
 */
import type { FastifyReply } from 'fastify';
import { codeForStatus } from '../../src/errors.js';
import { sendError, type BatchResult, type ReadStateJson } from '../../src/replies.js';
import { ResultStatus } from '../../workers/protocol.js';
import type { OpResult } from './ops.js';

/** One single-op request: the read state, 204, or the error for the status. */
export function sendResult(reply: FastifyReply, r: OpResult): void {
  if (r.status === ResultStatus.Ok) reply.send(r.state);
  else if (r.status === ResultStatus.NoContent) reply.code(204).send();
  else sendError(reply, codeForStatus(r.status));
}

/** GET of all of a user's read states. */
export function sendList(reply: FastifyReply, userKey: string, r: OpResult): void {
  if (r.status !== ResultStatus.Ok) return sendError(reply, codeForStatus(r.status));
  // Always the whole set: the naive twin keeps no user version or tombstones, so its `version` is
  // the newest read state's (a delete does not raise it) and it never answers a delta (full: true
  // is a valid answer to any since); limit and after are accepted and ignored.
  let version = 0;
  for (const rs of r.list!) if (rs.version > version) version = rs.version;
  reply.send({ user_id: userKey, version, full: true, read_states: r.list });
}

/** Collects n results in request order, then answers once. */
export function gather(n: number, finish: (results: OpResult[]) => void): (i: number, r: OpResult) => void {
  const results = new Array<OpResult>(n);
  let pending = n;
  return (i, r) => {
    results[i] = r;
    if (--pending === 0) finish(results);
  };
}

export function sendBatch(reply: FastifyReply, results: OpResult[]): void {
  const out = new Array<BatchResult>(results.length);
  for (let i = 0; i < results.length; i++) {
    const r = results[i];
    const b: BatchResult = { status: r.status };
    if (r.status === ResultStatus.Ok && r.state !== undefined) b.read_state = r.state;
    else if (r.status !== ResultStatus.Ok && r.status !== ResultStatus.NoContent) b.error = codeForStatus(r.status);
    out[i] = b;
  }
  reply.send({ results: out });
}

/** ack-bulk answers a list of read states; a failed ack fails the request with its code. */
export function sendReadStates(reply: FastifyReply, results: OpResult[]): void {
  const list = new Array<ReadStateJson>(results.length);
  for (let i = 0; i < results.length; i++) {
    const r = results[i];
    if (r.state === undefined) return sendError(reply, codeForStatus(r.status));
    list[i] = r.state;
  }
  reply.send({ read_states: list });
}

/** Fan-out mentions: the number of read states that changed, or the error of a failed one. */
export function sendUpdated(reply: FastifyReply, results: OpResult[]): void {
  let updated = 0;
  let failed = 0;
  for (const r of results) {
    if (r.status === ResultStatus.Ok) updated += r.changed ? 1 : 0;
    else failed = r.status;
  }
  if (failed !== 0) sendError(reply, codeForStatus(failed));
  else reply.send({ updated });
}
