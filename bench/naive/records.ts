/**
 * Read-state objects <-> the store's word records (workers/protocol.ts): RS_WORDS per loaded read
 * state, STORED_WORDS per write or delete handed to the write-behind.
 */
import {
  RS_WORDS,
  R_CHAN_HI,
  R_CHAN_LO,
  R_FLAGS,
  R_MENTION,
  R_MSG_HI,
  R_MSG_LO,
  R_PIN_HI,
  R_PIN_LO,
  R_VER_HI,
  R_VER_LO,
  S_KIND,
  S_RS,
  S_TS_HI,
  S_TS_LO,
  S_USER_HI,
  S_USER_LO,
  TOMB_PIN_HI,
  hi32 as pinHi,
  join53,
  lo32 as pinLo,
} from '../../workers/protocol.js';
import { fromHalves, hi32, lo32 } from './ids.js';
import type { ReadState, UserStates } from './read-state.js';

/** A loaded user: the store's read states (RS_WORDS each) as objects keyed by channel id. */
export function userFromWords(userId: bigint, words: Uint32Array): UserStates {
  const user: UserStates = new Map();
  for (let at = 0; at + RS_WORDS <= words.length; at += RS_WORDS) {
    // tombstones (deletes the store returns for delta sync): the naive twin has no deltas
    if (words[at + R_PIN_HI] === TOMB_PIN_HI) continue;
    const channelId = fromHalves(words[at + R_CHAN_LO], words[at + R_CHAN_HI]);
    user.set(channelId.toString(), {
      userId,
      channelId,
      lastMessageId: fromHalves(words[at + R_MSG_LO], words[at + R_MSG_HI]),
      mentionCount: words[at + R_MENTION],
      lastPinTimestamp: join53(words[at + R_PIN_LO], words[at + R_PIN_HI]),
      flags: words[at + R_FLAGS],
      version: join53(words[at + R_VER_LO], words[at + R_VER_HI]),
      dirtySince: 0,
    });
  }
  return user;
}

/** Writes one STORED_WORDS record at `at`: kind, user, read state, write timestamp (µs). */
export function writeRecord(buf: Uint32Array, at: number, kind: number, rs: ReadState, tsMicros: number): void {
  buf[at + S_KIND] = kind;
  buf[at + S_USER_LO] = lo32(rs.userId);
  buf[at + S_USER_HI] = hi32(rs.userId);
  const r = at + S_RS;
  buf[r + R_CHAN_LO] = lo32(rs.channelId);
  buf[r + R_CHAN_HI] = hi32(rs.channelId);
  buf[r + R_MSG_LO] = lo32(rs.lastMessageId);
  buf[r + R_MSG_HI] = hi32(rs.lastMessageId);
  buf[r + R_MENTION] = rs.mentionCount;
  buf[r + R_PIN_LO] = pinLo(rs.lastPinTimestamp);
  buf[r + R_PIN_HI] = pinHi(rs.lastPinTimestamp);
  buf[r + R_FLAGS] = rs.flags;
  buf[r + R_VER_LO] = pinLo(rs.version);
  buf[r + R_VER_HI] = pinHi(rs.version);
  buf[at + S_TS_LO] = pinLo(tsMicros);
  buf[at + S_TS_HI] = pinHi(tsMicros);
}
