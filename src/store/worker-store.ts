/**
 * The main thread's handle on a durable store that runs in the store worker
 * (workers/store-worker.ts): the same ReadStateStore interface, each call one piscina task.
 *
 * If the store thread dies, the calls in flight on it fail (the write-behind retries writes,
 * loads answer a retryable 503) and piscina starts a replacement, which opens the store itself.
 */
import { fileURLToPath } from 'node:url';
import { Piscina } from 'piscina';
import type { StoreWorkerData } from '../../workers/store-worker.js';
import type { ThreadTelemetry } from '../../workers/thread-telemetry.js';
import type { ReadStateStore } from '../../workers/store/store.js';

function storeWorkerFile(): string {
  const here = import.meta.url;
  const rel = here.endsWith('.ts') ? '../../dist/workers/store-worker.js' : '../../workers/store-worker.js';
  return fileURLToPath(new URL(rel, here));
}

export class WorkerStore implements ReadStateStore {
  readonly name: string;
  private readonly pool: Piscina;
  /** Resolves once the current store thread has started (piscina's 'workerCreate'). */
  private started: Promise<void>;
  private markStarted: () => void = () => {};

  constructor(data: StoreWorkerData) {
    this.name = data.kind;
    this.pool = new Piscina({
      filename: storeWorkerFile(),
      minThreads: 1,
      maxThreads: 1,
      idleTimeout: Infinity,
      // Many loads and writes may be in flight at once; the worker's store bounds its own I/O.
      concurrentTasksPerWorker: 256,
      atomics: 'disabled',
      workerData: data,
    });
    // A worker error outside a task is retried like any failed store call; it must not crash us.
    this.pool.on('error', () => {});
    this.started = this.nextStart();
    this.pool.on('workerCreate', () => this.markStarted());
    this.pool.on('workerDestroy', () => {
      this.started = this.nextStart();
    });
  }

  private nextStart(): Promise<void> {
    return new Promise<void>((resolve) => {
      this.markStarted = resolve;
    });
  }

  async open(): Promise<void> {
    await this.pool.run({ op: 'open' });
  }

  load(lo: number, hi: number): Promise<Uint32Array> {
    return this.pool.run({ op: 'load', lo, hi }) as Promise<Uint32Array>;
  }

  loadMany(users: Uint32Array): Promise<Uint32Array> {
    const copy = users.slice();
    return this.pool.run({ op: 'loadMany', users: copy }, { transferList: [copy.buffer] }) as Promise<Uint32Array>;
  }

  async apply(records: Uint32Array, count: number): Promise<void> {
    // The caller may reuse its buffer; send a copy we can transfer.
    const copy = records.slice(0, records.length);
    await this.pool.run({ op: 'apply', records: copy, count }, { transferList: [copy.buffer] });
  }

  /**
   * Terminates the store thread as a crash would, whatever it is doing (tests use this). Waits
   * for the thread to have started: piscina replaces a thread that dies after it started, while
   * one killed during start-up is taken for a broken worker file and not replaced until the next
   * call.
   */
  async killThread(): Promise<void> {
    await this.started;
    await this.pool.threads[0]?.terminate();
  }

  telemetry(resetDelay: boolean): Promise<ThreadTelemetry> {
    return this.pool.run({ op: 'telemetry', resetDelay }) as Promise<ThreadTelemetry>;
  }

  async close(): Promise<void> {
    try {
      await this.pool.run({ op: 'close' });
    } finally {
      await this.pool.destroy();
    }
  }
}
