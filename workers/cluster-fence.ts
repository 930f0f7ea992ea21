/**
 * The store fence of cluster mode, shared by the main thread (which holds the leases) and the
 * threads that act on them: the store worker checks it right before each write leaves for
 * Cassandra, a shard worker reads it to find the users of partitions it must drop.
 *
 * Layout of the SharedArrayBuffer: [0, 8) f64 validUntil, the end of this instance's lease in ms of
 * CLOCK_MONOTONIC (process.hrtime, the same clock on every thread, unlike performance.now());
 * [8, 8 + partitions) u8 per partition: 1 = held (writes allowed while the lease is valid),
 * 0 = not held; [8 + partitions, 8 + 2 * partitions) u8 per partition: 1 = drop its cached users.
 */
import { partitionOf } from './hash.js';
import { StoredWord } from './protocol.js';

export interface FenceBuffers {
  buffer: SharedArrayBuffer;
  partitions: number;
}

export function allocateFence(partitions: number): FenceBuffers {
  return { buffer: new SharedArrayBuffer(8 + 2 * partitions), partitions };
}

/** ms on CLOCK_MONOTONIC, comparable across threads. */
export function monotonicMs(): number {
  return Number(process.hrtime.bigint()) / 1e6;
}

export class Fence {
  readonly partitions: number;
  private readonly until: Float64Array;
  private readonly held: Uint8Array;
  private readonly drop: Uint8Array;

  constructor(b: FenceBuffers) {
    this.partitions = b.partitions;
    this.until = new Float64Array(b.buffer, 0, 1);
    this.held = new Uint8Array(b.buffer, 8, b.partitions);
    this.drop = new Uint8Array(b.buffer, 8 + b.partitions, b.partitions);
  }

  set validUntil(ms: number) {
    this.until[0] = ms;
  }

  get validUntil(): number {
    return this.until[0];
  }

  setHeld(p: number, held: boolean): void {
    this.held[p] = held ? 1 : 0;
  }

  isHeld(p: number): boolean {
    return this.held[p] === 1;
  }

  setDrop(p: number, drop: boolean): void {
    this.drop[p] = drop ? 1 : 0;
  }

  /** A cached user the shard must drop (its partition moved away or is being taken afresh). */
  dropsUser(lo: number, hi: number): boolean {
    return this.drop[partitionOf(lo, hi, this.partitions)] === 1;
  }

  /**
   * Keeps the records this instance may still write (partition held, lease valid now) and returns
   * how many remain at the front of `records`; the others are dropped: their partition's next
   * owner loaded what the store held and must never see a write of ours land after that.
   */
  filter(records: Uint32Array, count: number): number {
    const valid = monotonicMs() < this.until[0];
    let kept = 0;
    for (let i = 0; i < count; i++) {
      const at = i * StoredWord.Size;
      if (!valid || this.held[partitionOf(records[at + StoredWord.UserLo], records[at + StoredWord.UserHi], this.partitions)] !== 1) continue;
      if (kept !== i) records.copyWithin(kept * StoredWord.Size, at, at + StoredWord.Size);
      kept++;
    }
    return kept;
  }
}
