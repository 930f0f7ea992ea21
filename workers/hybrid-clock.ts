/**
 * Write timestamps of one shard (microseconds): the store keeps, per read state, the write with
 * the highest one, so a timestamp must never be lower than one this service handed out before,
 * whatever the wall clock does (an NTP step, a VM restored from a snapshot).
 *
 * A hybrid logical clock: max(wall clock, last + 1). `last` lives in the shard's shared header, so
 * a replacement worker continues from it; across restarts the main thread starts it above every
 * timestamp the journal holds and above the reservation each shard keeps in
 * `<dataDir>/journal/shard-<k>.clock`: before handing out a timestamp past the reservation, the
 * shard moves the reservation RESERVE_US ahead (one small write every ~RESERVE_US / 2), so no
 * timestamp above it was ever issued by a previous run. A wall clock that steps back is counted
 * in the header (the main thread logs it) and costs nothing: timestamps keep increasing by one
 * per write until the wall clock catches up.
 */
import { closeSync, constants, fsyncSync, openSync, readFileSync, readdirSync, writeSync } from 'node:fs';
import { join } from 'node:path';
import { H_CLOCK_BACK_MAX_MS, H_CLOCK_BACK_STEPS, H_CLOCK_HI, H_CLOCK_LO } from './shard-memory.js';

const TWO_32 = 4294967296;
/** how far ahead of the timestamps handed out the reservation is moved */
export const RESERVE_US = 60_000_000;
const CLOCK_SUFFIX = '.clock';
const WIDTH = 20;

export function clockFileName(shard: number): string {
  return `shard-${shard}${CLOCK_SUFFIX}`;
}

/** The highest reservation any shard left in a journal directory (0 when there is none). */
export function readReservations(journalDir: string): number {
  let names: string[];
  try {
    names = readdirSync(journalDir);
  } catch {
    return 0;
  }
  let max = 0;
  for (const name of names) {
    if (!name.endsWith(CLOCK_SUFFIX)) continue;
    const v = Number(readFileSync(join(journalDir, name), 'utf8').trim());
    if (Number.isSafeInteger(v) && v > max) max = v;
  }
  return max;
}

export interface ClockOptions {
  /** the shard header (Int32Array over a SharedArrayBuffer) */
  header: Int32Array;
  /** wall clock in ms */
  now: () => number;
  /** no timestamp at or below this (µs) is handed out */
  floorUs: number;
  /** where this shard keeps its reservation; null: no durable store, nothing to reserve */
  reservationFile: string | null;
  fsync: boolean;
}

export class HybridClock {
  private readonly h: Int32Array;
  private readonly now: () => number;
  private last: number;
  private wallUs = 0;
  private lastWallMs = 0;
  private reserved = 0;
  private readonly fd: number;
  private readonly fsync: boolean;
  private readonly text = Buffer.alloc(WIDTH + 1);

  constructor(o: ClockOptions) {
    this.h = o.header;
    this.now = o.now;
    this.fsync = o.fsync;
    const inHeader = (o.header[H_CLOCK_HI] >>> 0) * TWO_32 + (o.header[H_CLOCK_LO] >>> 0);
    this.last = Math.max(inHeader, o.floorUs);
    // Neither truncated (the previous run's reservation must survive until this one writes its
    // own) nor append mode (Linux ignores the position of a write to an O_APPEND file).
    this.fd = o.reservationFile === null ? -1 : openSync(o.reservationFile, constants.O_RDWR | constants.O_CREAT, 0o644);
    this.lastWallMs = this.now();
  }

  /** Reads the wall clock once per batch; every timestamp of the batch derives from it. */
  beginBatch(): void {
    const wall = this.now();
    if (wall < this.lastWallMs) this.steppedBack(this.lastWallMs - wall);
    this.lastWallMs = wall;
    this.wallUs = wall * 1000;
  }

  next(): number {
    const ts = this.wallUs > this.last ? this.wallUs : this.last + 1;
    this.last = ts;
    if (ts >= this.reserved && this.fd >= 0) this.reserve(ts);
    return ts;
  }

  /**
   * A timestamp seen in data (a loaded user's version): later timestamps of this clock are above
   * it, so a user's versions keep increasing even if they were handed out by another shard.
   */
  observe(ts: number): void {
    if (ts > this.last) this.last = ts;
  }

  /** Publishes `last` to the shared header (once per batch: a replacement worker starts from it). */
  endBatch(): void {
    this.h[H_CLOCK_LO] = this.last % TWO_32;
    this.h[H_CLOCK_HI] = Math.floor(this.last / TWO_32);
  }

  get lastTs(): number {
    return this.last;
  }

  private steppedBack(ms: number): void {
    this.h[H_CLOCK_BACK_STEPS]++;
    if (ms > this.h[H_CLOCK_BACK_MAX_MS]) this.h[H_CLOCK_BACK_MAX_MS] = Math.min(ms, 0x7fffffff);
  }

  /** Rare: moves the reservation ahead before any timestamp past it is handed out. */
  private reserve(ts: number): void {
    this.reserved = ts + RESERVE_US;
    // Fixed width, written in place: a reader never sees a shorter, truncated number.
    this.text.write(String(this.reserved).padStart(WIDTH, '0') + '\n', 0, 'latin1');
    writeSync(this.fd, this.text, 0, this.text.length, 0);
    if (this.fsync) fsyncSync(this.fd);
  }

  close(): void {
    if (this.fd >= 0) closeSync(this.fd);
  }
}
