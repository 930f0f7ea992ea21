/**
 * What a store's load() returns about deletes: the user's newest tombstones, at most
 * MAX_LOADED_TOMBSTONES of them, and a horizon at or above every tombstone left out (see
 * TOMB_PIN_HI in protocol.ts). A shard then answers deltas from after the horizon exactly; the
 * bound keeps a user with a long history of deletes from making every load large.
 */
import { RsWord, TOMB_PIN_HI, hi32, lo32 } from '../protocol.js';

export const MAX_LOADED_TOMBSTONES = 64;

export class LoadedTombstones {
  private readonly chanLo: number[] = [];
  private readonly chanHi: number[] = [];
  private readonly ts: number[] = [];
  /** the newest timestamp among the tombstones left out (0: none left out) */
  horizon = 0;

  add(chanLo: number, chanHi: number, ts: number): void {
    if (this.ts.length < MAX_LOADED_TOMBSTONES) {
      this.chanLo.push(chanLo);
      this.chanHi.push(chanHi);
      this.ts.push(ts);
      return;
    }
    // Full: the oldest of the kept ones and the new one compete; the loser goes below the horizon.
    let min = 0;
    for (let i = 1; i < this.ts.length; i++) if (this.ts[i] < this.ts[min]) min = i;
    if (ts <= this.ts[min]) {
      if (ts > this.horizon) this.horizon = ts;
      return;
    }
    if (this.ts[min] > this.horizon) this.horizon = this.ts[min];
    this.chanLo[min] = chanLo;
    this.chanHi[min] = chanHi;
    this.ts[min] = ts;
  }

  /** Records this adds to a load result (tombstones, and the horizon record if any). */
  get records(): number {
    return this.ts.length + (this.horizon > 0 ? 1 : 0);
  }

  /** Writes `records` records at `at` (RsWord.Size each). */
  writeTo(out: Uint32Array, at: number): void {
    let o = at;
    for (let i = 0; i < this.ts.length; i++) {
      tomb(out, o, this.chanLo[i], this.chanHi[i], this.ts[i]);
      o += RsWord.Size;
    }
    if (this.horizon > 0) tomb(out, o, 0, 0, this.horizon);
  }
}

/** One tombstone record of a load result. */
export function tomb(out: Uint32Array, o: number, chanLo: number, chanHi: number, ts: number): void {
  out.fill(0, o, o + RsWord.Size);
  out[o + RsWord.ChanLo] = chanLo;
  out[o + RsWord.ChanHi] = chanHi;
  out[o + RsWord.PinHi] = TOMB_PIN_HI;
  out[o + RsWord.VerLo] = lo32(ts);
  out[o + RsWord.VerHi] = hi32(ts);
}
