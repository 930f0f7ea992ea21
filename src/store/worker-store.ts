/**
 * The main thread's handle on the store worker (workers/store-worker.ts), which runs the store
 * and the write-behind in front of it. Shards reach it over their own ports; this thread makes
 * the calls of StoreLink as piscina tasks, and direct store calls (ReadStateStore: journal replay,
 * tests) the same way.
 *
 * If the store thread dies, the calls in flight on it fail and piscina starts a replacement,
 * which opens the store itself; onRestart then tells the service, which re-attaches the shards
 * and applies their journals to the store again (what the dead thread held unconfirmed).
 */
import { fileURLToPath } from 'node:url';
import { MessageChannel, type MessagePort } from 'node:worker_threads';
import { Piscina } from 'piscina';
import type { StoreWorkerData } from '../../workers/store-worker.js';
import type { StoreHostOptions, StoreHostStats, StoreStateEvent } from '../../workers/store-host.js';
import type { ThreadTelemetry } from '../../workers/thread-telemetry.js';
import type { ReadStateStore } from '../../workers/store/store.js';
import { StatusWords, type StoreLink } from './store-link.js';

function storeWorkerFile(): string {
  const here = import.meta.url;
  const rel = here.endsWith('.ts') ? '../../dist/workers/store-worker.js' : '../../workers/store-worker.js';
  return fileURLToPath(new URL(rel, here));
}

export type WorkerStoreConfig = Pick<StoreWorkerData, 'kind' | 'dataDir' | 'cassandra' | 'fence'>;

export class WorkerStore extends StatusWords implements ReadStateStore, StoreLink {
  readonly name: string;
  private readonly pool: Piscina;
  /** Resolves once the current store thread has started (piscina's 'workerCreate'). */
  private started: Promise<void>;
  private markStarted: () => void = () => {};
  private replaced = false;
  private events: MessagePort | null = null;

  constructor(config: WorkerStoreConfig, shards = 1, o: StoreHostOptions = {}) {
    super(shards);
    this.name = config.kind;
    const data: StoreWorkerData = { ...config, status: this.statusBuffer, shards, writeBehind: o };
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
    this.pool.on('workerCreate', () => {
      this.markStarted();
      this.listen();
      if (this.replaced) this.onRestart?.();
    });
    this.pool.on('workerDestroy', () => {
      this.replaced = true;
      this.started = this.nextStart();
    });
  }

  /** Store health changes come on a port of their own (the host pushes them). */
  private listen(): void {
    this.events?.close();
    const { port1, port2 } = new MessageChannel();
    port1.on('message', (e: StoreStateEvent) => this.onStateChange(e));
    port1.unref();
    this.events = port1;
    this.pool.run({ op: 'events', port: port2 }, { transferList: [port2] }).catch(() => {});
  }

  private nextStart(): Promise<void> {
    return new Promise<void>((resolve) => {
      this.markStarted = resolve;
    });
  }

  get store(): ReadStateStore {
    return this;
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

  async attach(shard: number, port: MessagePort): Promise<void> {
    await this.pool.run({ op: 'attach', shard, port }, { transferList: [port] });
  }

  async gate(shard: number, on: boolean): Promise<void> {
    await this.pool.run({ op: 'gate', shard, on });
  }

  submit(records: Uint32Array): void {
    const copy = records.slice();
    // A failure here is the store thread dying: its replacement gets the journal applied again.
    this.pool.run({ op: 'submit', records: copy }, { transferList: [copy.buffer] }).catch(() => {});
  }

  async drain(timeoutMs: number): Promise<boolean> {
    try {
      return (await this.pool.run({ op: 'drain', seqs: this.postedSeqs(), timeoutMs })) as boolean;
    } catch {
      return false;
    }
  }

  async startBarrier(): Promise<void> {
    await this.pool.run({ op: 'startBarrier', seqs: this.postedSeqs() });
  }

  async barrierPassed(): Promise<boolean> {
    return (await this.pool.run({ op: 'barrierPassed' })) as boolean;
  }

  stats(): Promise<StoreHostStats> {
    return this.pool.run({ op: 'stats' }) as Promise<StoreHostStats>;
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
      this.events?.close();
      await this.pool.destroy();
    }
  }
}
