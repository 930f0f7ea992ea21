/**
 * The write-behind FIFO of one shard: read-state slots in the order they became dirty. `head` and
 * `tail` are absolute positions (entries popped / pushed so far); the journal and the flush marks
 * refer to them. A slot freed while dirty leaves a stale entry, skipped when popped.
 *
 * Worker-local (a replacement worker rebuilds it from the DIRTY bits) and sized by what it holds:
 * it doubles when full, up to the shard's capacity (full there means stale entries: the caller pops
 * one), and once at most an eighth full after pops it shrinks to twice what it holds. A ring as
 * long as the capacity would keep 4 bytes per read state resident for good once one write-back
 * wave had gone round it; this one gives them back when the wave has drained.
 */
const MIN_LENGTH = 4096;

export class DirtyRing {
  head = 0;
  tail = 0;
  private ring: Uint32Array;

  constructor(private readonly max: number) {
    this.ring = new Uint32Array(Math.min(MIN_LENGTH, max));
  }

  /** Entries held (stale ones included). */
  get size(): number {
    return this.tail - this.head;
  }

  /** Slots the ring has room for now (tests). */
  get length(): number {
    return this.ring.length;
  }

  /** Makes room for one more entry; false when the ring is full at its maximum. */
  room(): boolean {
    if (this.tail - this.head < this.ring.length) return true;
    if (this.ring.length >= this.max) return false;
    this.resize(Math.min(this.max, this.ring.length * 2));
    return true;
  }

  /** Appends a slot; room() must have said yes. */
  push(s: number): void {
    this.ring[this.tail % this.ring.length] = s;
    this.tail++;
  }

  /** Removes and returns the oldest slot; the ring must not be empty. */
  shift(): number {
    const s = this.ring[this.head % this.ring.length];
    this.head++;
    return s;
  }

  /** After pops: gives back what a drained wave left unused. */
  trim(): void {
    const n = this.tail - this.head;
    if (this.ring.length > MIN_LENGTH && n * 8 <= this.ring.length) this.resize(Math.max(MIN_LENGTH, n * 2));
  }

  /** Empties the ring (positions start again at 0). */
  clear(): void {
    this.head = 0;
    this.tail = 0;
    if (this.ring.length > MIN_LENGTH) this.ring = new Uint32Array(Math.min(MIN_LENGTH, this.max));
  }

  private resize(length: number): void {
    const next = new Uint32Array(length);
    const old = this.ring;
    for (let p = this.head; p < this.tail; p++) next[p % length] = old[p % old.length];
    this.ring = next;
  }
}
