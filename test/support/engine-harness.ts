/**
 * Drives a ShardEngine in-process and synchronously, exactly the way the shard worker
 * (workers/shard-worker.ts) and the main thread's lane (src/shard-lane.ts) do:
 *
 *   task  = [TaskWord.HeaderSize][ops][load section]   -> installLoads first, then applyOps, then
 *           the write-behind flush the task flags (or flushDelayMs 0) ask for
 *   reply = [HarnessReply.HeaderSize][results][load requests][mutations]
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
import { ListMetaWord, LoadStatus, OpFlag, OpWord, Opcode, RecordKind, ResultStatus, ResultWord, RsWord, StoredWord, TaskFlag, TaskWord, hi32, join53, lo32 } from '../../workers/protocol.js';
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
  rsDirty,
  rsLive,
  rsOwnerOf,
  USER_FREE,
  USER_LOADING,
  USER_RESIDENT,
  allocateShardBuffers,
  attachShardMemory,
  type ShardMemory,
} from '../../workers/shard-memory.js';
import { chanBucketSlot, chanFind, userFind } from '../../workers/hash-index.js';

/**
 * The harness's own reply (the worker's, with its store messages inline instead of on a port):
 * results, then load requests, then store records.
 */
const enum HarnessReply {
  ResultWords = 0,
  LoadWords = 1,
  MutationWords = 2,
  Dirty = 3,
  Failed = 4,
  HeaderSize = 5,
}

/**
 * The harness's tasks carry the loaded users after the ops (the worker gets them on its store
 * port): their length goes in the header word a STATS_TASK uses for its flags.
 */
const HARNESS_LOAD_WORDS = TaskWord.Stats;

/** A harness task flag: run it as the shard would while the store host says degraded. */
export const DEGRADED_TASK = 1 << 16;

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

/** Writes one op at `buf[at..at + OpWord.Size)` exactly like the router does (zeroed, then filled). */
export function encodeOp(op: Op, ticket: number, buf: Uint32Array, at: number): void {
  buf.fill(0, at, at + OpWord.Size);
  checkId(op.user, 'user');
  buf[at + OpWord.Ticket] = ticket;
  buf[at + OpWord.UserLo] = idLo(op.user);
  buf[at + OpWord.UserHi] = idHi(op.user);
  if (op.kind !== 'getAll') {
    checkId(op.channel, 'channel');
    buf[at + OpWord.ChanLo] = idLo(op.channel);
    buf[at + OpWord.ChanHi] = idHi(op.channel);
  }
  let head: number;
  switch (op.kind) {
    case 'get':
      head = Opcode.Get;
      break;
    case 'getAll':
      head = Opcode.GetAll;
      break;
    case 'delete':
      head = Opcode.Delete;
      break;
    case 'ack':
      checkId(op.messageId, 'message id');
      head = Opcode.Ack | OpFlag.HasMsg | (op.manual ? OpFlag.Manual : 0);
      buf[at + OpWord.MsgLo] = idLo(op.messageId);
      buf[at + OpWord.MsgHi] = idHi(op.messageId);
      buf[at + OpWord.Count] = op.mentionCount;
      break;
    case 'mention':
      head = Opcode.Mention | (op.noBody ? OpFlag.NoBody : 0);
      if (op.messageId !== undefined) {
        checkId(op.messageId, 'message id');
        head |= OpFlag.HasMsg;
        buf[at + OpWord.MsgLo] = idLo(op.messageId);
        buf[at + OpWord.MsgHi] = idHi(op.messageId);
      }
      buf[at + OpWord.Count] = op.count;
      break;
    case 'patch':
      head = Opcode.Patch;
      if (op.lastPinTimestamp !== undefined) {
        head |= OpFlag.HasPin;
        buf[at + OpWord.PinLo] = lo32(op.lastPinTimestamp);
        buf[at + OpWord.PinHi] = hi32(op.lastPinTimestamp);
      }
      if (op.flags !== undefined) {
        head |= OpFlag.HasFlags;
        buf[at + OpWord.Flags] = op.flags >>> 0;
      }
      break;
  }
  buf[at + OpWord.Head] = head;
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
    channelId: joinId(b[at + RsWord.ChanLo], b[at + RsWord.ChanHi]),
    lastMessageId: joinId(b[at + RsWord.MsgLo], b[at + RsWord.MsgHi]),
    mentionCount: b[at + RsWord.Mention],
    lastPinTimestamp: join53(b[at + RsWord.PinLo], b[at + RsWord.PinHi]),
    flags: b[at + RsWord.Flags],
    version: join53(b[at + RsWord.VerLo], b[at + RsWord.VerHi]),
  };
}

export function encodeRs(rs: ReadState, b: Uint32Array, at: number): void {
  b[at + RsWord.ChanLo] = idLo(rs.channelId);
  b[at + RsWord.ChanHi] = idHi(rs.channelId);
  b[at + RsWord.MsgLo] = idLo(rs.lastMessageId);
  b[at + RsWord.MsgHi] = idHi(rs.lastMessageId);
  b[at + RsWord.Mention] = rs.mentionCount;
  b[at + RsWord.PinLo] = lo32(rs.lastPinTimestamp);
  b[at + RsWord.PinHi] = hi32(rs.lastPinTimestamp);
  b[at + RsWord.Flags] = rs.flags;
  b[at + RsWord.VerLo] = lo32(rs.version);
  b[at + RsWord.VerHi] = hi32(rs.version);
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
    const out = new Uint32Array(states.size * RsWord.Size);
    let at = 0;
    for (const rs of states.values()) {
      out.set(rs, at);
      at += RsWord.Size;
    }
    return out;
  }

  apply(records: Uint32Array, count: number): void {
    for (let i = 0; i < count; i++) {
      const r = i * StoredWord.Size;
      const user = joinId(records[r + StoredWord.UserLo], records[r + StoredWord.UserHi]);
      const chan = joinId(records[r + StoredWord.Rs + RsWord.ChanLo], records[r + StoredWord.Rs + RsWord.ChanHi]);
      const kind = records[r + StoredWord.Kind];
      const ts = join53(records[r + StoredWord.TsLo], records[r + StoredWord.TsHi]);
      if (!(ts > this.lastTs)) throw new Error(`mutation timestamp ${ts} not after ${this.lastTs}`);
      this.lastTs = ts;
      let states = this.users.get(user);
      if (kind === RecordKind.Delete) {
        this.deletes++;
        if (states !== undefined) {
          states.delete(chan);
          if (states.size === 0) this.users.delete(user);
        }
        continue;
      }
      if (kind !== RecordKind.Write) throw new Error(`unknown mutation kind ${kind}`);
      this.writes++;
      if (states === undefined) {
        states = new Map();
        this.users.set(user, states);
      }
      states.set(chan, records.slice(r + StoredWord.Rs, r + StoredWord.Rs + RsWord.Size));
    }
  }

  /** Seeds the store directly (as if an earlier process had written it). */
  put(user: bigint, rs: ReadState): void {
    let states = this.users.get(user);
    if (states === undefined) {
      states = new Map();
      this.users.set(user, states);
    }
    const b = new Uint32Array(RsWord.Size);
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
  /** Called with each user id before its load is answered: return false to answer LoadStatus.Failed. */
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
    const task = new Uint32Array(TaskWord.HeaderSize + ops.length * OpWord.Size + loads.length);
    task[TaskWord.OpCount] = ops.length;
    task[HARNESS_LOAD_WORDS] = loads.length;
    task[TaskWord.Flags] = flags;
    for (let i = 0; i < ops.length; i++) {
      const t = this.nextTicket;
      this.nextTicket = (this.nextTicket + 1) >>> 0 || 1;
      if (this.outstanding.has(t) || this.results.has(t)) throw new Error(`ticket ${t} still in use`);
      tickets.push(t);
      this.outstanding.add(t);
      if (ops[i].kind === 'getAll') this.getAllTickets.add(t);
      encodeOp(ops[i], t, task, TaskWord.HeaderSize + i * OpWord.Size);
    }
    task.set(loads, TaskWord.HeaderSize + ops.length * OpWord.Size);
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
    const opCount = task[TaskWord.OpCount];
    const loadWords = task[HARNESS_LOAD_WORDS];
    const loadsAt = TaskWord.HeaderSize + opCount * OpWord.Size;
    const flags = task[TaskWord.Flags];
    e.degraded = (flags & DEGRADED_TASK) !== 0;
    this.m.header[H_MUTATING] = 1;
    if (loadWords > 0) e.installLoads(task, loadsAt, loadsAt + loadWords);
    e.applyOps(task, TaskWord.HeaderSize, opCount);
    let dirty = this.m.header[H_DIRTY];
    if (!e.degraded && dirty > 0) {
      if ((flags & TaskFlag.FlushAll) !== 0) dirty = e.flushAll();
      else if ((flags & TaskFlag.FlushDue) !== 0 || e.flushDelayMs === 0) dirty = e.flushDue();
    }
    this.m.header[H_MUTATING] = 0;
    return this.buildReply(dirty);
  }

  private buildReply(dirty: number): Uint32Array {
    const e = this.engine;
    const r = e.results;
    const l = e.loadRequests;
    const mu = e.mutations;
    const reply = new Uint32Array(HarnessReply.HeaderSize + r.len + l.len + mu.len);
    reply[HarnessReply.ResultWords] = r.len;
    reply[HarnessReply.LoadWords] = l.len;
    reply[HarnessReply.MutationWords] = mu.len;
    reply[HarnessReply.Dirty] = dirty;
    reply[HarnessReply.Failed] = 0;
    let at = HarnessReply.HeaderSize;
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
    const resultWords = reply[HarnessReply.ResultWords];
    const loadWords = reply[HarnessReply.LoadWords];
    const mutationWords = reply[HarnessReply.MutationWords];
    if (HarnessReply.HeaderSize + resultWords + loadWords + mutationWords !== reply.length) {
      throw new Error('reply header does not add up');
    }
    if (reply[HarnessReply.Failed] !== 0) throw new Error('batch failed');
    if (reply[HarnessReply.Dirty] !== this.m.header[H_DIRTY]) {
      throw new Error(`reply says ${reply[HarnessReply.Dirty]} dirty, the shard has ${this.m.header[H_DIRTY]}`);
    }
    if (mutationWords % StoredWord.Size !== 0 || loadWords % 2 !== 0) throw new Error('ragged reply section');
    const loadsAt = HarnessReply.HeaderSize + resultWords;
    const mutationsAt = loadsAt + loadWords;
    if (mutationWords > 0) {
      this.store.apply(reply.subarray(mutationsAt, mutationsAt + mutationWords), mutationWords / StoredWord.Size);
    }
    let at = HarnessReply.HeaderSize;
    while (at < loadsAt) {
      const ticket = reply[at + ResultWord.Ticket];
      const n = reply[at + ResultWord.Count];
      const states: ReadState[] = [];
      // a getAll answer: the meta record, then ListMetaWord.RsCount read states (no deletes without since)
      const all = this.getAllTickets.delete(ticket) && reply[at + ResultWord.Status] === ResultStatus.Ok;
      const first = all ? 1 : 0;
      const count = all ? reply[at + ResultWord.HeaderSize + ListMetaWord.RsCount] : n;
      for (let i = 0; i < count; i++) states.push(decodeRs(reply, at + ResultWord.HeaderSize + (first + i) * RsWord.Size));
      if (!this.outstanding.delete(ticket)) throw new Error(`result for unknown or answered ticket ${ticket}`);
      this.results.set(ticket, {
        ticket,
        status: reply[at + ResultWord.Status],
        changed: reply[at + ResultWord.Changed] !== 0,
        states,
        taskFlags,
      });
      this.delivered.push(ticket);
      at += ResultWord.HeaderSize + n * RsWord.Size;
    }
    if (at !== loadsAt) throw new Error('result records overrun the result section');
    for (let i = loadsAt; i < mutationsAt; i += 2) {
      this.loadRequests++;
      const lo = reply[i];
      const hi = reply[i + 1];
      const user = joinId(lo, hi);
      if (this.loadOk(user)) {
        const records = this.store.load(user);
        this.pendingLoads.push(lo, hi, LoadStatus.Ok, records.length / RsWord.Size);
        for (let k = 0; k < records.length; k++) this.pendingLoads.push(records[k]);
      } else {
        this.pendingLoads.push(lo, hi, LoadStatus.Failed, 0);
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
    if (m.rsOwner[s] !== 0) fail(`free rs slot ${s} has owner word ${m.rsOwner[s]}`);
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
      if (!rsLive(m, s) || rsOwnerOf(m, s) !== u) fail(`rs slot ${s} owner word ${m.rsOwner[s]} but listed by ${u}`);
      if (chanFind(m, u, m.rsChanLo[s], m.rsChanHi[s]) !== s) fail(`rs slot ${s} not found in the channel index`);
      if (!(m.rsVersion[s] >= 1)) fail(`rs slot ${s} has version ${m.rsVersion[s]}`);
      if (m.rsMention[s] > 0x7fffffff) fail(`rs slot ${s} mention ${m.rsMention[s]} above 2^31-1`);
      if (rsDirty(m, s)) {
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
    const s = chanBucketSlot(m, b);
    if (!owned.has(s)) fail(`channel index bucket ${i} points at unowned slot ${s}`);
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
