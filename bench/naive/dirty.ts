/**
 * Write-behind on the naive side: a Set of dirty read-state objects in the order they became dirty.
 * A coarse timer hands the store those whose first unflushed change is older than the flush
 * delay; evictions and deletes go out at once; shutdown hands over everything.
 */
import { RecordKind, StoredWord } from '../../workers/protocol.js';
import type { WriteBehind } from '../../workers/write-behind.js';
import type { ReadState } from './read-state.js';
import { writeRecord } from './records.js';

/** Read states snapshotted per timer tick at most (the rest waits for the next tick). */
const FLUSH_BATCH_MAX = 50_000;

export class DirtyTracker {
  /** insertion order = order of first unflushed change (a flushed state re-enters at the end) */
  private readonly dirty = new Set<ReadState>();
  private lastTs = 0;
  flushed = 0;

  constructor(
    private readonly writeBehind: WriteBehind,
    private readonly flushDelayMs: number,
  ) {}

  get size(): number {
    return this.dirty.size;
  }

  /** ms since the oldest change not handed to the store yet (0 if none). */
  oldestAgeMs(now: number): number {
    for (const rs of this.dirty) return now - rs.dirtySince;
    return 0;
  }

  mark(rs: ReadState, now: number): void {
    if (rs.dirtySince !== 0) return;
    rs.dirtySince = now;
    this.dirty.add(rs);
  }

  /** A deleted read state: nothing left to write, the store gets a delete now. */
  deleted(rs: ReadState): void {
    this.clear(rs);
    this.submit([rs], RecordKind.Delete);
  }

  /** An evicted user: its changed read states go to the store now. */
  evicted(states: Iterable<ReadState>): void {
    const out: ReadState[] = [];
    for (const rs of states) {
      if (rs.dirtySince === 0) continue;
      this.clear(rs);
      out.push(rs);
    }
    if (out.length > 0) this.submit(out, RecordKind.Write);
  }

  /** Timer tick: writes the read states whose flush delay has passed (none while the store is degraded). */
  flushDue(now: number): void {
    if (this.writeBehind.degraded) return;
    const out: ReadState[] = [];
    for (const rs of this.dirty) {
      if (out.length === FLUSH_BATCH_MAX || rs.dirtySince + this.flushDelayMs > now) break;
      out.push(rs);
    }
    this.write(out);
  }

  /** Shutdown: writes every dirty read state. */
  flushAll(): void {
    this.write([...this.dirty]);
  }

  private write(out: ReadState[]): void {
    if (out.length === 0) return;
    for (const rs of out) this.clear(rs);
    this.flushed += out.length;
    this.submit(out, RecordKind.Write);
  }

  private clear(rs: ReadState): void {
    if (rs.dirtySince === 0) return;
    rs.dirtySince = 0;
    this.dirty.delete(rs);
  }

  private submit(list: ReadState[], kind: number): void {
    const buf = new Uint32Array(list.length * StoredWord.Size);
    for (let i = 0; i < list.length; i++) writeRecord(buf, i * StoredWord.Size, kind, list[i], this.nextTs());
    this.writeBehind.submit(buf, list.length);
  }

  /** Microseconds, strictly increasing even if the wall clock steps back. */
  private nextTs(): number {
    const ts = Math.max(Date.now() * 1000, this.lastTs + 1);
    this.lastTs = ts;
    return ts;
  }
}
