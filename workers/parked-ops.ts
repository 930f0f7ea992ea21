/**
 * Operations waiting for their user's load, one FIFO chain per user slot, in typed arrays.
 *
 * A batch that brings a thousand new users parks ten thousand operations; finding one user's
 * operations by scanning everything parked made each install cost the whole backlog (a thousand
 * users x ten thousand ops per batch). Here each user slot has a head and a tail entry, each entry
 * a link to the next, so parking and replaying cost only the operations concerned.
 *
 * Entry `e` (entries are numbered from 1; 0 ends a chain):
 *   words[(e - 1) * OpWord.Size ...]  the op as it arrived (wire layout)
 *   next[e - 1]                    the user's next parked op, or 0
 * head[u] / tail[u]: first and last entry parked for user slot u (0 = none). Freed entries go on a
 * stack and are reused first, so the buffers grow only to the largest backlog seen.
 */
import { OpWord } from './protocol.js';

export class ParkedOps {
  private words = new Uint32Array(OpWord.Size * 64);
  private next = new Uint32Array(64);
  private free = new Uint32Array(64);
  private freeTop = 0;
  /** entries ever handed out */
  private hwm = 0;
  private readonly head: Uint32Array;
  private readonly tail: Uint32Array;
  /** operations parked now */
  count = 0;

  constructor(userSlots: number) {
    this.head = new Uint32Array(userSlots);
    this.tail = new Uint32Array(userSlots);
  }

  /** Parks `src[o .. o + OpWord.Size)` at the end of user slot u's chain. */
  push(u: number, src: Uint32Array, o: number): void {
    const e = this.freeTop > 0 ? this.free[--this.freeTop] : this.take();
    const at = (e - 1) * OpWord.Size;
    for (let j = 0; j < OpWord.Size; j++) this.words[at + j] = src[o + j];
    this.next[e - 1] = 0;
    const t = this.tail[u];
    if (t === 0) this.head[u] = e;
    else this.next[t - 1] = e;
    this.tail[u] = e;
    this.count++;
  }

  /** The buffer entries live in; stable while nothing is pushed (read an entry at offsetOf(e)). */
  get buffer(): Uint32Array {
    return this.words;
  }

  /** First entry parked for user slot u, or 0. */
  first(u: number): number {
    return this.head[u];
  }

  /** The entry after e in its chain, or 0. */
  after(e: number): number {
    return this.next[e - 1];
  }

  offsetOf(e: number): number {
    return (e - 1) * OpWord.Size;
  }

  /** Frees user slot u's whole chain (after its ops were replayed or refused). */
  drop(u: number): void {
    for (let e = this.head[u]; e !== 0; e = this.next[e - 1]) {
      this.free[this.freeTop++] = e;
      this.count--;
    }
    this.head[u] = 0;
    this.tail[u] = 0;
  }

  private take(): number {
    const e = ++this.hwm;
    if (e > this.next.length) {
      const n = this.next.length * 2;
      const words = new Uint32Array(n * OpWord.Size);
      words.set(this.words);
      this.words = words;
      const next = new Uint32Array(n);
      next.set(this.next);
      this.next = next;
      this.free = new Uint32Array(n); // empty whenever take() runs
    }
    return e;
  }
}
