/** Picks the store the configuration asks for. */
import type { Config } from '../config.js';
import { MemoryStore } from './memory-store.js';
import type { ReadStateStore } from '../../workers/store/store.js';
import { WorkerStore } from './worker-store.js';
import type { FenceBuffers } from '../../workers/cluster-fence.js';

export function createStore(config: Config, fence?: FenceBuffers): ReadStateStore {
  if (config.store === 'memory') return new MemoryStore();
  return new WorkerStore({ kind: config.store, dataDir: config.dataDir, cassandra: config.cassandra, fence });
}
