/**
 * The main thread's side of the store thread: what it reads of the write-behind's state (status
 * words, store-status.ts) and the few calls it makes (attach a shard's port, drain, the journal
 * barrier, figures). The records and the loads themselves go between the shards and the store
 * host (workers/store-host.ts) and never pass through this thread.
 *
 * Two implementations: the store worker (worker-store.ts, every store the configuration names)
 * and a host on this thread around a store object handed to the service (tests inject faults
 * that way: local-store-link.ts).
 */
import type { MessagePort } from 'node:worker_threads';
import type { StoreHostStats, StoreStateEvent } from '../../workers/store-host.js';
import { S_COLLECTIONS, S_DEGRADED, S_FAILING, S_PENDING, S_PENDING_FULL, allocateStoreStatus } from '../../workers/store-status.js';
import type { ReadStateStore } from '../../workers/store/store.js';

export interface StoreLink {
  readonly name: string;
  /** The store itself, without the write-behind (journal replay and re-apply, tests). */
  readonly store: ReadStateStore;
  /** status words the host writes and the shards read (store-status.ts) */
  readonly statusBuffer: SharedArrayBuffer;
  /** the shards' message numbers (shard-memory.ts H_STORE_SEQ): set once the router exists */
  postedSeqs: () => number[];
  /** store health changes, for the log */
  onStateChange: (e: StoreStateEvent) => void;
  /** the store thread was replaced: its pending records are gone and the shards must re-attach */
  onRestart: (() => void) | null;
  open(): Promise<void>;
  /** Shard k's messages arrive on `port` from now on. */
  attach(shard: number, port: MessagePort): Promise<void>;
  /** Holds shard k's loads while its journal is applied again (on), lets them go (off). */
  gate(shard: number, on: boolean): Promise<void>;
  /** Records for the store from this thread (a dead shard's rescued batch). */
  submit(records: Uint32Array): void;
  /** True once everything the shards posted so far is confirmed by the store, false after timeoutMs. */
  drain(timeoutMs: number): Promise<boolean>;
  /** Journal retirement: after this resolves, barrierPassed() turns true once what came before is stored. */
  startBarrier(): Promise<void>;
  barrierPassed(): Promise<boolean>;
  stats(): Promise<StoreHostStats>;
  readonly degraded: boolean;
  readonly pendingFull: boolean;
  readonly storeFailing: boolean;
  readonly pendingRecords: number;
  /** moves while the store thread works (the HTTP thread's process-wide idle check) */
  readonly activity: number;
  close(): Promise<void>;
}

/** What both links share: the status words and the hooks the service sets. */
export abstract class StatusWords {
  readonly statusBuffer: SharedArrayBuffer;
  private readonly status: Int32Array;
  postedSeqs: () => number[] = () => [];
  onStateChange: (e: StoreStateEvent) => void = () => {};
  onRestart: (() => void) | null = null;

  constructor(shards: number) {
    this.statusBuffer = allocateStoreStatus(shards);
    this.status = new Int32Array(this.statusBuffer);
  }

  get degraded(): boolean {
    return this.status[S_DEGRADED] !== 0;
  }

  get pendingFull(): boolean {
    return this.status[S_PENDING_FULL] !== 0;
  }

  get storeFailing(): boolean {
    return this.status[S_FAILING] !== 0;
  }

  get pendingRecords(): number {
    return this.status[S_PENDING];
  }

  /** A figure that moves while the store thread works (confirmations, its idle collection). */
  get activity(): number {
    return this.status[S_PENDING] + this.status[S_COLLECTIONS];
  }
}
