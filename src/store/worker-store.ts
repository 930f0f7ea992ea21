/**
 * The main thread's handle on a durable store that runs in the store worker
 * (workers/store-worker.ts): the same ReadStateStore interface, each call one piscina task.
 */
import { fileURLToPath } from 'node:url';
import { Piscina } from 'piscina';
import type { StoreWorkerData } from '../../workers/store-worker.js';
import type { ThreadTelemetry } from '../../workers/thread-telemetry.js';
import type { ReadStateStore } from './store.js';

function storeWorkerFile(): string {
  const here = import.meta.url;
  const rel = here.endsWith('.ts') ? '../../dist/workers/store-worker.js' : '../../workers/store-worker.js';
  return fileURLToPath(new URL(rel, here));
}

export class WorkerStore implements ReadStateStore {
  readonly name: string;
  private readonly pool: Piscina;

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
  }

  async open(): Promise<void> {
    await this.pool.run({ op: 'open' });
  }

  load(lo: number, hi: number): Promise<Uint32Array> {
    return this.pool.run({ op: 'load', lo, hi }) as Promise<Uint32Array>;
  }

  async apply(records: Uint32Array, count: number): Promise<void> {
    // The caller may reuse its buffer; send a copy we can transfer.
    const copy = records.slice(0, records.length);
    await this.pool.run({ op: 'apply', records: copy, count }, { transferList: [copy.buffer] });
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
