/**
 * The shapes of the service's 2xx bodies at run time: for each response type of types.ts, its
 * fields with their JSON types and whether they are always there. The client checks every answer
 * against them (an answer that does not conform is BAD_RESPONSE), and a test compares them with the
 * service's route schemas, so that the client's types cannot drift from what the server answers.
 * The compiler ties each shape to its interface: the same field names, required exactly when the
 * interface's field is not optional.
 */
import type {
  AckBulkResult,
  BatchOpResult,
  BatchResult,
  ClusterMember,
  ClusterState,
  FanOutResult,
  HealthStatus,
  PartitionOwner,
  ReadState,
  UserReadStates,
  UserSummary,
} from './types.js';

export type JsonType = 'string' | 'integer' | 'boolean' | 'null' | 'array' | 'object';

export type FieldShape =
  | { readonly type: 'string' | 'integer' | 'boolean' | readonly ('string' | 'integer' | 'boolean' | 'null')[]; readonly required: boolean }
  | { readonly type: 'array'; readonly required: boolean; readonly items: 'string' | ObjectShape }
  | { readonly type: 'object'; readonly required: boolean; readonly shape: ObjectShape };

export interface ObjectShape {
  readonly [field: string]: FieldShape;
}

/** A shape of T: every field of T, `required` true exactly when the field is not optional. */
type ShapeOf<T> = { readonly [K in keyof T]-?: FieldShape & { readonly required: object extends Pick<T, K> ? false : true } };

const str = { type: 'string', required: true } as const;
const int = { type: 'integer', required: true } as const;

export const READ_STATE_SHAPE = {
  user_id: str,
  channel_id: str,
  last_message_id: str,
  mention_count: int,
  last_pin_timestamp: int,
  flags: int,
  version: int,
} as const satisfies ShapeOf<ReadState>;

export const USER_READ_STATES_SHAPE = {
  user_id: str,
  version: int,
  full: { type: 'boolean', required: true },
  read_states: { type: 'array', required: true, items: READ_STATE_SHAPE },
  deleted_channel_ids: { type: 'array', required: false, items: 'string' },
  next_after: { type: 'string', required: false },
} as const satisfies ShapeOf<UserReadStates>;

export const USER_SUMMARY_SHAPE = {
  user_id: str,
  version: int,
  read_states: int,
  mention_total: int,
  channels_with_mentions: int,
} as const satisfies ShapeOf<UserSummary>;

export const ACK_BULK_RESULT_SHAPE = {
  read_states: { type: 'array', required: true, items: READ_STATE_SHAPE },
} as const satisfies ShapeOf<AckBulkResult>;

export const FAN_OUT_RESULT_SHAPE = { updated: int } as const satisfies ShapeOf<FanOutResult>;

export const BATCH_OP_RESULT_SHAPE = {
  status: int,
  read_state: { type: 'object', required: false, shape: READ_STATE_SHAPE },
  summary: { type: 'object', required: false, shape: USER_SUMMARY_SHAPE },
  error: { type: 'string', required: false },
  applied: { type: ['boolean', 'null'], required: false },
} as const satisfies ShapeOf<BatchOpResult>;

export const BATCH_RESULT_SHAPE = {
  results: { type: 'array', required: true, items: BATCH_OP_RESULT_SHAPE },
} as const satisfies ShapeOf<BatchResult>;

export const HEALTH_STATUS_SHAPE = { status: str } as const satisfies ShapeOf<HealthStatus>;

export const CLUSTER_MEMBER_SHAPE = {
  instance_id: str,
  url: str,
  alive: { type: 'boolean', required: true },
  leaving: { type: 'boolean', required: true },
} as const satisfies ShapeOf<ClusterMember>;

const strOrNull = { type: ['string', 'null'], required: true } as const;

export const PARTITION_OWNER_SHAPE = { owner: strOrNull, url: strOrNull, epoch: int } as const satisfies ShapeOf<PartitionOwner>;

/** Only `cluster` is always there: a single instance answers `{cluster: null}` alone. */
export const CLUSTER_STATE_SHAPE = {
  cluster: strOrNull,
  instance_id: { type: 'string', required: false },
  partitions: { type: 'integer', required: false },
  lease_ms: { type: 'integer', required: false },
  members: { type: 'array', required: false, items: CLUSTER_MEMBER_SHAPE },
  owners: { type: 'array', required: false, items: PARTITION_OWNER_SHAPE },
} as const satisfies ShapeOf<ClusterState>;

/** The shape of every 2xx JSON body, by the client's type name. */
export const RESPONSE_SHAPES = {
  ReadState: READ_STATE_SHAPE,
  UserReadStates: USER_READ_STATES_SHAPE,
  UserSummary: USER_SUMMARY_SHAPE,
  AckBulkResult: ACK_BULK_RESULT_SHAPE,
  FanOutResult: FAN_OUT_RESULT_SHAPE,
  BatchResult: BATCH_RESULT_SHAPE,
  HealthStatus: HEALTH_STATUS_SHAPE,
  ClusterState: CLUSTER_STATE_SHAPE,
} as const satisfies Record<string, ObjectShape>;

function isRecord(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

function scalarIs(v: unknown, t: 'string' | 'integer' | 'boolean' | 'null'): boolean {
  switch (t) {
    case 'string':
      return typeof v === 'string';
    case 'integer':
      return Number.isSafeInteger(v);
    case 'boolean':
      return typeof v === 'boolean';
    case 'null':
      return v === null;
  }
}

/**
 * Where `value` departs from `shape` ("read_states[3].version: not integer"), or null when it
 * conforms. Fields the shape does not name are let through (a newer server may add some).
 */
export function mismatch(value: unknown, shape: ObjectShape, at = ''): string | null {
  if (!isRecord(value)) return `${at || 'body'}: not an object`;
  for (const [name, f] of Object.entries(shape)) {
    const path = at === '' ? name : `${at}.${name}`;
    const v = value[name];
    if (v === undefined) {
      if (f.required) return `${path}: missing`;
      continue;
    }
    if (f.type === 'array') {
      if (!Array.isArray(v)) return `${path}: not an array`;
      for (let i = 0; i < v.length; i++) {
        const why = f.items === 'string' ? (typeof v[i] === 'string' ? null : `${path}[${i}]: not a string`) : mismatch(v[i], f.items, `${path}[${i}]`);
        if (why !== null) return why;
      }
    } else if (f.type === 'object') {
      const why = mismatch(v, f.shape, path);
      if (why !== null) return why;
    } else {
      const types = typeof f.type === 'string' ? [f.type] : f.type;
      if (!types.some((t) => scalarIs(v, t))) return `${path}: not ${types.join(' or ')}`;
    }
  }
  return null;
}
