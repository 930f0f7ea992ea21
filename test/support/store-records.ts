/** Store records (StoredWord.Size) made by hand, and what a load returned, for write-behind tests. */
import { RsWord, StoredWord, TOMB_PIN_HI, join53 } from '../../workers/protocol.js';

export function record(kind: number, user: number, channel: number, mention: number, ts: number): Uint32Array {
  const r = new Uint32Array(StoredWord.Size);
  r[StoredWord.Kind] = kind;
  r[StoredWord.UserLo] = user;
  r[StoredWord.Rs + RsWord.ChanLo] = channel;
  r[StoredWord.Rs + RsWord.Mention] = mention;
  r[StoredWord.TsLo] = ts;
  return r;
}

/** channel -> mention_count of loaded read states (tombstones left out: see tombstones) */
export function mentions(loaded: Uint32Array): Record<number, number> {
  const out: Record<number, number> = {};
  for (let at = 0; at < loaded.length; at += RsWord.Size) if (loaded[at + RsWord.PinHi] !== TOMB_PIN_HI) out[loaded[at + RsWord.ChanLo]] = loaded[at + RsWord.Mention];
  return out;
}

/** channel -> delete timestamp of the tombstones a load returned */
export function tombstones(loaded: Uint32Array): Record<number, number> {
  const out: Record<number, number> = {};
  for (let at = 0; at < loaded.length; at += RsWord.Size) if (loaded[at + RsWord.PinHi] === TOMB_PIN_HI) out[loaded[at + RsWord.ChanLo]] = join53(loaded[at + RsWord.VerLo], loaded[at + RsWord.VerHi]);
  return out;
}
