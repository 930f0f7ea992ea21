/**
 * What the client sends and gets back. Results are typed exactly like the JSON bodies (snake_case,
 * as on the wire); method inputs are camelCase options. Ids are unsigned 64-bit decimal strings.
 */

/** An id: a canonical decimal string ("0" or no leading zero, at most 18446744073709551615), or a bigint. */
export type Id = string | bigint;

export interface ReadState {
  user_id: string;
  channel_id: string;
  /** "0": nothing read */
  last_message_id: string;
  mention_count: number;
  last_pin_timestamp: number;
  flags: number;
  /**
   * changes when, and only when, an operation changes the read state, and then goes up: the
   * timestamp of that change (microseconds, from the shard's clock, below 2^53). Not a counter.
   */
  version: number;
}

/**
 * GET /v1/users/{id}/read-states: everything (`full: true`), or with `since` a delta
 * (`full: false`); with `limit` / `after` one page of either, ordered by channel id.
 */
export interface UserReadStates {
  user_id: string;
  /**
   * the user's version: the timestamp of their latest change, deletes included (0: an unknown
   * user). Pass it as `since` next time to get only what changed; when paging, keep the first
   * page's version.
   */
  version: number;
  /** true: read_states is the whole set (no since, or since too old to answer exactly: replace the local copy); false: a delta */
  full: boolean;
  /** all read states (full), or those changed after `since` (a delta), in this page's channel range */
  read_states: ReadState[];
  /** deltas only: channels whose read state was deleted after `since`, in this page's channel range */
  deleted_channel_ids?: string[];
  /** present when more read states remain: pass it as `after` for the next page */
  next_after?: string;
}

/** GET /v1/users/{id}/summary. */
export interface UserSummary {
  user_id: string;
  /** the user's version, as in UserReadStates (a valid `since`) */
  version: number;
  /** how many read states the user has */
  read_states: number;
  /** sum of mention_count over them */
  mention_total: number;
  /** how many of them have mention_count > 0 */
  channels_with_mentions: number;
}

export interface AckBulkResult {
  read_states: ReadState[];
}

export interface FanOutResult {
  /** read states that changed */
  updated: number;
}

export interface HealthStatus {
  status: string;
}

// --- inputs -----------------------------------------------------------------------------------

export interface AckInput {
  messageId: Id;
  /** 0..2^31-1 (default 0) */
  mentionCount?: number;
  /** set exactly what is given (mark as unread) instead of moving forward only */
  manual?: boolean;
}

export interface MentionInput {
  /** >= 1; no mention is counted unless it is newer than last_message_id */
  messageId?: Id;
  /** 1..1000 (default 1) */
  count?: number;
}

export interface PatchInput {
  /** 0..2^53-1; moves forward only */
  lastPinTimestamp?: number;
  /** 0..2^32-1 */
  flags?: number;
}

export interface AckBulkItem {
  channelId: Id;
  messageId: Id;
}

export interface FanOutInput {
  messageId: Id;
  /** 1..1000 (default 1) */
  count?: number;
}

export interface ReadStatesQuery {
  /** a `version` an earlier answer (list or summary) gave for this user: only what changed after it */
  since?: number;
  /** at most this many read states in the answer (1..10000) */
  limit?: number;
  /** only channels above this id (the previous page's next_after) */
  after?: Id;
}

// --- POST /v1/batch, as on the wire -------------------------------------------------------------

export type BatchOp =
  | { op: 'get'; user_id: string; channel_id: string }
  | { op: 'delete'; user_id: string; channel_id: string }
  | { op: 'ack'; user_id: string; channel_id: string; message_id: string; mention_count?: number; manual?: boolean }
  | { op: 'mention'; user_id: string; channel_id: string; message_id?: string; count?: number }
  | { op: 'patch'; user_id: string; channel_id: string; last_pin_timestamp?: number; flags?: number }
  | { op: 'summary'; user_id: string };

export interface BatchOpResult {
  /** what the single route would have answered: 200, 204, 404, 503, 507 */
  status: number;
  /** 200 of get, ack, mention, patch */
  read_state?: ReadState;
  /** 200 of summary */
  summary?: UserSummary;
  /** a failed op's code */
  error?: string;
  /** a refused op: false = not applied, null = it may have been */
  applied?: false | null;
}

export interface BatchResult {
  results: BatchOpResult[];
}

// --- GET /v1/cluster, as on the wire --------------------------------------------------------------

/** An instance of the cluster, as GET /v1/cluster lists it. */
export interface ClusterMember {
  instance_id: string;
  /** its advertised base URL */
  url: string;
  /** its member lease was renewed recently, as the answering instance sees it */
  alive: boolean;
  /** it is stopping and handing its partitions over */
  leaving: boolean;
}

/** Who holds one partition. */
export interface PartitionOwner {
  /** the owner's instance id; null: nobody holds it right now */
  owner: string | null;
  /** the owner's base URL; null when there is no owner */
  url: string | null;
  /** goes up with every new owner */
  epoch: number;
}

/**
 * GET /v1/cluster. A single instance answers `{cluster: null}` and nothing else; an instance in
 * cluster mode answers every field, `owners[p]` being partition p.
 */
export interface ClusterState {
  /** the cluster's name; null: not in cluster mode */
  cluster: string | null;
  /** the answering instance */
  instance_id?: string;
  partitions?: number;
  lease_ms?: number;
  members?: ClusterMember[];
  owners?: PartitionOwner[];
}
