/**
 * Drives a ShardEngine in-process and synchronously, exactly the way the shard worker
 * (workers/shard-worker.ts) and the main thread's lane (src/shard-lane.ts) do:
 *
 *   task  = [TASK_HEADER_WORDS][ops][load section]   -> installLoads first, then applyOps, then
 *           the write-behind flush the task flags (or flushDelayMs 0) ask for
 *   reply = [REPLY_HEADER_WORDS][results][load requests][mutations]
 *   main  : mutations go to the store first, then results are delivered, then every load request
 *           is answered from the store and queued as a load section for the next task.
 *
 * The store is synchronous and applies mutations in the order the shard made them (their write
 * timestamps are checked to increase), so the main thread's write-behind overlay is not needed.
 *
 * `step()` is one round trip (loads answered by the previous step ride along with the new ops,
 * as in the lane); `drain()` sends load-only tasks until no load is outstanding; `run()` is both.
 * The test API speaks bigint ids; the wire speaks (lo, hi) uint32 halves.
 */
import { ShardEngine, type EngineOptions } from '../../workers/engine.js';
import {
  F_HAS_FLAGS,
  F_HAS_MSG,
  F_HAS_PIN,
  F_MANUAL,
  F_NO_BODY,
  KIND_DELETE,
  KIND_WRITE,
  LOAD_FAILED,
  LOAD_OK,
  OP_ACK,
  OP_DELETE,
  OP_GET,
  OP_GET_ALL,
  OP_MENTION,
  OP_PATCH,
  OP_WORDS,
  O_CHAN_HI,
  O_CHAN_LO,
  O_COUNT,
  O_FLAGS,
  O_HEAD,
  O_MSG_HI,
  O_MSG_LO,
  O_PIN_HI,
  O_PIN_LO,
  O_TICKET,
  O_USER_HI,
  O_USER_LO,
  REPLY_DIRTY,
  REPLY_FAILED,
  REPLY_HEADER_WORDS,
  REPLY_LOAD_WORDS,
  REPLY_MUTATION_WORDS,
  REPLY_RESULT_WORDS,
  RES_CHANGED,
  RES_COUNT,
  M_RS_COUNT,
  RES_HEADER_WORDS,
  RES_STATUS,
  RES_TICKET,
  RS_WORDS,
  R_CHAN_HI,
  R_CHAN_LO,
  R_FLAGS,
  R_MENTION,
  R_MSG_HI,
  R_MSG_LO,
  R_PIN_HI,
  R_PIN_LO,
  R_VER_HI,
  R_VER_LO,
  STORED_WORDS,
  S_KIND,
  S_RS,
  S_TS_HI,
  S_TS_LO,
  S_USER_HI,
  S_USER_LO,
  TASK_FLAGS,
  TASK_HEADER_WORDS,
  TASK_LOAD_WORDS,
  TASK_OP_COUNT,
  TF_FLUSH_ALL,
  TF_FLUSH_DUE,
  TF_STORE_DEGRADED,
  hi32,
  join53,
  lo32,
  ST_OK,
} from '../../workers/protocol.js';
import {
  H_DIRTY,
  H_LRU_HEAD,
  H_LRU_TAIL,
  H_MUTATING,
  H_RS_COUNT,
  H_RS_FREE,
  H_RS_HWM,
  H_USER_COUNT,
  H_USER_FREE,
  H_USER_HWM,
  NIL,
  RS_DIRTY,
  USER_FREE,
  USER_LOADING,
  USER_RESIDENT,
  allocateShardBuffers,
  attachShardMemory,
  type ShardMemory,
} from '../../workers/shard-memory.js';
import { chanFind, userFind } from '../../workers/hash-index.js';

// ---- ids ------------------------------------------------------------------------------------

export const U64_MAX = (1n << 64n) - 1n;

export function idLo(id: bigint): number {
  return Number(id & 0xffffffffn);
}
export function idHi(id: bigint): number {
  return Number((id >> 32n) & 0xffffffffn);
}
export function joinId(lo: number, hi: number): bigint {
  return (BigInt(hi >>> 0) << 32n) | BigInt(lo >>> 0);
}
function checkId(id: bigint, what: string): void {
  if (id < 0n || id > U64_MAX) throw new RangeError(`${what} out of u64 range: ${id}`);
}

// ---- ops ------------------------------------------------------------------------------------

export type Op =
  | { kind: 'get'; user: bigint; channel: bigint }
  | { kind: 'getAll'; user: bigint }
  | { kind: 'ack'; user: bigint; channel: bigint; messageId: bigint; mentionCount: number; manual: boolean }
  | { kind: 'mention'; user: bigint; channel: bigint; messageId?: bigint; count: number; noBody: boolean }
  | { kind: 'patch'; user: bigint; channel: bigint; lastPinTimestamp?: number; flags?: number }
  | { kind: 'delete'; user: bigint; channel: bigint };

export const get = (user: bigint, channel: bigint): Op => ({ kind: 'get', user, channel });
export const getAll = (user: bigint): Op => ({ kind: 'getAll', user });
export const ack = (
  user: bigint,
  channel: bigint,
  messageId: bigint,
  opts: { mentionCount?: number; manual?: boolean } = {},
): Op => ({ kind: 'ack', user, channel, messageId, mentionCount: opts.mentionCount ?? 0, manual: opts.manual ?? false });
export const mention = (
  user: bigint,
  channel: bigint,
  opts: { messageId?: bigint; count?: number; noBody?: boolean } = {},
): Op => ({ kind: 'mention', user, channel, messageId: opts.messageId, count: opts.count ?? 1, noBody: opts.noBody ?? false });
export const patch = (user: bigint, channel: bigint, opts: { lastPinTimestamp?: number; flags?: number }): Op => ({
  kind: 'patch',
  user,
  channel,
  lastPinTimestamp: opts.lastPinTimestamp,
  flags: opts.flags,
});
export const del = (user: bigint, channel: bigint): Op => ({ kind: 'delete', user, channel });

/** Writes one op at `buf[at..at + OP_WORDS)` exactly like the router does (zeroed, then filled). */
export function encodeOp(op: Op, ticket: number, buf: Uint32Array, at: number): void {
  buf.fill(0, at, at + OP_WORDS);
  checkId(op.user, 'user');
  buf[at + O_TICKET] = ticket;
  buf[at + O_USER_LO] = idLo(op.user);
  buf[at + O_USER_HI] = idHi(op.user);
  if (op.kind !== 'getAll') {
    checkId(op.channel, 'channel');
    buf[at + O_CHAN_LO] = idLo(op.channel);
    buf[at + O_CHAN_HI] = idHi(op.channel);
  }
  let head: number;
  switch (op.kind) {
    case 'get':
      head = OP_GET;
      break;
    case 'getAll':
      head = OP_GET_ALL;
      break;
    case 'delete':
      head = OP_DELETE;
      break;
    case 'ack':
      checkId(op.messageId, 'message id');
      head = OP_ACK | F_HAS_MSG | (op.manual ? F_MANUAL : 0);
      buf[at + O_MSG_LO] = idLo(op.messageId);
      buf[at + O_MSG_HI] = idHi(op.messageId);
      buf[at + O_COUNT] = op.mentionCount;
      break;
    case 'mention':
      head = OP_MENTION | (op.noBody ? F_NO_BODY : 0);
      if (op.messageId !== undefined) {
        checkId(op.messageId, 'message id');
        head |= F_HAS_MSG;
        buf[at + O_MSG_LO] = idLo(op.messageId);
        buf[at + O_MSG_HI] = idHi(op.messageId);
      }
      buf[at + O_COUNT] = op.count;
      break;
    case 'patch':
      head = OP_PATCH;
      if (op.lastPinTimestamp !== undefined) {
        head |= F_HAS_PIN;
        buf[at + O_PIN_LO] = lo32(op.lastPinTimestamp);
        buf[at + O_PIN_HI] = hi32(op.lastPinTimestamp);
      }
      if (op.flags !== undefined) {
        head |= F_HAS_FLAGS;
        buf[at + O_FLAGS] = op.flags >>> 0;
      }
      break;
  }
  buf[at + O_HEAD] = head;
}

// ---- read states ----------------------------------------------------------------------------

export interface ReadState {
  channelId: bigint;
  lastMessageId: bigint;
  mentionCount: number;
  lastPinTimestamp: number;
  flags: number;
  version: number;
}

export function decodeRs(b: Uint32Array, at: number): ReadState {
  return {
    channelId: joinId(b[at + R_CHAN_LO], b[at + R_CHAN_HI]),
    lastMessageId: joinId(b[at + R_MSG_LO], b[at + R_MSG_HI]),
    mentionCount: b[at + R_MENTION],
    lastPinTimestamp: join53(b[at + R_PIN_LO], b[at + R_PIN_HI]),
    flags: b[at + R_FLAGS],
    version: join53(b[at + R_VER_LO], b[at + R_VER_HI]),
  };
}

export function encodeRs(rs: ReadState, b: Uint32Array, at: number): void {
  b[at + R_CHAN_LO] = idLo(rs.channelId);
  b[at + R_CHAN_HI] = idHi(rs.channelId);
  b[at + R_MSG_LO] = idLo(rs.lastMessageId);
  b[at + R_MSG_HI] = idHi(rs.lastMessageId);
  b[at + R_MENTION] = rs.mentionCount;
  b[at + R_PIN_LO] = lo32(rs.lastPinTimestamp);
  b[at + R_PIN_HI] = hi32(rs.lastPinTimestamp);
  b[at + R_FLAGS] = rs.flags;
  b[at + R_VER_LO] = lo32(rs.version);
  b[at + R_VER_HI] = hi32(rs.version);
}

export interface OpResult {
  ticket: number;
  status: number;
  changed: boolean;
  states: ReadState[];
  /** flags of the task whose reply carried this result (a parked op answers in a later task) */
  taskFlags: number;
}

// ---- a synchronous store --------------------------------------------------------------------

/**
 * The same semantics as src/store/memory-store.ts (a map of users to a map of channels, writes
 * replace, deletes remove, a load returns every stored read state of the user in any order), but
 * synchronous so the harness can answer loads inline.
 */
export class SyncStore {
  readonly users = new Map<bigint, Map<bigint, Uint32Array>>();
  writes = 0;
  deletes = 0;
  loads = 0;
  /** Write timestamps must strictly increase per shard (the store orders writes by them). */
  private lastTs = -1;

  load(user: bigint): Uint32Array {
    this.loads++;
    const states = this.users.get(user);
    if (states === undefined) return new Uint32Array(0);
    const out = new Uint32Array(states.size * RS_WORDS);
    let at = 0;
    for (const rs of states.values()) {
      out.set(rs, at);
      at += RS_WORDS;
    }
    return out;
  }

  apply(records: Uint32Array, count: number): void {
    for (let i = 0; i < count; i++) {
      const r = i * STORED_WORDS;
      const user = joinId(records[r + S_USER_LO], records[r + S_USER_HI]);
      const chan = joinId(records[r + S_RS + R_CHAN_LO], records[r + S_RS + R_CHAN_HI]);
      const kind = records[r + S_KIND];
      const ts = join53(records[r + S_TS_LO], records[r + S_TS_HI]);
      if (!(ts > this.lastTs)) throw new Error(`mutation timestamp ${ts} not after ${this.lastTs}`);
      this.lastTs = ts;
      let states = this.users.get(user);
      if (kind === KIND_DELETE) {
        this.deletes++;
        if (states !== undefined) {
          states.delete(chan);
          if (states.size === 0) this.users.delete(user);
        }
        continue;
      }
      if (kind !== KIND_WRITE) throw new Error(`unknown mutation kind ${kind}`);
      this.writes++;
      if (states === undefined) {
        states = new Map();
        this.users.set(user, states);
      }
      states.set(chan, records.slice(r + S_RS, r + S_RS + RS_WORDS));
    }
  }

  /** Seeds the store directly (as if an earlier process had written it). */
  put(user: bigint, rs: ReadState): void {
    let states = this.users.get(user);
    if (states === undefined) {
      states = new Map();
      this.users.set(user, states);
    }
    const b = new Uint32Array(RS_WORDS);
    encodeRs(rs, b, 0);
    states.set(rs.channelId, b);
  }

  /** Stored read states of a user, decoded and ordered by channel id. */
  statesOf(user: bigint): ReadState[] {
    const states = this.users.get(user);
    if (states === undefined) return [];
    return [...states.values()].map((b) => decodeRs(b, 0)).sort(byChannel);
  }
}

export function byChannel(a: ReadState, b: ReadState): number {
  return a.channelId < b.channelId ? -1 : a.channelId > b.channelId ? 1 : 0;
}

// ---- the harness ----------------------------------------------------------------------------

export interface HarnessOptions {
  capacity: number;
  maxUsers: number;
  /** ShardEngine options; the default is the engine's (flushDelayMs 0: write-behind after every batch). */
  engine?: EngineOptions;
  /** Called with each user id before its load is answered: return false to answer LOAD_FAILED. */
  loadOk?: (user: bigint) => boolean;
}

export class EngineHarness {
  readonly m: ShardMemory;
  readonly engine: ShardEngine;
  readonly store = new SyncStore();
  /** Results delivered and not yet taken, by ticket. */
  readonly results = new Map<number, OpResult>();
  private readonly loadOk: (user: bigint) => boolean;
  /** Load sections answered by the store, going out with the next task: [lo, hi, status, n, records]. */
  private pendingLoads: number[] = [];
  private nextTicket = 1;
  /** Tickets sent and not answered. */
  readonly outstanding = new Set<number>();
  /** tickets of getAll ops: their answer starts with a meta record (protocol.ts M_*) */
  private readonly getAllTickets = new Set<number>();
  /** Tickets in the order their results arrived (cleared by the caller when it likes). */
  readonly delivered: number[] = [];
  tasks = 0;
  loadRequests = 0;

  constructor(o: HarnessOptions) {
    this.m = attachShardMemory(allocateShardBuffers(o.capacity, o.maxUsers));
    this.engine = o.engine === undefined ? new ShardEngine(this.m) : new ShardEngine(this.m, o.engine);
    this.loadOk = o.loadOk ?? (() => true);
  }

  /** Loads answered by the store that have not been sent to the engine yet. */
  get loadsPending(): boolean {
    return this.pendingLoads.length > 0;
  }

  /**
   * One round trip: a task with `ops` (and any loads answered since the last task) goes to the
   * engine; its reply is handled like ShardLane.onReply. Returns the tickets given to `ops`.
   */
  step(ops: readonly Op[], flags = 0): number[] {
    const tickets: number[] = [];
    const loads = this.pendingLoads;
    this.pendingLoads = [];
    const task = new Uint32Array(TASK_HEADER_WORDS + ops.length * OP_WORDS + loads.length);
    task[TASK_OP_COUNT] = ops.length;
    task[TASK_LOAD_WORDS] = loads.length;
    task[TASK_FLAGS] = flags;
    for (let i = 0; i < ops.length; i++) {
      const t = this.nextTicket;
      this.nextTicket = (this.nextTicket + 1) >>> 0 || 1;
      if (this.outstanding.has(t) || this.results.has(t)) throw new Error(`ticket ${t} still in use`);
      tickets.push(t);
      this.outstanding.add(t);
      if (ops[i].kind === 'getAll') this.getAllTickets.add(t);
      encodeOp(ops[i], t, task, TASK_HEADER_WORDS + i * OP_WORDS);
    }
    task.set(loads, TASK_HEADER_WORDS + ops.length * OP_WORDS);
    this.handleReply(this.runBatch(task), flags);
    return tickets;
  }

  /** Sends load-only tasks until no load is outstanding. */
  drain(flags = 0): void {
    let rounds = 0;
    while (this.pendingLoads.length > 0) {
      if (++rounds > 1000) throw new Error('loads never settle');
      this.step([], flags);
    }
  }

  /** Applies `ops` as one batch, settles every load, and returns their results in op order. */
  run(ops: readonly Op[]): OpResult[] {
    const tickets = this.step(ops);
    this.drain();
    return tickets.map((t) => this.take(t));
  }

  /** One op on its own. */
  one(op: Op): OpResult {
    return this.run([op])[0];
  }

  /** The result for a ticket; throws if it has not arrived. */
  take(ticket: number): OpResult {
    const r = this.results.get(ticket);
    if (r === undefined) throw new Error(`no result for ticket ${ticket}`);
    this.results.delete(ticket);
    return r;
  }

  /** Evicts every resident user (as memory pressure would) and applies the resulting writes. */
  evictAll(): void {
    for (;;) {
      const head = this.m.header[H_LRU_HEAD];
      if (head === 0) break;
      this.engine.evict(head - 1);
    }
    this.handleReply(this.buildReply(this.m.header[H_DIRTY]), 0);
  }

  /** workers/shard-worker.ts runBatch, minus piscina. */
  private runBatch(task: Uint32Array): Uint32Array {
    this.tasks++;
    const e = this.engine;
    const opCount = task[TASK_OP_COUNT];
    const loadWords = task[TASK_LOAD_WORDS];
    const loadsAt = TASK_HEADER_WORDS + opCount * OP_WORDS;
    const flags = task[TASK_FLAGS];
    e.degraded = (flags & TF_STORE_DEGRADED) !== 0;
    this.m.header[H_MUTATING] = 1;
    if (loadWords > 0) e.installLoads(task, loadsAt, loadsAt + loadWords);
    e.applyOps(task, TASK_HEADER_WORDS, opCount);
    let dirty = this.m.header[H_DIRTY];
    if (!e.degraded && dirty > 0) {
      if ((flags & TF_FLUSH_ALL) !== 0) dirty = e.flushAll();
      else if ((flags & TF_FLUSH_DUE) !== 0 || e.flushDelayMs === 0) dirty = e.flushDue();
    }
    this.m.header[H_MUTATING] = 0;
    return this.buildReply(dirty);
  }

  private buildReply(dirty: number): Uint32Array {
    const e = this.engine;
    const r = e.results;
    const l = e.loadRequests;
    const mu = e.mutations;
    const reply = new Uint32Array(REPLY_HEADER_WORDS + r.len + l.len + mu.len);
    reply[REPLY_RESULT_WORDS] = r.len;
    reply[REPLY_LOAD_WORDS] = l.len;
    reply[REPLY_MUTATION_WORDS] = mu.len;
    reply[REPLY_DIRTY] = dirty;
    reply[REPLY_FAILED] = 0;
    let at = REPLY_HEADER_WORDS;
    reply.set(r.buf.subarray(0, r.len), at);
    at += r.len;
    reply.set(l.buf.subarray(0, l.len), at);
    at += l.len;
    reply.set(mu.buf.subarray(0, mu.len), at);
    e.resetOutput();
    return reply;
  }

  /** src/shard-lane.ts onReply: mutations first, then results, then load requests. */
  private handleReply(reply: Uint32Array, taskFlags: number): void {
    const resultWords = reply[REPLY_RESULT_WORDS];
    const loadWords = reply[REPLY_LOAD_WORDS];
    const mutationWords = reply[REPLY_MUTATION_WORDS];
    if (REPLY_HEADER_WORDS + resultWords + loadWords + mutationWords !== reply.length) {
      throw new Error('reply header does not add up');
    }
    if (reply[REPLY_FAILED] !== 0) throw new Error('batch failed');
    if (reply[REPLY_DIRTY] !== this.m.header[H_DIRTY]) {
      throw new Error(`reply says ${reply[REPLY_DIRTY]} dirty, the shard has ${this.m.header[H_DIRTY]}`);
    }
    if (mutationWords % STORED_WORDS !== 0 || loadWords % 2 !== 0) throw new Error('ragged reply section');
    const loadsAt = REPLY_HEADER_WORDS + resultWords;
    const mutationsAt = loadsAt + loadWords;
    if (mutationWords > 0) {
      this.store.apply(reply.subarray(mutationsAt, mutationsAt + mutationWords), mutationWords / STORED_WORDS);
    }
    let at = REPLY_HEADER_WORDS;
    while (at < loadsAt) {
      const ticket = reply[at + RES_TICKET];
      const n = reply[at + RES_COUNT];
      const states: ReadState[] = [];
      // a getAll answer: the meta record, then M_RS_COUNT read states (no deletes without since)
      const all = this.getAllTickets.delete(ticket) && reply[at + RES_STATUS] === ST_OK;
      const first = all ? 1 : 0;
      const count = all ? reply[at + RES_HEADER_WORDS + M_RS_COUNT] : n;
      for (let i = 0; i < count; i++) states.push(decodeRs(reply, at + RES_HEADER_WORDS + (first + i) * RS_WORDS));
      if (!this.outstanding.delete(ticket)) throw new Error(`result for unknown or answered ticket ${ticket}`);
      this.results.set(ticket, {
        ticket,
        status: reply[at + RES_STATUS],
        changed: reply[at + RES_CHANGED] !== 0,
        states,
        taskFlags,
      });
      this.delivered.push(ticket);
      at += RES_HEADER_WORDS + n * RS_WORDS;
    }
    if (at !== loadsAt) throw new Error('result records overrun the result section');
    for (let i = loadsAt; i < mutationsAt; i += 2) {
      this.loadRequests++;
      const lo = reply[i];
      const hi = reply[i + 1];
      const user = joinId(lo, hi);
      if (this.loadOk(user)) {
        const records = this.store.load(user);
        this.pendingLoads.push(lo, hi, LOAD_OK, records.length / RS_WORDS);
        for (let k = 0; k < records.length; k++) this.pendingLoads.push(records[k]);
      } else {
        this.pendingLoads.push(lo, hi, LOAD_FAILED, 0);
      }
    }
  }
}

// ---- memory invariants ----------------------------------------------------------------------

/**
 * Walks the whole shard memory and throws on any inconsistency: header counters, free lists,
 * the LRU (both directions), the user and channel indexes, per-user read-state lists, dirty bits.
 * O(capacity + maxUsers + table sizes): meant for tiny shards.
 */
export function verifyMemory(m: ShardMemory, engine?: ShardEngine): void {
  const h = m.header;
  const fail = (msg: string): never => {
    throw new Error(`shard memory: ${msg}`);
  };
  if (h[H_MUTATING] !== 0) fail('left marked as mid-batch');
  // Read-state slots: free list + live (owned) slots partition [0, hwm).
  const rsHwm = h[H_RS_HWM];
  if (rsHwm < 0 || rsHwm > m.capacity) fail(`rs hwm ${rsHwm}`);
  const rsFree = new Set<number>();
  for (let f = h[H_RS_FREE]; f !== 0; ) {
    const s = f - 1;
    if (s >= rsHwm) fail(`free rs slot ${s} beyond hwm ${rsHwm}`);
    if (rsFree.has(s)) fail(`rs free list cycles at ${s}`);
    rsFree.add(s);
    const next = m.rsNext[s];
    f = next === NIL ? 0 : next + 1;
  }
  if (rsHwm - rsFree.size !== h[H_RS_COUNT]) fail(`rs count ${h[H_RS_COUNT]} vs hwm ${rsHwm} - free ${rsFree.size}`);
  // User slots.
  const uHwm = h[H_USER_HWM];
  if (uHwm < 0 || uHwm > m.maxUsers) fail(`user hwm ${uHwm}`);
  const uFree = new Set<number>();
  for (let f = h[H_USER_FREE]; f !== 0; ) {
    const u = f - 1;
    if (u >= uHwm) fail(`free user slot ${u} beyond hwm`);
    if (uFree.has(u)) fail(`user free list cycles at ${u}`);
    if (m.userState[u] !== USER_FREE) fail(`free user slot ${u} has state ${m.userState[u]}`);
    uFree.add(u);
    const next = m.userNext[u];
    f = next === NIL ? 0 : next + 1;
  }
  if (uHwm - uFree.size !== h[H_USER_COUNT]) fail(`user count ${h[H_USER_COUNT]} vs hwm - free`);
  // Users: state, index, read-state lists.
  const owned = new Set<number>();
  let dirty = 0;
  const resident: number[] = [];
  let usersInIndex = 0;
  for (let u = 0; u < uHwm; u++) {
    if (uFree.has(u)) continue;
    const st = m.userState[u];
    if (st !== USER_RESIDENT && st !== USER_LOADING) fail(`live user slot ${u} has state ${st}`);
    if (st === USER_RESIDENT) resident.push(u);
    usersInIndex++;
    if (userFind(m, m.userLo[u], m.userHi[u]) !== u) fail(`user slot ${u} not found in the user index`);
    let n = 0;
    let userDirty = 0;
    for (let s = m.userHead[u]; s !== NIL; s = m.rsNext[s]) {
      if (s >= rsHwm || rsFree.has(s)) fail(`user ${u} lists a dead rs slot ${s}`);
      if (owned.has(s)) fail(`rs slot ${s} listed twice`);
      owned.add(s);
      if (m.rsOwner[s] !== u) fail(`rs slot ${s} owner ${m.rsOwner[s]} but listed by ${u}`);
      if (chanFind(m, u, m.rsChanLo[s], m.rsChanHi[s]) !== s) fail(`rs slot ${s} not found in the channel index`);
      if (!(m.rsVersion[s] >= 1)) fail(`rs slot ${s} has version ${m.rsVersion[s]}`);
      if (m.rsMention[s] > 0x7fffffff) fail(`rs slot ${s} mention ${m.rsMention[s]} above 2^31-1`);
      if ((m.rsState[s] & RS_DIRTY) !== 0) {
        dirty++;
        userDirty++;
      }
      n++;
      if (n > m.capacity) fail(`user ${u} read-state list does not end`);
    }
    if (n !== m.userCount[u]) fail(`user ${u} count ${m.userCount[u]} but lists ${n}`);
    if (userDirty !== m.userDirty[u]) fail(`user ${u} dirty count ${m.userDirty[u]} but ${userDirty} dirty read states`);
    if (st === USER_LOADING && n !== 0) fail(`loading user ${u} already holds read states`);
  }
  // Every loading user has a load outstanding (ops parked behind it), and nobody else does.
  if (engine !== undefined) {
    let loadingUsers = 0;
    for (let u = 0; u < uHwm; u++) if (!uFree.has(u) && m.userState[u] === USER_LOADING) loadingUsers++;
    if (loadingUsers !== engine.loading) fail(`${loadingUsers} users loading but ${engine.loading} loads outstanding`);
  }
  if (owned.size !== h[H_RS_COUNT]) fail(`${owned.size} owned rs slots vs count ${h[H_RS_COUNT]}`);
  if (dirty !== h[H_DIRTY]) fail(`dirty counter ${h[H_DIRTY]} vs ${dirty} dirty slots`);
  // Indexes hold exactly the live entries.
  let userBuckets = 0;
  for (let i = 0; i < m.userIndex.length; i++) {
    const b = m.userIndex[i];
    if (b === 0) continue;
    userBuckets++;
    if (uFree.has(b - 1) || b - 1 >= uHwm) fail(`user index bucket ${i} points at free slot ${b - 1}`);
  }
  if (userBuckets !== usersInIndex) fail(`user index has ${userBuckets} entries for ${usersInIndex} users`);
  let chanBuckets = 0;
  for (let i = 0; i < m.chanIndex.length; i++) {
    const b = m.chanIndex[i];
    if (b === 0) continue;
    chanBuckets++;
    if (!owned.has(b - 1)) fail(`channel index bucket ${i} points at unowned slot ${b - 1}`);
  }
  if (chanBuckets !== owned.size) fail(`channel index has ${chanBuckets} entries for ${owned.size} read states`);
  // LRU: exactly the resident users, consistent in both directions.
  const forward: number[] = [];
  let prev = NIL;
  for (let f = h[H_LRU_HEAD]; f !== 0; ) {
    const u = f - 1;
    if (forward.length > m.maxUsers) fail('LRU does not end');
    if (m.userPrev[u] !== prev) fail(`LRU prev of ${u} is ${m.userPrev[u]}, expected ${prev}`);
    forward.push(u);
    prev = u;
    const next = m.userNext[u];
    f = next === NIL ? 0 : next + 1;
  }
  if ((forward.length === 0 ? 0 : forward[forward.length - 1] + 1) !== h[H_LRU_TAIL]) fail('LRU tail mismatch');
  const inLru = new Set(forward);
  if (inLru.size !== forward.length) fail('LRU lists a user twice');
  if (inLru.size !== resident.length || resident.some((u) => !inLru.has(u))) {
    fail(`LRU holds ${[...inLru]} but residents are ${resident}`);
  }
}
