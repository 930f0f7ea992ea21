/**
 * The journal records a dying shard worker had not written yet (read from its crash ledger by the
 * lane, workers/crash-ledger.ts) go into a segment of their own in that shard's directory, numbered
 * after the last one, before the replacement starts: the ops they belong to are then answered as
 * applied, and they are replayed and retired like any other segment.
 */
import { closeSync, fsyncSync, openSync, writeSync } from 'node:fs';
import { join } from 'node:path';
import { FRAME_HEADER_WORDS, segmentFileName, segmentHeader, sealFrame, shardDirName } from '../workers/journal-format.js';
import { listSegments } from '../workers/journal.js';
import { StoredWord } from '../workers/protocol.js';

/** Writes `records` (StoredWord.Size each) as one frame of a new segment; returns its number. */
export function writeRescueSegment(journalDir: string, shard: number, records: Uint32Array, fsync: boolean): number {
  const dir = join(journalDir, shardDirName(shard));
  const existing = listSegments(dir);
  const segment = existing.length === 0 ? 0 : existing[existing.length - 1] + 1;
  const count = records.length / StoredWord.Size;
  const frame = new Uint32Array(FRAME_HEADER_WORDS + records.length);
  frame.set(records, FRAME_HEADER_WORDS);
  sealFrame(frame, count);
  const fd = openSync(join(dir, segmentFileName(segment)), 'wx');
  try {
    writeSync(fd, new Uint8Array(segmentHeader(shard, segment, Date.now()).buffer));
    writeSync(fd, new Uint8Array(frame.buffer));
    if (fsync) fsyncSync(fd);
  } finally {
    closeSync(fd);
  }
  return segment;
}
