/**
 * The read-state semantics written the plainest way: a Map of Maps of objects with bigint ids.
 * Tests apply the same operations here and to the service and compare.
 */
export interface ModelState {
  channel_id: bigint;
  last_message_id: bigint;
  mention_count: number;
  last_pin_timestamp: number;
  flags: number;
  version: number;
}

export const MAX_MENTIONS = 0x7fffffff;

export type ModelOp =
  | { op: 'get'; user: bigint; channel: bigint }
  | { op: 'ack'; user: bigint; channel: bigint; message: bigint; mentionCount?: number; manual?: boolean }
  | { op: 'mention'; user: bigint; channel: bigint; message?: bigint; count?: number }
  | { op: 'patch'; user: bigint; channel: bigint; pin?: number; flags?: number }
  | { op: 'delete'; user: bigint; channel: bigint };

export interface ModelResult {
  status: 200 | 204 | 404;
  changed: boolean;
  state?: ModelState;
}

export class ReferenceModel {
  readonly users = new Map<bigint, Map<bigint, ModelState>>();

  all(user: bigint): ModelState[] {
    const m = this.users.get(user);
    if (m === undefined) return [];
    return [...m.values()].sort((a, b) => (a.channel_id < b.channel_id ? -1 : a.channel_id > b.channel_id ? 1 : 0)).map((s) => ({ ...s }));
  }

  apply(o: ModelOp): ModelResult {
    let states = this.users.get(o.user);
    const existing = states?.get(o.channel);
    if (o.op === 'get') return existing ? { status: 200, changed: false, state: { ...existing } } : { status: 404, changed: false };
    if (o.op === 'delete') {
      if (!existing) return { status: 404, changed: false };
      states!.delete(o.channel);
      return { status: 204, changed: true };
    }
    if (states === undefined) {
      states = new Map();
      this.users.set(o.user, states);
    }
    const created = existing === undefined;
    const s: ModelState = existing ?? {
      channel_id: o.channel,
      last_message_id: 0n,
      mention_count: 0,
      last_pin_timestamp: 0,
      flags: 0,
      version: 0,
    };
    let changed = created;
    if (o.op === 'ack') {
      const count = o.mentionCount ?? 0;
      if (o.manual === true) {
        if (s.last_message_id !== o.message || s.mention_count !== count) changed = true;
        s.last_message_id = o.message;
        s.mention_count = count;
      } else if (o.message > s.last_message_id) {
        s.last_message_id = o.message;
        s.mention_count = count;
        changed = true;
      }
    } else if (o.op === 'mention') {
      if (o.message === undefined || o.message > s.last_message_id) {
        const after = Math.min(MAX_MENTIONS, s.mention_count + (o.count ?? 1));
        if (after !== s.mention_count) changed = true;
        s.mention_count = after;
      }
    } else if (o.op === 'patch') {
      if (o.pin !== undefined && o.pin > s.last_pin_timestamp) {
        s.last_pin_timestamp = o.pin;
        changed = true;
      }
      if (o.flags !== undefined && o.flags !== s.flags) {
        s.flags = o.flags;
        changed = true;
      }
    }
    if (changed) s.version++;
    states.set(o.channel, s);
    return { status: 200, changed, state: { ...s } };
  }
}
