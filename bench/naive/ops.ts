/**
 * One operation on one user's read states, with the same statuses as the shard engine: 200 with
 * the read state, 204 for a delete, 404, 503 (the user could not be loaded), 507 (the user's read
 * states would not fit in the whole cache).
 */
import type { ReadStateJson } from '../../src/replies.js';
import { ResultStatus } from '../../workers/protocol.js';
import type { UserCache } from './cache.js';
import type { DirtyTracker } from './dirty.js';
import { ack, byChannel, mention, newReadState, patch, toJson, type ReadState, type UserStates } from './read-state.js';

/**
 * Versions as the service hands them out: the time of the change in µs, strictly increasing in
 * this process (the service keeps one such clock per shard, durable across restarts; this one
 * only never goes back within a run).
 */
let lastVersion = 0;
function nextVersion(): number {
  const now = Date.now() * 1000;
  lastVersion = now > lastVersion ? now : lastVersion + 1;
  return lastVersion;
}

export type Op =
  | { op: 'get'; channel: bigint; channelKey: string }
  | { op: 'get_all' }
  | { op: 'ack'; channel: bigint; channelKey: string; message: bigint; mentionCount: number; manual: boolean }
  | { op: 'mention'; channel: bigint; channelKey: string; message: bigint | undefined; count: number }
  | { op: 'patch'; channel: bigint; channelKey: string; pin: number | undefined; flags: number | undefined }
  | { op: 'delete'; channel: bigint; channelKey: string };

export interface OpResult {
  status: number;
  changed: boolean;
  /** the read state after the op (200, unless the caller asked for no body) */
  state?: ReadStateJson;
  /** get_all: every read state of the user, by channel id */
  list?: ReadStateJson[];
}

export interface OpTarget {
  cache: UserCache;
  dirty: DirtyTracker;
}

/** Runs the op on the user (now, or after the user's load) and calls `done` with its result. */
export function runOp(t: OpTarget, userKey: string, userId: bigint, op: Op, withBody: boolean, done: (r: OpResult) => void): void {
  t.cache.withUser(userKey, userId, (user, failure) => {
    done(user === undefined ? { status: failure, changed: false } : applyOp(t, userKey, userId, user, op, withBody));
  });
}

function applyOp(t: OpTarget, userKey: string, userId: bigint, user: UserStates, op: Op, withBody: boolean): OpResult {
  if (op.op === 'get_all') {
    const list = [...user.values()].sort(byChannel).map((rs) => toJson(userKey, rs));
    return { status: ResultStatus.Ok, changed: false, list };
  }
  const existing = user.get(op.channelKey);
  if (op.op === 'get') {
    return existing === undefined ? { status: ResultStatus.NotFound, changed: false } : { status: ResultStatus.Ok, changed: false, state: toJson(userKey, existing) };
  }
  if (op.op === 'delete') {
    if (existing === undefined) return { status: ResultStatus.NotFound, changed: false };
    user.delete(op.channelKey);
    t.cache.readStates--;
    t.cache.resized(userKey, user);
    t.dirty.deleted(existing);
    return { status: ResultStatus.NoContent, changed: true };
  }
  let rs: ReadState;
  if (existing === undefined) {
    // The user's read states must fit in the cache once every other user is evicted.
    if (user.size + 1 > t.cache.capacity) {
      t.cache.counters.rejectedFull++;
      return { status: ResultStatus.InsufficientStorage, changed: false };
    }
    rs = newReadState(userId, op.channel);
    user.set(op.channelKey, rs);
    t.cache.readStates++;
    t.cache.resized(userKey, user);
  } else {
    rs = existing;
  }
  let changed: boolean;
  switch (op.op) {
    case 'ack':
      changed = ack(rs, op.message, op.mentionCount, op.manual);
      break;
    case 'mention':
      changed = mention(rs, op.message, op.count);
      break;
    case 'patch':
      changed = patch(rs, op.pin, op.flags);
      break;
  }
  // A new read state is a change even when the op itself changes nothing.
  if (existing === undefined) changed = true;
  if (changed) {
    rs.version = nextVersion();
    t.dirty.mark(rs, Date.now());
  }
  return withBody ? { status: ResultStatus.Ok, changed, state: toJson(userKey, rs) } : { status: ResultStatus.Ok, changed };
}
