/**
 * The narrow boundary between the shard engines and durable storage. Records use the shard wire
 * format (workers/protocol.ts):
 * - load() returns RsWord.Size words per stored read state of the user (any order), then the user's
 *   newest tombstones and their horizon as tombstone records (TOMB_PIN_HI, workers/store/tombstones.ts);
 * - apply() takes StoredWord.Size words per mutation: StoredWord.Kind (RecordKind.Write or Delete), the user
 *   id halves, the read state (RsWord.Size words), and a write timestamp in microseconds (StoredWord.TsLo/Hi).
 *
 * Stores are last-write-wins by that timestamp: a write or delete older than what the store holds
 * for the same (user, channel) changes nothing, so batches may be retried and may land out of
 * order. A delete leaves a tombstone (or uses the store's own timestamped delete) so that an
 * older write arriving later cannot resurrect the read state.
 */
import type { ThreadTelemetry } from '../thread-telemetry.js';

export interface ReadStateStore {
  readonly name: string;
  open(): Promise<void>;
  /** Every stored read state of the user and their newest tombstones; empty for an unknown user. */
  load(userLo: number, userHi: number): Promise<Uint32Array>;
  /**
   * Many users in one call (lo, hi pairs), answered packed as load-many.ts describes. Stores that
   * run on another thread have it (one hand-off for all); without it, load() runs per user.
   */
  loadMany?(users: Uint32Array): Promise<Uint32Array>;
  /** Applies `count` records from `records`; resolved once they are durable. */
  apply(records: Uint32Array, count: number): Promise<void>;
  close(): Promise<void>;
  /** Runtime figures of the thread the store runs on, when it has its own (the store worker). */
  telemetry?(resetDelay: boolean): Promise<ThreadTelemetry>;
}
