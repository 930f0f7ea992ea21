/**
 * SQLite checkpointer thread: copies the WAL back into the database file on its own connection,
 * so the store worker's thread never does.
 *
 * Why a thread of its own: with SQLite's automatic checkpoints, the commit that pushes the WAL
 * past 1,000 pages copies them into the database file and fsyncs it, inside that commit, on the
 * store thread, which is also the thread that loads users on a cache miss. At 5M read states
 * under churn that thread's event loop stalled for up to 109-125 ms, and every request parked on
 * a miss waited with it. In WAL mode a PASSIVE checkpoint on another connection runs beside the
 * writer and the readers without blocking either, so here it runs every `intervalMs` (one coarse
 * timer), and the writer's own automatic checkpoint is kept only as a safety net far above the
 * WAL size this thread leaves behind (see SqliteStore).
 */
import { parentPort, workerData } from 'node:worker_threads';
import Database from 'better-sqlite3';

export interface CheckpointerData {
  file: string;
  intervalMs: number;
  synchronous: 'full' | 'normal';
}

/** Posted after every checkpoint that copied something, and once more when the thread stops. */
export interface CheckpointerReport {
  checkpoints: number;
  /** pages copied into the database file in total */
  pages: number;
  /** the longest single checkpoint, ms */
  maxMs: number;
  totalMs: number;
}

const data = workerData as CheckpointerData;
const db = new Database(data.file);
// A checkpoint fsyncs the database file when synchronous is not OFF; the same setting as the writer.
db.pragma(`synchronous = ${data.synchronous === 'full' ? 'FULL' : 'NORMAL'}`);
const checkpoint = db.prepare('PRAGMA wal_checkpoint(PASSIVE)').raw(true);
const report: CheckpointerReport = { checkpoints: 0, pages: 0, maxMs: 0, totalMs: 0 };
/** WAL frames already copied at the previous checkpoint: only progress counts as pages */
let lastCopied = 0;

function run(): void {
  const t0 = performance.now();
  // [busy, frames in the WAL, frames copied so far]; the writer restarts the WAL from its
  // start once everything in it has been copied, which is when the copied count falls back.
  const [, , copied] = checkpoint.get() as [number, number, number];
  const ms = performance.now() - t0;
  const progress = copied >= lastCopied ? copied - lastCopied : copied;
  lastCopied = copied;
  if (progress <= 0) return;
  report.checkpoints++;
  report.pages += progress;
  report.totalMs += ms;
  if (ms > report.maxMs) report.maxMs = ms;
  parentPort!.postMessage(report);
}

const timer = setInterval(run, data.intervalMs);

parentPort!.on('message', (m: unknown) => {
  if (m !== 'stop') return;
  clearInterval(timer);
  db.close();
  parentPort!.postMessage(report);
  parentPort!.close();
});
