/**
 * The narrow boundary between the shard engines and durable storage. Records use the shard wire
 * format (workers/protocol.ts): a load returns RS_WORDS words per read state; apply takes
 * STORED_WORDS words per mutation (KIND_WRITE or KIND_DELETE, user id, read state).
 * Mutations of one user reach apply() in the order the shard made them.
 */
export interface ReadStateStore {
  readonly name: string;
  open(): Promise<void>;
  /** Every stored read state of the user (any order); empty for an unknown user. */
  load(userLo: number, userHi: number): Promise<Uint32Array>;
  /** Writes and deletes `count` records from `records`; resolved once they are stored. */
  apply(records: Uint32Array, count: number): Promise<void>;
  close(): Promise<void>;
}
