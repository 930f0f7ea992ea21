/**
 * The naive service's read state: a plain JS object with BigInt ids, the way a typical Node.js
 * team writes it. One object per (user, channel), held in the user's Map.
 */
import type { ReadStateJson } from '../../src/replies.js';

export interface ReadState {
  userId: bigint;
  channelId: bigint;
  lastMessageId: bigint;
  mentionCount: number;
  lastPinTimestamp: number;
  flags: number;
  version: number;
  /** ms of the first change the store has not been handed yet; 0 when clean */
  dirtySince: number;
}

/** A user's cached read states by channel id (canonical decimal string). */
export type UserStates = Map<string, ReadState>;

export const MAX_MENTIONS = 0x7fffffff;

export function newReadState(userId: bigint, channelId: bigint): ReadState {
  return { userId, channelId, lastMessageId: 0n, mentionCount: 0, lastPinTimestamp: 0, flags: 0, version: 0, dirtySince: 0 };
}

export function toJson(userKey: string, rs: ReadState): ReadStateJson {
  return {
    user_id: userKey,
    channel_id: rs.channelId.toString(),
    last_message_id: rs.lastMessageId.toString(),
    mention_count: rs.mentionCount,
    last_pin_timestamp: rs.lastPinTimestamp,
    flags: rs.flags,
    version: rs.version,
  };
}

/** Orders by channel id as unsigned 64-bit (BigInt comparison). */
export function byChannel(a: ReadState, b: ReadState): number {
  return a.channelId < b.channelId ? -1 : a.channelId > b.channelId ? 1 : 0;
}

/** Normal acks move forward only; manual acks set exactly what is given. Returns whether it changed. */
export function ack(rs: ReadState, message: bigint, mentionCount: number, manual: boolean): boolean {
  if (manual) {
    if (rs.lastMessageId === message && rs.mentionCount === mentionCount) return false;
  } else if (message <= rs.lastMessageId) {
    return false;
  }
  rs.lastMessageId = message;
  rs.mentionCount = mentionCount;
  return true;
}

/** Adds `count` (saturating) unless the mentioned message is already read. */
export function mention(rs: ReadState, message: bigint | undefined, count: number): boolean {
  if (message !== undefined && message <= rs.lastMessageId) return false;
  const after = Math.min(MAX_MENTIONS, rs.mentionCount + count);
  if (after === rs.mentionCount) return false;
  rs.mentionCount = after;
  return true;
}

/** The pin only moves forward; flags are set as given. */
export function patch(rs: ReadState, pin: number | undefined, flags: number | undefined): boolean {
  let changed = false;
  if (pin !== undefined && pin > rs.lastPinTimestamp) {
    rs.lastPinTimestamp = pin;
    changed = true;
  }
  if (flags !== undefined && flags !== rs.flags) {
    rs.flags = flags;
    changed = true;
  }
  return changed;
}
