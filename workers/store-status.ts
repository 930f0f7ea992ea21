/**
 * The store thread's state as the shards and the main thread read it: one Int32Array on a
 * SharedArrayBuffer, written only by the store host (store-host.ts), read without messages.
 *
 *   [S_DEGRADED]      1: the shards keep changes in their slabs and evict only clean users
 *                     (the store is failing or the pending pool is full)
 *   [S_PENDING_FULL]  1: the pool holds --max-pending-writes records: nothing may add one
 *   [S_FAILING]       1: the last store call failed and the write-behind is retrying
 *   [S_PENDING]       records handed to the store thread and not yet confirmed
 *   [S_COLLECTIONS]   idle collections the store thread ran (the main thread's idle check)
 *   [S_RECEIVED + k]  sequence number of the last message the host took from shard k
 *                     (a shard numbers its messages: shard-memory.ts H_STORE_SEQ)
 */
export const S_DEGRADED = 0;
export const S_PENDING_FULL = 1;
export const S_FAILING = 2;
export const S_PENDING = 3;
export const S_COLLECTIONS = 4;
export const S_RECEIVED = 8;

export function allocateStoreStatus(shards: number): SharedArrayBuffer {
  return new SharedArrayBuffer((S_RECEIVED + shards) * 4);
}

/** True once the host has taken every message shard k had numbered up to `seqs[k]`. */
export function receivedAll(status: Int32Array, seqs: ArrayLike<number>): boolean {
  for (let k = 0; k < seqs.length; k++) if (status[S_RECEIVED + k] - seqs[k] < 0) return false;
  return true;
}
