/** Picks the store the configuration asks for. */
import type { Config } from '../config.js';
import type { StoreHostOptions } from '../../workers/store-host.js';
import type { FenceBuffers } from '../../workers/cluster-fence.js';
import type { ReadStateStore } from '../../workers/store/store.js';
import { MemoryStore } from '../../workers/store/memory-store.js';
import { WorkerStore } from './worker-store.js';

/** The service's store: on its own thread, with the write-behind in front of it. */
export function createStoreLink(config: Config, fence: FenceBuffers | undefined, o: StoreHostOptions): WorkerStore {
  return new WorkerStore({ kind: config.store, dataDir: config.dataDir, cassandra: config.cassandra, fence }, config.shards, o);
}

/**
 * The bare store for a caller that runs its own write-behind (the object-based twin in bench/):
 * the memory store in this thread's heap, a durable one behind its worker.
 */
export function createStore(config: Config): ReadStateStore {
  if (config.store === 'memory') return new MemoryStore();
  return new WorkerStore({ kind: config.store, dataDir: config.dataDir, cassandra: config.cassandra });
}
