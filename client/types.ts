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
  /** bumped when, and only when, an operation changes the read state */
  version: number;
}

/**
 * GET /v1/users/{id}/read-states. The sync fields (version, full, deleted_channel_ids,
 * next_after) are present when the server supports `since` / `limit` / `after`.
 */
export interface UserReadStates {
  user_id: string;
  read_states: ReadState[];
  /** the user's version: pass it as `since` next time to get only what changed */
  version?: number;
  /** false: a delta since `since` (read_states changed since, deleted_channel_ids deleted since) */
  full?: boolean;
  deleted_channel_ids?: string[];
  /** present when `limit` cut the list: pass it as `after` for the next page */
  next_after?: string;
}

/** GET /v1/users/{id}/summary. */
export interface UserSummary {
  user_id: string;
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
  /** a version from an earlier answer: only what changed since then */
  since?: number;
  /** at most this many read states in the answer */
  limit?: number;
  /** channel id to continue after (an earlier answer's next_after) */
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
  read_state?: ReadState;
  summary?: UserSummary;
  error?: string;
  applied?: false | null;
}

export interface BatchResult {
  results: BatchOpResult[];
}
