/**
 * The write-behind's records between a shard handing them over and the store confirming them,
 * kept in typed arrays on the main thread.
 *
 * Why this layout: under load the shards hand over megabytes of records per second, and each one
 * lives only until its store write is confirmed (10-100 ms). Held as JS objects (a Uint32Array per
 * record, string keys, Map entries, a queue array) they outlive the young-generation scavenges,
 * are promoted, and fill the old generation of the thread that also serves HTTP, which then runs a
 * Mark-Compact every few seconds. Here a record is a row in a grow-only pool and every link is an
 * index, so taking a record in allocates nothing and the collector sees a dozen arrays whatever
 * the backlog.
 *
 * Entry `e` (a pool row; 93 bytes with its share of the two tables):
 *   words[e * StoredWord.Size ...]  u32 x StoredWord.Size  the record, in the store's wire format
 *   state                        u8    QUEUED or IN_FLIGHT (0 = free); CURRENT when it is the newest
 *                                      record for its read state; GEN: its generation (flipGeneration)
 *   next/prev                    i32   the user's other current entries (-1 ends the chain)
 *   free                         i32   a stack of free entries
 *   ring                         i32   entries waiting to be sent, oldest first (never more than
 *                                      the pool, so it has the pool's capacity)
 * Read-state index: (user, channel) -> current entry; user index: user -> first entry of its chain.
 *   Open addressing with linear probing and backward-shift deletes (no tombstones, so churn never
 *   degrades a table); buckets hold entry + 1 (0 = empty); each table is a power of two >= twice
 *   the pool, rebuilt when the pool grows.
 *
 * One entry per read state, with one exception: a record for a read state whose entry is already
 * in a store call cannot overwrite it (that call may fail and need it again), so it takes a new
 * entry that becomes current, and the old one is only waited for. A record for a read state whose
 * entry is still queued overwrites it in place and keeps its queue position: stores keep the
 * newest timestamp, so sending the newer record earlier than its turn is harmless.
 */
import { hash64 } from './hash.js';
import { movable } from './hash-index.js';
import { RecordKind, RsWord, StoredWord, join53 } from './protocol.js';
import { tomb } from './store/tombstones.js';

const QUEUED = 1;
const IN_FLIGHT = 2;
const CURRENT = 4;
/** scratch bit of overlay(): the entry replaced a row the store returned */
const SEEN = 8;
/** the entry's generation (see flipGeneration) */
const GEN = 16;

const C_LO = StoredWord.Rs + RsWord.ChanLo;
const C_HI = StoredWord.Rs + RsWord.ChanHi;

// Seeds of their own: these tables must not share bucket patterns with the shard indexes.
const PAIR_USER_SEED = 0x3c6ef372;
const PAIR_CHAN_SEED = 0xa54ff53a;
const USER_SEED = 0x510e527f;

function pairHash(lo: number, hi: number, clo: number, chi: number): number {
  return hash64(lo, hi, PAIR_USER_SEED) ^ hash64(clo, chi, PAIR_CHAN_SEED);
}

function tableSizeFor(capacity: number): number {
  let size = 16;
  while (size < capacity * 2) size *= 2;
  return size;
}

export class PendingWrites {
  private readonly initialCapacity: number;
  private capacity: number;
  private words: Uint32Array;
  private state: Uint8Array;
  private next: Int32Array;
  private prev: Int32Array;
  private free: Int32Array;
  private freeTop: number;
  private ring: Int32Array;
  private ringHead = 0;
  private ringCount = 0;
  private index: Int32Array;
  private users: Int32Array;
  private mask: number;
  private currentCount = 0;
  /** generation new entries join (0 or 1), and how many entries each generation holds */
  private gen = 0;
  private readonly genCount = new Int32Array(2);

  constructor(initialCapacity = 1024) {
    this.initialCapacity = Math.max(16, initialCapacity);
    this.capacity = this.initialCapacity;
    this.words = new Uint32Array(this.capacity * StoredWord.Size);
    this.state = new Uint8Array(this.capacity);
    this.next = new Int32Array(this.capacity);
    this.prev = new Int32Array(this.capacity);
    this.free = new Int32Array(this.capacity);
    for (let i = 0; i < this.capacity; i++) this.free[i] = this.capacity - 1 - i;
    this.freeTop = this.capacity;
    this.ring = new Int32Array(this.capacity);
    const size = tableSizeFor(this.capacity);
    this.index = new Int32Array(size);
    this.users = new Int32Array(size);
    this.mask = size - 1;
  }

  /** Entries the pool has room for (it doubles when full, shrinks back when emptied: shrink()). */
  get size(): number {
    return this.capacity;
  }

  /**
   * Back to the first size if nothing is held (nothing pending, queued or in a store call): a
   * burst (a fill's write-back) must not keep its pool, ~93 bytes per entry, for the process's life.
   * Returns whether it shrank.
   */
  shrink(): boolean {
    if (this.freeTop !== this.capacity || this.capacity === this.initialCapacity) return false;
    const cap = this.initialCapacity;
    this.capacity = cap;
    this.words = new Uint32Array(cap * StoredWord.Size);
    this.state = new Uint8Array(cap);
    this.next = new Int32Array(cap);
    this.prev = new Int32Array(cap);
    this.free = new Int32Array(cap);
    for (let i = 0; i < cap; i++) this.free[i] = cap - 1 - i;
    this.freeTop = cap;
    this.ring = new Int32Array(cap);
    this.ringHead = 0;
    const size = tableSizeFor(cap);
    this.index = new Int32Array(size);
    this.users = new Int32Array(size);
    this.mask = size - 1;
    return true;
  }

  /** Read states with a record the store has not confirmed. */
  get pending(): number {
    return this.currentCount;
  }

  /** Entries waiting to be sent. */
  get queued(): number {
    return this.ringCount;
  }

  /** Takes the StoredWord.Size record at `records[at]` (copied) as the newest for its read state. */
  put(records: Uint32Array, at: number): void {
    if (this.freeTop === 0) this.grow();
    const lo = records[at + StoredWord.UserLo];
    const hi = records[at + StoredWord.UserHi];
    const i = this.pairBucket(lo, hi, records[at + C_LO], records[at + C_HI]);
    const old = this.index[i] - 1;
    // Older than what is pending for the read state (a journal re-submitted after a worker crash):
    // the store would keep the newer one anyway.
    if (old >= 0 && this.isOlder(records, at, old)) return;
    if (old >= 0 && (this.state[old] & QUEUED) !== 0) {
      this.copyIn(old, records, at);
      return;
    }
    const e = this.free[--this.freeTop];
    this.copyIn(e, records, at);
    this.state[e] = QUEUED | CURRENT | (this.gen === 0 ? 0 : GEN);
    this.genCount[this.gen]++;
    this.index[i] = e + 1;
    this.ring[(this.ringHead + this.ringCount++) % this.capacity] = e;
    if (old < 0) {
      this.currentCount++;
      this.chainPush(e, lo, hi);
    } else {
      // `old` is in a store call: it is freed when that call ends, whatever the outcome.
      this.state[old] &= ~CURRENT;
      this.chainReplace(old, e);
    }
  }

  /**
   * Moves up to entries.length queued entries, oldest first, into a store call: their indices go
   * to `entries` and their records to `flat`. Returns how many.
   */
  take(entries: Int32Array, flat: Uint32Array): number {
    const n = Math.min(entries.length, this.ringCount);
    const w = this.words;
    for (let k = 0; k < n; k++) {
      const e = this.ring[this.ringHead];
      this.ringHead = this.ringHead + 1 === this.capacity ? 0 : this.ringHead + 1;
      this.state[e] = (this.state[e] & (CURRENT | GEN)) | IN_FLIGHT;
      entries[k] = e;
      const src = e * StoredWord.Size;
      const dst = k * StoredWord.Size;
      for (let j = 0; j < StoredWord.Size; j++) flat[dst + j] = w[src + j];
    }
    this.ringCount -= n;
    return n;
  }

  /** The store holds these entries' records now. */
  confirm(entries: Int32Array): void {
    for (let k = 0; k < entries.length; k++) {
      const e = entries[k];
      if ((this.state[e] & CURRENT) !== 0) this.forget(e);
      this.release(e);
    }
  }

  /**
   * The store call with these entries failed: the ones still current go back to the front of the
   * queue in their order; the ones superseded meanwhile are dropped (a newer record is pending).
   */
  requeue(entries: Int32Array): void {
    for (let k = entries.length - 1; k >= 0; k--) {
      const e = entries[k];
      if ((this.state[e] & CURRENT) === 0) {
        this.release(e);
        continue;
      }
      this.state[e] = (this.state[e] & GEN) | QUEUED | CURRENT;
      this.ringHead = this.ringHead === 0 ? this.capacity - 1 : this.ringHead - 1;
      this.ring[this.ringHead] = e;
      this.ringCount++;
    }
  }

  /**
   * The user's read states as the store will hold them once everything pending is written:
   * pending records replace the `stored` rows of their channel; a pending delete becomes a
   * tombstone record (protocol.ts TOMB_PIN_HI) with its timestamp.
   */
  overlay(lo: number, hi: number, stored: Uint32Array): Uint32Array {
    const ub = this.userBucket(lo, hi);
    const head = this.users[ub] - 1;
    if (head < 0) return stored;
    let chained = 0;
    for (let e = head; e >= 0; e = this.next[e]) chained++;
    const out = new Uint32Array(stored.length + chained * RsWord.Size);
    let at = 0;
    for (let r = 0; r < stored.length; r += RsWord.Size) {
      const e = this.index[this.pairBucket(lo, hi, stored[r + RsWord.ChanLo], stored[r + RsWord.ChanHi])] - 1;
      if (e < 0) {
        for (let j = 0; j < RsWord.Size; j++) out[at + j] = stored[r + j];
        at += RsWord.Size;
        continue;
      }
      this.state[e] |= SEEN;
      this.copyOut(e, out, at);
      at += RsWord.Size;
    }
    for (let e = head; e >= 0; e = this.next[e]) {
      if ((this.state[e] & SEEN) !== 0) {
        this.state[e] &= ~SEEN;
        continue;
      }
      this.copyOut(e, out, at);
      at += RsWord.Size;
    }
    return at === out.length ? out : out.subarray(0, at);
  }

  /** The entry as a load result record: its read state, or a tombstone for a delete. */
  private copyOut(e: number, out: Uint32Array, at: number): void {
    const w = this.words;
    const b = e * StoredWord.Size;
    if (w[b + StoredWord.Kind] === RecordKind.Delete) {
      tomb(out, at, w[b + C_LO], w[b + C_HI], join53(w[b + StoredWord.TsLo], w[b + StoredWord.TsHi]));
      return;
    }
    for (let j = 0; j < RsWord.Size; j++) out[at + j] = w[b + StoredWord.Rs + j];
  }

  /** Whether the entry holds the newest record ever taken in for its read state. */
  isCurrent(e: number): boolean {
    return (this.state[e] & CURRENT) !== 0;
  }

  /** The entry's record (a view: copy it to keep it). */
  record(e: number): Uint32Array {
    return this.words.subarray(e * StoredWord.Size, (e + 1) * StoredWord.Size);
  }

  /**
   * Starts a new generation. Entries taken in before stay in the previous one, including those
   * overwritten in place later (the newer record then has to be confirmed too), until released.
   * Call it only when the previous generation is empty, so that two generations suffice.
   */
  flipGeneration(): void {
    this.gen ^= 1;
  }

  /** Entries of the previous generation still held: queued, in a store call, or waiting for one. */
  get previousGeneration(): number {
    return this.genCount[this.gen ^ 1];
  }

  /** Oldest write timestamp (µs) among current entries, 0 if none (a scan: diagnostics only). */
  oldestTs(): number {
    let oldest = 0;
    for (let e = 0; e < this.capacity; e++) {
      if ((this.state[e] & CURRENT) === 0) continue;
      const ts = join53(this.words[e * StoredWord.Size + StoredWord.TsLo], this.words[e * StoredWord.Size + StoredWord.TsHi]);
      if (oldest === 0 || ts < oldest) oldest = ts;
    }
    return oldest;
  }

  private isOlder(records: Uint32Array, at: number, e: number): boolean {
    const b = e * StoredWord.Size;
    const hi = records[at + StoredWord.TsHi];
    const pendingHi = this.words[b + StoredWord.TsHi];
    return hi < pendingHi || (hi === pendingHi && records[at + StoredWord.TsLo] < this.words[b + StoredWord.TsLo]);
  }

  private copyIn(e: number, records: Uint32Array, at: number): void {
    const w = this.words;
    const dst = e * StoredWord.Size;
    for (let j = 0; j < StoredWord.Size; j++) w[dst + j] = records[at + j];
  }

  private release(e: number): void {
    this.genCount[(this.state[e] & GEN) === 0 ? 0 : 1]--;
    this.state[e] = 0;
    this.free[this.freeTop++] = e;
  }

  /** A current entry leaves the read-state index and its user's chain. */
  private forget(e: number): void {
    const w = this.words;
    const b = e * StoredWord.Size;
    const lo = w[b + StoredWord.UserLo];
    const hi = w[b + StoredWord.UserHi];
    this.indexRemove(this.pairBucket(lo, hi, w[b + C_LO], w[b + C_HI]));
    this.currentCount--;
    const p = this.prev[e];
    const n = this.next[e];
    if (n >= 0) this.prev[n] = p;
    if (p >= 0) this.next[p] = n;
    else if (n >= 0) this.users[this.userBucket(lo, hi)] = n + 1;
    else this.usersRemove(this.userBucket(lo, hi));
  }

  private chainPush(e: number, lo: number, hi: number): void {
    const ub = this.userBucket(lo, hi);
    const head = this.users[ub] - 1;
    this.prev[e] = -1;
    this.next[e] = head;
    if (head >= 0) this.prev[head] = e;
    this.users[ub] = e + 1;
  }

  /** `e` takes the chain position of `old` (same user and channel). */
  private chainReplace(old: number, e: number): void {
    const p = this.prev[old];
    const n = this.next[old];
    this.prev[e] = p;
    this.next[e] = n;
    if (n >= 0) this.prev[n] = e;
    if (p >= 0) this.next[p] = e;
    else {
      const b = e * StoredWord.Size;
      this.users[this.userBucket(this.words[b + StoredWord.UserLo], this.words[b + StoredWord.UserHi])] = e + 1;
    }
  }

  /** Bucket of the read state's current entry, or the empty bucket where it would go. */
  private pairBucket(lo: number, hi: number, clo: number, chi: number): number {
    const t = this.index;
    const w = this.words;
    const mask = this.mask;
    let i = pairHash(lo, hi, clo, chi) & mask;
    for (;;) {
      const v = t[i];
      if (v === 0) return i;
      const b = (v - 1) * StoredWord.Size;
      if (w[b + C_LO] === clo && w[b + C_HI] === chi && w[b + StoredWord.UserLo] === lo && w[b + StoredWord.UserHi] === hi) return i;
      i = (i + 1) & mask;
    }
  }

  /** Bucket holding the head of the user's chain, or the empty bucket where it would go. */
  private userBucket(lo: number, hi: number): number {
    const t = this.users;
    const w = this.words;
    const mask = this.mask;
    let i = hash64(lo, hi, USER_SEED) & mask;
    for (;;) {
      const v = t[i];
      if (v === 0) return i;
      const b = (v - 1) * StoredWord.Size;
      if (w[b + StoredWord.UserLo] === lo && w[b + StoredWord.UserHi] === hi) return i;
      i = (i + 1) & mask;
    }
  }

  private indexRemove(i: number): void {
    const t = this.index;
    const w = this.words;
    const mask = this.mask;
    let j = i;
    for (;;) {
      j = (j + 1) & mask;
      const v = t[j];
      if (v === 0) break;
      const b = (v - 1) * StoredWord.Size;
      if (movable(i, j, pairHash(w[b + StoredWord.UserLo], w[b + StoredWord.UserHi], w[b + C_LO], w[b + C_HI]) & mask)) {
        t[i] = v;
        i = j;
      }
    }
    t[i] = 0;
  }

  private usersRemove(i: number): void {
    const t = this.users;
    const w = this.words;
    const mask = this.mask;
    let j = i;
    for (;;) {
      j = (j + 1) & mask;
      const v = t[j];
      if (v === 0) break;
      const b = (v - 1) * StoredWord.Size;
      if (movable(i, j, hash64(w[b + StoredWord.UserLo], w[b + StoredWord.UserHi], USER_SEED) & mask)) {
        t[i] = v;
        i = j;
      }
    }
    t[i] = 0;
  }

  /** Rare: the pool is full. Doubles it; entry indices stay valid, the tables are rebuilt. */
  private grow(): void {
    const old = this.capacity;
    const cap = old * 2;
    const words = new Uint32Array(cap * StoredWord.Size);
    words.set(this.words);
    this.words = words;
    const state = new Uint8Array(cap);
    state.set(this.state);
    this.state = state;
    const next = new Int32Array(cap);
    next.set(this.next);
    this.next = next;
    const prev = new Int32Array(cap);
    prev.set(this.prev);
    this.prev = prev;
    const free = new Int32Array(cap);
    free.set(this.free.subarray(0, this.freeTop));
    for (let e = cap - 1; e >= old; e--) free[this.freeTop++] = e;
    this.free = free;
    const ring = new Int32Array(cap);
    for (let k = 0; k < this.ringCount; k++) ring[k] = this.ring[(this.ringHead + k) % old];
    this.ring = ring;
    this.ringHead = 0;
    this.capacity = cap;

    const size = tableSizeFor(cap);
    this.index = new Int32Array(size);
    this.users = new Int32Array(size);
    this.mask = size - 1;
    const w = this.words;
    for (let e = 0; e < old; e++) {
      if ((this.state[e] & CURRENT) === 0) continue;
      const b = e * StoredWord.Size;
      const lo = w[b + StoredWord.UserLo];
      const hi = w[b + StoredWord.UserHi];
      this.index[this.pairBucket(lo, hi, w[b + C_LO], w[b + C_HI])] = e + 1;
      if (this.prev[e] < 0) this.users[this.userBucket(lo, hi)] = e + 1;
    }
  }
}
