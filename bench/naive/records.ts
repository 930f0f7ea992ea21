/**
 * Read-state objects <-> the store's word records (workers/protocol.ts): RsWord.Size per loaded read
 * state, StoredWord.Size per write or delete handed to the write-behind.
 */
import { RsWord, StoredWord, TOMB_PIN_HI, hi32 as pinHi, join53, lo32 as pinLo } from '../../workers/protocol.js';
import { fromHalves, hi32, lo32 } from './ids.js';
import type { ReadState, UserStates } from './read-state.js';

/** A loaded user: the store's read states (RsWord.Size each) as objects keyed by channel id. */
export function userFromWords(userId: bigint, words: Uint32Array): UserStates {
  const user: UserStates = new Map();
  for (let at = 0; at + RsWord.Size <= words.length; at += RsWord.Size) {
    // tombstones (deletes the store returns for delta sync): the naive twin has no deltas
    if (words[at + RsWord.PinHi] === TOMB_PIN_HI) continue;
    const channelId = fromHalves(words[at + RsWord.ChanLo], words[at + RsWord.ChanHi]);
    user.set(channelId.toString(), {
      userId,
      channelId,
      lastMessageId: fromHalves(words[at + RsWord.MsgLo], words[at + RsWord.MsgHi]),
      mentionCount: words[at + RsWord.Mention],
      lastPinTimestamp: join53(words[at + RsWord.PinLo], words[at + RsWord.PinHi]),
      flags: words[at + RsWord.Flags],
      version: join53(words[at + RsWord.VerLo], words[at + RsWord.VerHi]),
      dirtySince: 0,
    });
  }
  return user;
}

/** Writes one StoredWord.Size record at `at`: kind, user, read state, write timestamp (µs). */
export function writeRecord(buf: Uint32Array, at: number, kind: number, rs: ReadState, tsMicros: number): void {
  buf[at + StoredWord.Kind] = kind;
  buf[at + StoredWord.UserLo] = lo32(rs.userId);
  buf[at + StoredWord.UserHi] = hi32(rs.userId);
  const r = at + StoredWord.Rs;
  buf[r + RsWord.ChanLo] = lo32(rs.channelId);
  buf[r + RsWord.ChanHi] = hi32(rs.channelId);
  buf[r + RsWord.MsgLo] = lo32(rs.lastMessageId);
  buf[r + RsWord.MsgHi] = hi32(rs.lastMessageId);
  buf[r + RsWord.Mention] = rs.mentionCount;
  buf[r + RsWord.PinLo] = pinLo(rs.lastPinTimestamp);
  buf[r + RsWord.PinHi] = pinHi(rs.lastPinTimestamp);
  buf[r + RsWord.Flags] = rs.flags;
  buf[r + RsWord.VerLo] = pinLo(rs.version);
  buf[r + RsWord.VerHi] = pinHi(rs.version);
  buf[at + StoredWord.TsLo] = pinLo(tsMicros);
  buf[at + StoredWord.TsHi] = pinHi(tsMicros);
}
