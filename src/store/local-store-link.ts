/**
 * A store host on the main thread around a store object the caller made (tests wrap stores to
 * inject failures and stalls). Same host, same ports and status words as in the store worker;
 * only the thread differs.
 */
import type { MessagePort } from 'node:worker_threads';
import { StoreHost, type StoreHostOptions, type StoreHostStats } from '../../workers/store-host.js';
import type { ReadStateStore } from '../../workers/store/store.js';
import { StatusWords, type StoreLink } from './store-link.js';

export class LocalStoreLink extends StatusWords implements StoreLink {
  readonly name: string;
  readonly host: StoreHost;

  constructor(readonly store: ReadStateStore, shards: number, o: StoreHostOptions = {}) {
    super(shards);
    this.name = store.name;
    this.host = new StoreHost(store, this.statusBuffer, shards, o);
    this.host.onStateChange = (e) => this.onStateChange(e);
  }

  open(): Promise<void> {
    return this.store.open();
  }

  async attach(shard: number, port: MessagePort): Promise<void> {
    this.host.attach(shard, port);
  }

  async gate(shard: number, on: boolean): Promise<void> {
    this.host.gate(shard, on);
  }

  submit(records: Uint32Array): void {
    this.host.submit(records);
  }

  drain(timeoutMs: number): Promise<boolean> {
    return this.host.drain(this.postedSeqs(), timeoutMs);
  }

  startBarrier(): Promise<void> {
    return this.host.startBarrier(this.postedSeqs());
  }

  async barrierPassed(): Promise<boolean> {
    return this.host.barrierPassed;
  }

  async stats(): Promise<StoreHostStats> {
    return this.host.stats();
  }

  async close(): Promise<void> {
    this.host.close();
    await this.store.close();
  }
}
