/** Store records (STORED_WORDS) made by hand, and what a load returned, for write-behind tests. */
import { RS_WORDS, R_CHAN_LO, R_MENTION, R_PIN_HI, R_VER_HI, R_VER_LO, STORED_WORDS, S_KIND, S_RS, S_TS_LO, S_USER_LO, TOMB_PIN_HI, join53 } from '../../workers/protocol.js';

export function record(kind: number, user: number, channel: number, mention: number, ts: number): Uint32Array {
  const r = new Uint32Array(STORED_WORDS);
  r[S_KIND] = kind;
  r[S_USER_LO] = user;
  r[S_RS + R_CHAN_LO] = channel;
  r[S_RS + R_MENTION] = mention;
  r[S_TS_LO] = ts;
  return r;
}

/** channel -> mention_count of loaded read states (tombstones left out: see tombstones) */
export function mentions(loaded: Uint32Array): Record<number, number> {
  const out: Record<number, number> = {};
  for (let at = 0; at < loaded.length; at += RS_WORDS) if (loaded[at + R_PIN_HI] !== TOMB_PIN_HI) out[loaded[at + R_CHAN_LO]] = loaded[at + R_MENTION];
  return out;
}

/** channel -> delete timestamp of the tombstones a load returned */
export function tombstones(loaded: Uint32Array): Record<number, number> {
  const out: Record<number, number> = {};
  for (let at = 0; at < loaded.length; at += RS_WORDS) if (loaded[at + R_PIN_HI] === TOMB_PIN_HI) out[loaded[at + R_CHAN_LO]] = join53(loaded[at + R_VER_LO], loaded[at + R_VER_HI]);
  return out;
}
