/**
 * JSON schemas for every route: request validation (no type coercion, no unknown fields) and
 * response serialisation (fastify compiles these into stringifiers).
 */
import { ERRORS } from './errors.js';

export const ID_PATTERN = '^(0|[1-9][0-9]{0,19})$';
const id = { type: 'string', pattern: ID_PATTERN, maxLength: 20 } as const;
export const MAX_I32 = 0x7fffffff;
export const MAX_U32 = 0xffffffff;
export const MAX_PIN = Number.MAX_SAFE_INTEGER;
export const MAX_COUNT = 1000;
export const MAX_BATCH_OPS = 10000;
export const MAX_FANOUT_USERS = 10000;
export const MAX_BULK_ACKS = 1000;
/** largest `limit` of one page of GET /v1/users/{id}/read-states */
export const MAX_PAGE = 10000;
/** `since` is a version: an integer timestamp below 2^53 */
export const SINCE_PATTERN = '^(0|[1-9][0-9]{0,15})$';
export const LIMIT_PATTERN = '^[1-9][0-9]{0,4}$';

const mentionCount = { type: 'integer', minimum: 0, maximum: MAX_I32 } as const;
const count = { type: 'integer', minimum: 1, maximum: MAX_COUNT } as const;
const pin = { type: 'integer', minimum: 0, maximum: MAX_PIN } as const;
const flags = { type: 'integer', minimum: 0, maximum: MAX_U32 } as const;

export const readState = {
  type: 'object',
  required: ['user_id', 'channel_id', 'last_message_id', 'mention_count', 'last_pin_timestamp', 'flags', 'version'],
  properties: {
    user_id: { type: 'string' },
    channel_id: { type: 'string' },
    last_message_id: { type: 'string' },
    mention_count: { type: 'integer' },
    last_pin_timestamp: { type: 'integer' },
    flags: { type: 'integer' },
    version: { type: 'integer' },
  },
} as const;

export const errorBody = {
  type: 'object',
  required: ['error', 'message'],
  properties: {
    error: { type: 'string', enum: Object.keys(ERRORS) },
    message: { type: 'string' },
    applied: {
      type: ['boolean', 'null'],
      description: 'refusals of an operation: false = not applied, safe to retry; null = it may have been applied',
    },
  },
} as const;

const errors = { '4xx': errorBody, '5xx': errorBody } as const;

const userParams = {
  type: 'object',
  required: ['user_id'],
  additionalProperties: false,
  properties: { user_id: id },
} as const;

const readStateParams = {
  type: 'object',
  required: ['user_id', 'channel_id'],
  additionalProperties: false,
  properties: { user_id: id, channel_id: id },
} as const;

export const getAllSchema = {
  params: userParams,
  querystring: {
    type: 'object',
    additionalProperties: false,
    properties: {
      since: {
        type: 'string',
        pattern: SINCE_PATTERN,
        description: 'a `version` this endpoint returned for the user: only what changed after it (a delta)',
      },
      limit: { type: 'string', pattern: LIMIT_PATTERN, description: `at most this many read states (1..${MAX_PAGE}); default: all` },
      after: { ...id, description: 'page cursor: only channels above this id (the previous page\'s `next_after`)' },
    },
  },
  response: {
    200: {
      type: 'object',
      required: ['user_id', 'version', 'full', 'read_states'],
      properties: {
        user_id: { type: 'string' },
        version: { type: 'integer', description: "the user's version: goes up with every change of any of their read states, deletes included" },
        full: { type: 'boolean', description: 'true: read_states is the whole set (no since, or since too old); false: a delta' },
        read_states: { type: 'array', items: readState },
        deleted_channel_ids: {
          type: 'array',
          items: { type: 'string' },
          description: 'deltas only: channels whose read state was deleted after since (in this page\'s channel range)',
        },
        next_after: { type: 'string', description: 'present when more read states remain: the `after` of the next page' },
      },
    },
    ...errors,
  },
} as const;

export const summary = {
  type: 'object',
  required: ['user_id', 'version', 'read_states', 'mention_total', 'channels_with_mentions'],
  properties: {
    user_id: { type: 'string' },
    version: { type: 'integer' },
    read_states: { type: 'integer', description: 'how many read states the user has' },
    mention_total: { type: 'integer', description: 'sum of their mention counts' },
    channels_with_mentions: { type: 'integer', description: 'read states with a mention count above 0' },
  },
} as const;

export const summarySchema = { params: userParams, response: { 200: summary, ...errors } } as const;

export const getOneSchema = { params: readStateParams, response: { 200: readState, ...errors } } as const;

export const ackSchema = {
  params: readStateParams,
  body: {
    type: 'object',
    required: ['message_id'],
    additionalProperties: false,
    properties: { message_id: id, mention_count: mentionCount, manual: { type: 'boolean' } },
  },
  response: { 200: readState, ...errors },
} as const;

export const mentionSchema = {
  params: readStateParams,
  body: {
    type: 'object',
    additionalProperties: false,
    properties: { message_id: id, count },
  },
  response: { 200: readState, ...errors },
} as const;

export const patchSchema = {
  params: readStateParams,
  body: {
    type: 'object',
    additionalProperties: false,
    properties: { last_pin_timestamp: pin, flags },
  },
  response: { 200: readState, ...errors },
} as const;

export const deleteSchema = { params: readStateParams, response: { 204: { type: 'null' }, ...errors } } as const;

export const ackBulkSchema = {
  params: userParams,
  body: {
    type: 'object',
    required: ['read_states'],
    additionalProperties: false,
    properties: {
      read_states: {
        type: 'array',
        minItems: 1,
        maxItems: MAX_BULK_ACKS,
        items: {
          type: 'object',
          required: ['channel_id', 'message_id'],
          additionalProperties: false,
          properties: { channel_id: id, message_id: id },
        },
      },
    },
  },
  response: {
    200: {
      type: 'object',
      required: ['read_states'],
      properties: { read_states: { type: 'array', items: readState } },
    },
    ...errors,
  },
} as const;

export const channelMentionsSchema = {
  params: {
    type: 'object',
    required: ['channel_id'],
    additionalProperties: false,
    properties: { channel_id: id },
  },
  body: {
    type: 'object',
    required: ['message_id', 'user_ids'],
    additionalProperties: false,
    properties: {
      message_id: id,
      user_ids: { type: 'array', minItems: 1, maxItems: MAX_FANOUT_USERS, items: id },
      count,
    },
  },
  response: {
    200: { type: 'object', required: ['updated'], properties: { updated: { type: 'integer' } } },
    ...errors,
  },
} as const;

export const BATCH_OPS = ['get', 'ack', 'mention', 'patch', 'delete', 'summary'] as const;

export const batchSchema = {
  body: {
    type: 'object',
    required: ['ops'],
    additionalProperties: false,
    properties: {
      ops: {
        type: 'array',
        minItems: 1,
        maxItems: MAX_BATCH_OPS,
        items: {
          type: 'object',
          // channel_id: every op but summary (checked by the route, which names the op)
          required: ['op', 'user_id'],
          additionalProperties: false,
          properties: {
            op: { type: 'string', enum: BATCH_OPS },
            user_id: id,
            channel_id: id,
            message_id: id,
            mention_count: mentionCount,
            manual: { type: 'boolean' },
            count,
            last_pin_timestamp: pin,
            flags,
          },
        },
      },
    },
  },
  response: {
    200: {
      type: 'object',
      required: ['results'],
      properties: {
        results: {
          type: 'array',
          items: {
            type: 'object',
            required: ['status'],
            properties: { status: { type: 'integer' }, read_state: readState, summary, error: { type: 'string' }, applied: { type: ['boolean', 'null'] } },
          },
        },
      },
    },
    ...errors,
  },
} as const;

export const healthSchema = {
  response: {
    200: { type: 'object', required: ['status'], properties: { status: { type: 'string' } } },
    ...errors,
  },
} as const;

export const clusterSchema = {
  response: {
    200: {
      type: 'object',
      required: ['cluster'],
      properties: {
        cluster: { type: ['string', 'null'] },
        instance_id: { type: 'string' },
        partitions: { type: 'integer' },
        lease_ms: { type: 'integer' },
        members: {
          type: 'array',
          items: {
            type: 'object',
            required: ['instance_id', 'url', 'alive', 'leaving'],
            properties: { instance_id: { type: 'string' }, url: { type: 'string' }, alive: { type: 'boolean' }, leaving: { type: 'boolean' } },
          },
        },
        owners: {
          type: 'array',
          description: 'owners[p] is partition p: p = fmix32-based hash of the user id (see README, Running several instances)',
          items: {
            type: 'object',
            required: ['owner', 'url', 'epoch'],
            properties: { owner: { type: ['string', 'null'] }, url: { type: ['string', 'null'] }, epoch: { type: 'integer' } },
          },
        },
      },
    },
    ...errors,
  },
} as const;
