/**
 * On-disk format of the redo journal (written by shard workers, workers/journal.ts; replayed by
 * the main thread at start-up, src/journal-replay.ts). Self-describing so that any process with
 * the store can replay a segment, not only the instance that wrote it.
 *
 * Layout: `<dataDir>/journal/shard-<k>/<segment>.rsj`, segment = 8 hex digits, increasing.
 * Every word is a little-endian u32.
 *
 *   segment header  [SEG_MAGIC, FORMAT_VERSION, shard, segment, createdMsLo, createdMsHi,
 *                    StoredWord.Size, 0]                                  (SEG_HEADER_WORDS)
 *   frame, repeated [FRAME_MAGIC, records, crc32 of the record bytes, 0] (FRAME_HEADER_WORDS)
 *                   records * StoredWord.Size words (protocol.ts: kind, user, read state, write ts)
 *
 * One frame is one batch of one shard, written with one write() before any answer of that batch
 * is sent. A record is the whole read state after the change (or a delete) with its write
 * timestamp, so replay is "apply every record, last write wins": the order of segments, frames
 * and shards does not matter, and replaying twice is harmless. A frame whose bytes are short or
 * whose CRC does not match is a torn tail (the process died inside that write, before answering
 * any of it): replay stops reading that segment there.
 */
import { crc32 } from 'node:zlib';
import { StoredWord } from './protocol.js';

export const SEG_MAGIC = 0x534a5352; // "RSJS" read as little-endian bytes
export const FRAME_MAGIC = 0x464a5352; // "RSJF"
export const FORMAT_VERSION = 1;
export const SEG_HEADER_WORDS = 8;
export const FRAME_HEADER_WORDS = 4;
export const SEGMENT_SUFFIX = '.rsj';

export const enum FrameWord {
  Magic = 0,
  Records = 1,
  Crc = 2,
}

export function shardDirName(shard: number): string {
  return `shard-${shard}`;
}

export function segmentFileName(segment: number): string {
  return segment.toString(16).padStart(8, '0') + SEGMENT_SUFFIX;
}

/** The segment number of a journal file name, or -1 for anything else in the directory. */
export function parseSegmentFileName(name: string): number {
  if (!name.endsWith(SEGMENT_SUFFIX) || name.length !== 8 + SEGMENT_SUFFIX.length) return -1;
  const hex = name.slice(0, 8);
  return /^[0-9a-f]{8}$/.test(hex) ? parseInt(hex, 16) : -1;
}

export function segmentHeader(shard: number, segment: number, createdMs: number): Uint32Array {
  const h = new Uint32Array(SEG_HEADER_WORDS);
  h[0] = SEG_MAGIC;
  h[1] = FORMAT_VERSION;
  h[2] = shard;
  h[3] = segment;
  h[4] = createdMs % 4294967296;
  h[5] = Math.floor(createdMs / 4294967296);
  h[6] = StoredWord.Size;
  return h;
}

/** Fills in the frame header at words[0..FRAME_HEADER_WORDS) for `records` records after it. */
export function sealFrame(words: Uint32Array, records: number): void {
  words[FrameWord.Magic] = FRAME_MAGIC;
  words[FrameWord.Records] = records;
  words[FrameWord.Crc] = crc32(new Uint8Array(words.buffer, words.byteOffset + FRAME_HEADER_WORDS * 4, records * StoredWord.Size * 4));
  words[3] = 0;
}

export interface SegmentContents {
  shard: number;
  segment: number;
  /** records, StoredWord.Size words each */
  records: Uint32Array;
  count: number;
  frames: number;
  /** false when reading stopped at a torn or corrupt frame */
  clean: boolean;
}

/** Reads a segment file's bytes. Throws only when the header is not a journal segment's. */
export function readSegment(bytes: Uint8Array): SegmentContents {
  // Word access needs 4-byte alignment; a Buffer may sit at any offset of a shared pool.
  const aligned = bytes.byteOffset % 4 === 0 ? bytes : bytes.slice();
  const words = new Uint32Array(aligned.buffer, aligned.byteOffset, Math.floor(aligned.byteLength / 4));
  // Shorter than a header: the process died between creating the file and writing its header.
  if (words.length < SEG_HEADER_WORDS) return { shard: -1, segment: -1, records: new Uint32Array(0), count: 0, frames: 0, clean: false };
  if (words[0] !== SEG_MAGIC) throw new Error('not a read-states journal segment');
  if (words[1] !== FORMAT_VERSION || words[6] !== StoredWord.Size) {
    throw new Error(`journal segment format ${words[1]} with ${words[6]}-word records is not supported`);
  }
  let at = SEG_HEADER_WORDS;
  let count = 0;
  let frames = 0;
  let clean = true;
  const starts: number[] = [];
  while (at < words.length) {
    if (at + FRAME_HEADER_WORDS > words.length || words[at + FrameWord.Magic] !== FRAME_MAGIC) {
      clean = false;
      break;
    }
    const n = words[at + FrameWord.Records];
    const end = at + FRAME_HEADER_WORDS + n * StoredWord.Size;
    if (end > words.length) {
      clean = false;
      break;
    }
    const body = new Uint8Array(words.buffer, words.byteOffset + (at + FRAME_HEADER_WORDS) * 4, n * StoredWord.Size * 4);
    if (crc32(body) !== words[at + FrameWord.Crc]) {
      clean = false;
      break;
    }
    starts.push(at + FRAME_HEADER_WORDS, n);
    count += n;
    frames++;
    at = end;
  }
  if (words.length * 4 !== aligned.byteLength) clean = false;
  const records = new Uint32Array(count * StoredWord.Size);
  let out = 0;
  for (let i = 0; i < starts.length; i += 2) {
    const len = starts[i + 1] * StoredWord.Size;
    records.set(words.subarray(starts[i], starts[i] + len), out);
    out += len;
  }
  return { shard: words[2], segment: words[3], records, count, frames, clean };
}
