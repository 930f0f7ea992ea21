/**
 * The redo journal's format and its segment bookkeeping: frames read back exactly, a torn or
 * corrupt tail ends a segment without losing the frames before it, the floor follows the dirty
 * queue, and segments are kept while the store is down and retired once it has their changes.
 */
import { mkdtempSync, readFileSync, readdirSync, rmSync, truncateSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, expect, it } from 'vitest';
import { MemoryStore } from '../../workers/store/memory-store.js';
import { FRAME_HEADER_WORDS, readSegment, segmentFileName } from '../../workers/journal-format.js';
import { ShardJournal, listSegments } from '../../workers/journal.js';
import { StoredWord } from '../../workers/protocol.js';
import { FaultyStore } from '../support/faulty-store.js';
import { call } from '../support/http-client.js';
import { startService } from '../support/service.js';

const dirs: string[] = [];
const tmp = (): string => {
  const d = mkdtempSync(join(tmpdir(), 'rs-journal-'));
  dirs.push(d);
  return d;
};
afterAll(() => {
  for (const d of dirs) rmSync(d, { recursive: true, force: true });
});

function frame(records: number, firstUser: number): Uint32Array {
  const f = new Uint32Array(FRAME_HEADER_WORDS + records * StoredWord.Size);
  for (let i = 0; i < records; i++) {
    const at = FRAME_HEADER_WORDS + i * StoredWord.Size;
    for (let j = 0; j < StoredWord.Size; j++) f[at + j] = (firstUser + i) * 100 + j;
    f[at + StoredWord.UserLo] = firstUser + i;
  }
  return f;
}

const users = (records: Uint32Array): number[] => {
  const out: number[] = [];
  for (let at = 0; at < records.length; at += StoredWord.Size) out.push(records[at + StoredWord.UserLo]);
  return out;
};

function journalIn(dir: string, segmentMaxAgeMs = 60_000): ShardJournal {
  return new ShardJournal({ dir, shard: 3, fsyncMs: null, segmentBytes: 1 << 30, segmentMaxAgeMs }, 0, 1000);
}

it('reads back every frame, record for record', () => {
  const dir = tmp();
  const j = journalIn(dir);
  j.append(frame(3, 1), 3);
  j.append(frame(0, 0), 0); // nothing changed: no frame
  j.append(frame(2, 10), 2);
  const seg = readSegment(readFileSync(join(dir, segmentFileName(0))));
  expect(seg).toMatchObject({ shard: 3, segment: 0, count: 5, frames: 2, clean: true });
  expect(users(seg.records)).toEqual([1, 2, 3, 10, 11]);
  const f = frame(3, 1);
  expect([...seg.records.subarray(0, StoredWord.Size)]).toEqual([...f.subarray(FRAME_HEADER_WORDS, FRAME_HEADER_WORDS + StoredWord.Size)]);
});

it('a torn last frame or a corrupt frame ends the segment; the frames before it are kept', () => {
  const dir = tmp();
  const j = journalIn(dir);
  j.append(frame(2, 1), 2);
  j.append(frame(2, 5), 2);
  const file = join(dir, segmentFileName(0));
  const whole = readFileSync(file);
  truncateSync(file, whole.length - 7);
  const torn = readSegment(readFileSync(file));
  expect(torn.clean).toBe(false);
  expect(users(torn.records)).toEqual([1, 2]);

  const corrupt = Buffer.from(whole);
  corrupt[whole.length - 5] ^= 0xff; // inside the second frame's records: its CRC no longer matches
  writeFileSync(file, corrupt);
  const bad = readSegment(readFileSync(file));
  expect(bad.clean).toBe(false);
  expect(users(bad.records)).toEqual([1, 2]);

  writeFileSync(file, whole.subarray(0, 10)); // died between creating the file and its header
  expect(readSegment(readFileSync(file)).count).toBe(0);
  writeFileSync(file, Buffer.alloc(64, 7));
  expect(() => readSegment(readFileSync(file))).toThrow(/not a read-states journal segment/);
});

it('the floor is the segment where the oldest dirty read state was first changed', () => {
  const dir = tmp();
  const j = journalIn(dir, 10);
  // segment 0 opened at dirty-queue position 0; entries 0..4 become dirty in it
  j.append(frame(1, 1), 1);
  j.beginBatch(5, 2000); // old enough: segment 1 opens at position 5
  j.append(frame(1, 2), 1);
  j.beginBatch(9, 3000); // segment 2 at position 9
  expect(listSegments(dir)).toEqual([0, 1, 2]);
  expect(j.floor(0)).toBe(0);
  expect(j.floor(4)).toBe(0);
  expect(j.floor(5)).toBe(1);
  expect(j.floor(9)).toBe(2);
  // a replacement worker on the same directory: what it re-queues maps to the oldest segment left
  const again = new ShardJournal({ dir, shard: 3, fsyncMs: null, segmentBytes: 1 << 30, segmentMaxAgeMs: 10 }, 7, 4000);
  expect(listSegments(dir)).toEqual([0, 1, 2, 3]);
  expect(again.floor(0)).toBe(0);
  expect(again.floor(7)).toBe(3);
});

it('keeps segments while the store is down and retires them once it has their changes', async () => {
  const dataDir = tmp();
  const store = new FaultyStore(new MemoryStore());
  const s = await startService({ store: 'sqlite', dataDir, flushDelayMs: 20, journalSegmentMs: 50 }, store);
  const segDir = join(dataDir, 'journal', 'shard-0');
  const mention = async (u: number, c: number): Promise<void> => {
    expect((await call(s.url, 'POST', `/v1/users/${u}/read-states/${c}/mentions`, {})).status).toBe(200);
  };
  try {
    for (let i = 0; i < 12; i++) await mention(2 * i + 2, 1); // cached: later changes need no load
    store.failing = true;
    const outageStart = Math.max(...listSegments(segDir));
    for (let i = 0; i < 12; i++) {
      await mention(2 * i + 2, 2);
      await new Promise((r) => setTimeout(r, 60));
    }
    const during = listSegments(segDir).filter((seg) => seg >= outageStart);
    const last = Math.max(...during);
    expect(during.length).toBeGreaterThan(3);
    // every segment written during the outage is still there
    expect(during).toEqual(Array.from({ length: last - outageStart + 1 }, (_, k) => outageStart + k));
    store.failing = false;
    const deadline = Date.now() + 30_000;
    while (listSegments(segDir)[0] <= last && Date.now() < deadline) {
      // segments close when a batch comes: keep a trickle of changes going
      await mention(2, 3);
      await new Promise((r) => setTimeout(r, 50));
    }
    expect(listSegments(segDir)[0]).toBeGreaterThan(last);
    for (let i = 0; i < 12; i++) {
      const stored = await store.inner.load(2 * i + 2, 0);
      expect(stored.length).toBeGreaterThanOrEqual(2 * 10); // channels 1 and 2, RsWord.Size each
    }
  } finally {
    await s.close();
  }
  // a clean stop leaves no segment behind
  expect(readdirSync(segDir)).toEqual([]);
});
