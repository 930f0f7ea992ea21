/**
 * Start-up recovery from the redo journal (format: workers/journal-format.ts): every segment any
 * shard left in `<dataDir>/journal` is applied to the store, last write wins, before the shards
 * start and before /ready can answer 200; once the store has confirmed all of it, the segments
 * are deleted. The store then holds every change that was ever acknowledged, so the shards start
 * empty and load users from it as usual. Segments of any shard count and any previous run are
 * handled the same way, since records carry their user and write timestamp.
 */
import { readFile, readdir, unlink } from 'node:fs/promises';
import { join } from 'node:path';
import { readReservations } from './hybrid-clock.js';
import { parseSegmentFileName, readSegment, shardDirName } from './journal-format.js';
import { StoredWord, join53 } from './protocol.js';
import type { ReadStateStore } from './store/store.js';

export interface ReplayReport {
  segments: number;
  records: number;
  /** segments whose last frame was torn or corrupt (the process died inside that write) */
  tornSegments: number;
  /** the highest write timestamp in the journal or in a shard's clock reservation (µs) */
  maxTs: number;
  ms: number;
}

/** records per store.apply() call while replaying */
const CHUNK = 5_000;

async function segmentFiles(journalDir: string): Promise<string[]> {
  let entries: string[];
  try {
    entries = await readdir(journalDir);
  } catch {
    return [];
  }
  const files: string[] = [];
  for (const dir of entries.filter((e) => e.startsWith('shard-') && !e.includes('.')).sort()) {
    let names: string[];
    try {
      names = await readdir(join(journalDir, dir));
    } catch {
      continue;
    }
    for (const name of names.filter((n) => parseSegmentFileName(n) >= 0).sort()) files.push(join(journalDir, dir, name));
  }
  return files;
}

export async function replayJournal(journalDir: string, store: ReadStateStore): Promise<ReplayReport> {
  const started = Date.now();
  const files = await segmentFiles(journalDir);
  const report: ReplayReport = { segments: files.length, records: 0, tornSegments: 0, maxTs: readReservations(journalDir), ms: 0 };
  for (const file of files) {
    const seg = readSegment(await readFile(file));
    if (!seg.clean) report.tornSegments++;
    for (let i = 0; i < seg.count; i++) {
      const at = i * StoredWord.Size;
      const ts = join53(seg.records[at + StoredWord.TsLo], seg.records[at + StoredWord.TsHi]);
      if (ts > report.maxTs) report.maxTs = ts;
    }
    for (let i = 0; i < seg.count; i += CHUNK) {
      const n = Math.min(CHUNK, seg.count - i);
      await store.apply(seg.records.subarray(i * StoredWord.Size, (i + n) * StoredWord.Size), n);
    }
    report.records += seg.count;
  }
  // Only now that the store has confirmed every record: a crash before this line replays again.
  for (const file of files) await unlink(file);
  report.ms = Date.now() - started;
  return report;
}

/**
 * After a shard worker died: applies that shard's whole journal to the store again. The dying
 * batch may have taken read states out of the slabs (evictions, deletes, snapshots) whose store
 * records never reached this thread; their changes are in the journal. Straight to the store, not
 * through the pending pool: the store keeps the newest record per read state whatever the order,
 * while a pending record is laid over what a load returns, so an old one there would show stale
 * state. Retries with backoff while the store fails (the shard's loads wait for this).
 */
export async function reapplyShard(journalDir: string, shard: number, store: ReadStateStore, closed: () => boolean): Promise<number> {
  const dir = join(journalDir, shardDirName(shard));
  const names = (await readdir(dir).catch(() => [] as string[])).filter((n) => parseSegmentFileName(n) >= 0).sort();
  let total = 0;
  for (const name of names) {
    let bytes: Buffer;
    try {
      bytes = await readFile(join(dir, name));
    } catch {
      continue; // retired meanwhile: the store has it
    }
    const seg = readSegment(bytes);
    for (let i = 0; i < seg.count; i += CHUNK) {
      const n = Math.min(CHUNK, seg.count - i);
      const chunk = seg.records.subarray(i * StoredWord.Size, (i + n) * StoredWord.Size);
      for (let backoff = 100; ; backoff = Math.min(backoff * 2, 5_000)) {
        try {
          await store.apply(chunk, n);
          break;
        } catch (err) {
          if (closed()) throw err;
          await new Promise((r) => setTimeout(r, backoff));
        }
      }
    }
    total += seg.count;
  }
  return total;
}
