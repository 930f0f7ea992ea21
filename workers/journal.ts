/**
 * The redo journal of one shard, written on the shard worker's thread (format: journal-format.ts).
 *
 * Every batch that changed something appends one frame with one write() before its reply leaves
 * the worker, so no answer is sent for a change that is not in the OS: the change survives kill -9,
 * an OOM kill or a crash of the process. `fsyncMs` adds power-loss safety: 0 = fsync before the
 * reply, N = one fsync every N ms for all batches written meanwhile (their replies wait for it).
 *
 * Segments are retired by the main thread (src/journal-retirer.ts), which deletes those below the
 * floor this journal reports, once the store has confirmed what was handed to it before. The floor
 * is the segment in which the oldest read state still dirty in the shard was first changed: the
 * dirty queue is a FIFO in the order read states became dirty, so `starts` (segment, dirty-queue
 * position at which it was opened) maps the queue's head to a segment. A read state changed again
 * after its last flush is re-queued, so its newest record is always at or above the floor.
 */
import { closeSync, fsync, fsyncSync, mkdirSync, openSync, readdirSync, writeSync } from 'node:fs';
import { join } from 'node:path';
import { FRAME_HEADER_WORDS, parseSegmentFileName, segmentFileName, segmentHeader, sealFrame } from './journal-format.js';
import { StoredWord } from './protocol.js';

export interface JournalOptions {
  /** this shard's directory, `<dataDir>/journal/shard-<k>` */
  dir: string;
  shard: number;
  /** null: no fsync (survives a process crash); 0: fsync before each reply; N: group commit every N ms */
  fsyncMs: number | null;
  /** a segment is closed once it holds this many bytes... */
  segmentBytes: number;
  /** ...or once it is this old and not empty, so that a quiet shard's changes can be retired too */
  segmentMaxAgeMs: number;
}

export interface JournalCounters {
  frames: number;
  records: number;
  bytes: number;
  fsyncs: number;
  segmentsOpened: number;
}

/** Segment numbers present in a shard's journal directory, ascending. */
export function listSegments(dir: string): number[] {
  let names: string[];
  try {
    names = readdirSync(dir);
  } catch {
    return [];
  }
  const out: number[] = [];
  for (const name of names) {
    const seg = parseSegmentFileName(name);
    if (seg >= 0) out.push(seg);
  }
  return out.sort((a, b) => a - b);
}

export class ShardJournal {
  readonly counters: JournalCounters = { frames: 0, records: 0, bytes: 0, fsyncs: 0, segmentsOpened: 0 };
  private readonly o: JournalOptions;
  private fd = -1;
  private segment = 0;
  private segmentBytes = 0;
  private openedAt = 0;
  /** [segment, dirty-queue position at which it was opened], oldest first */
  private readonly starts: number[] = [];
  /** group commit: replies waiting for the next fsync, and fds closed while one was running */
  private waiters: { resolve: () => void; reject: (err: unknown) => void }[] = [];
  private syncing = false;
  private retiredFds: number[] = [];

  /**
   * `dirtyTail`: the dirty queue's tail right now. Segments already in the directory belong to a
   * worker that ran on these slabs before (it died): the read states it left dirty, re-queued from
   * position 0, may have their records in any of them, so the oldest one is their segment.
   */
  constructor(o: JournalOptions, dirtyTail: number, nowMs: number) {
    this.o = o;
    mkdirSync(o.dir, { recursive: true });
    const existing = listSegments(o.dir);
    if (existing.length > 0) {
      this.starts.push(existing[0], 0);
      this.segment = existing[existing.length - 1] + 1;
    }
    this.open(dirtyTail, nowMs);
    if (o.fsyncMs !== null && o.fsyncMs > 0) setInterval(() => this.groupSync(), o.fsyncMs).unref();
  }

  /** Called before a batch is applied: starts a new segment when the current one is full or old. */
  beginBatch(dirtyTail: number, nowMs: number): void {
    if (this.segmentBytes >= this.o.segmentBytes || (this.segmentBytes > 0 && nowMs - this.openedAt >= this.o.segmentMaxAgeMs)) {
      this.rotate(dirtyTail, nowMs);
    }
  }

  /**
   * Appends one frame: `frame` holds FRAME_HEADER_WORDS words of room and then `records` records.
   * Resolves (or returns null when nothing has to wait) once the frame is as durable as configured.
   */
  append(frame: Uint32Array, records: number): Promise<void> | null {
    if (records === 0) return null;
    sealFrame(frame, records);
    const bytes = (FRAME_HEADER_WORDS + records * StoredWord.Size) * 4;
    const view = new Uint8Array(frame.buffer, frame.byteOffset, bytes);
    let done = 0;
    while (done < bytes) done += writeSync(this.fd, view, done, bytes - done);
    this.segmentBytes += bytes;
    this.counters.frames++;
    this.counters.records += records;
    this.counters.bytes += bytes;
    const fsyncMs = this.o.fsyncMs;
    if (fsyncMs === null) return null;
    if (fsyncMs === 0) {
      fsyncSync(this.fd);
      this.counters.fsyncs++;
      return null;
    }
    return new Promise((resolve, reject) => this.waiters.push({ resolve, reject }));
  }

  /** The oldest segment still needed by read states dirty in the shard (see the header comment). */
  floor(dirtyHead: number): number {
    const s = this.starts;
    while (s.length >= 4 && s[3] <= dirtyHead) s.splice(0, 2);
    return s[0];
  }

  private open(dirtyTail: number, nowMs: number): void {
    const path = join(this.o.dir, segmentFileName(this.segment));
    this.fd = openSync(path, 'wx');
    const header = segmentHeader(this.o.shard, this.segment, nowMs);
    writeSync(this.fd, new Uint8Array(header.buffer));
    if (this.o.fsyncMs !== null) {
      // The new file's directory entry must survive power loss too.
      fsyncSync(this.fd);
      const dirFd = openSync(this.o.dir, 'r');
      try {
        fsyncSync(dirFd);
      } finally {
        closeSync(dirFd);
      }
    }
    this.segmentBytes = 0;
    this.openedAt = nowMs;
    this.starts.push(this.segment, dirtyTail);
    this.counters.segmentsOpened++;
  }

  private rotate(dirtyTail: number, nowMs: number): void {
    const old = this.fd;
    if (this.o.fsyncMs !== null) {
      fsyncSync(old);
      this.counters.fsyncs++;
      this.resolveWaiters(this.waiters, null);
      this.waiters = [];
    }
    if (this.syncing) this.retiredFds.push(old);
    else closeSync(old);
    this.segment++;
    this.open(dirtyTail, nowMs);
  }

  private groupSync(): void {
    if (this.syncing || this.waiters.length === 0) return;
    this.syncing = true;
    const batch = this.waiters;
    this.waiters = [];
    fsync(this.fd, (err) => {
      this.syncing = false;
      this.counters.fsyncs++;
      for (const fd of this.retiredFds) closeSync(fd);
      this.retiredFds = [];
      this.resolveWaiters(batch, err);
    });
  }

  private resolveWaiters(batch: { resolve: () => void; reject: (err: unknown) => void }[], err: unknown): void {
    // A failed fsync means those frames may not be durable: their batches fail (answered 503).
    for (const w of batch) {
      if (err === null || err === undefined) w.resolve();
      else w.reject(err);
    }
  }
}
