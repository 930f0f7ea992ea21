/**
 * Model-based randomized test of the shard engine: every operation goes both to a ShardEngine
 * (through the in-process worker/main-thread harness, with a backing store) and to a plain
 * reference model (a Map of Maps implementing the read-state semantics); every result and,
 * periodically, every user's full state must agree. The shards are tiny so that users are
 * evicted and reloaded all the time; the PRNG is seeded so every run is the same run.
 */
import { describe, expect, it } from 'vitest';
import {
  EngineHarness,
  U64_MAX,
  ack,
  byChannel,
  del,
  get,
  getAll,
  idHi,
  idLo,
  mention,
  patch,
  verifyMemory,
  type Op,
  type OpResult,
  type ReadState,
  DEGRADED_TASK,
} from '../support/engine-harness.js';
import { userFind } from '../../workers/hash-index.js';
import { H_DIRTY, H_RS_COUNT, H_USER_COUNT, NIL } from '../../workers/shard-memory.js';
import { ResultStatus, TaskFlag } from '../../workers/protocol.js';

const MAX_MENTIONS = 0x7fffffff;
const MAX_PIN = 2 ** 53 - 1;

// ---- reference model ------------------------------------------------------------------------

interface Expected {
  status: number;
  changed: boolean;
  states: ReadState[];
}

class Model {
  readonly users = new Map<bigint, Map<bigint, ReadState>>();
  rejected = 0;

  constructor(readonly capacity: number) {}

  statesOf(user: bigint): ReadState[] {
    const m = this.users.get(user);
    return m === undefined ? [] : [...m.values()].map((rs) => ({ ...rs })).sort(byChannel);
  }

  find(user: bigint, channel: bigint): ReadState | undefined {
    return this.users.get(user)?.get(channel);
  }

  apply(op: Op): Expected {
    switch (op.kind) {
      case 'get': {
        const rs = this.find(op.user, op.channel);
        return rs === undefined
          ? { status: ResultStatus.NotFound, changed: false, states: [] }
          : { status: ResultStatus.Ok, changed: false, states: [{ ...rs }] };
      }
      case 'getAll':
        return { status: ResultStatus.Ok, changed: false, states: this.statesOf(op.user) };
      case 'delete': {
        const m = this.users.get(op.user);
        if (m === undefined || !m.delete(op.channel)) return { status: ResultStatus.NotFound, changed: false, states: [] };
        if (m.size === 0) this.users.delete(op.user);
        return { status: ResultStatus.NoContent, changed: true, states: [] };
      }
      default:
        return this.write(op);
    }
  }

  /** ack, mention, patch: create if absent (507 if the user already fills the shard). */
  private write(op: Op & { channel: bigint }): Expected {
    let m = this.users.get(op.user);
    let rs = m?.get(op.channel);
    let changed = false;
    if (rs === undefined) {
      if ((m?.size ?? 0) >= this.capacity) {
        this.rejected++;
        return { status: ResultStatus.InsufficientStorage, changed: false, states: [] };
      }
      rs = { channelId: op.channel, lastMessageId: 0n, mentionCount: 0, lastPinTimestamp: 0, flags: 0, version: 0 };
      if (m === undefined) {
        m = new Map();
        this.users.set(op.user, m);
      }
      m.set(op.channel, rs);
      changed = true;
    }
    let body = true;
    switch (op.kind) {
      case 'ack':
        if (op.manual) {
          if (rs.lastMessageId !== op.messageId || rs.mentionCount !== op.mentionCount) {
            rs.lastMessageId = op.messageId;
            rs.mentionCount = op.mentionCount;
            changed = true;
          }
        } else if (op.messageId > rs.lastMessageId) {
          rs.lastMessageId = op.messageId;
          rs.mentionCount = op.mentionCount;
          changed = true;
        }
        break;
      case 'mention': {
        body = !op.noBody;
        if (op.messageId === undefined || op.messageId > rs.lastMessageId) {
          const after = Math.min(MAX_MENTIONS, rs.mentionCount + op.count);
          if (after !== rs.mentionCount) {
            rs.mentionCount = after;
            changed = true;
          }
        }
        break;
      }
      case 'patch':
        if (op.lastPinTimestamp !== undefined && op.lastPinTimestamp > rs.lastPinTimestamp) {
          rs.lastPinTimestamp = op.lastPinTimestamp;
          changed = true;
        }
        if (op.flags !== undefined && op.flags !== rs.flags) {
          rs.flags = op.flags;
          changed = true;
        }
        break;
      default:
        throw new Error(`not a write: ${op.kind}`);
    }
    if (changed) rs.version++;
    return { status: ResultStatus.Ok, changed, states: body ? [{ ...rs }] : [] };
  }
}

// ---- seeded randomness ----------------------------------------------------------------------

/** xoshiro128**: small, fast, and the same sequence on every run for a seed. */
class Rng {
  private a: number;
  private b: number;
  private c: number;
  private d: number;

  constructor(seed: number) {
    let s = seed >>> 0;
    const sm = (): number => {
      s = (s + 0x9e3779b9) >>> 0;
      let z = s;
      z = Math.imul(z ^ (z >>> 16), 0x85ebca6b);
      z = Math.imul(z ^ (z >>> 13), 0xc2b2ae35);
      return (z ^ (z >>> 16)) >>> 0;
    };
    this.a = sm();
    this.b = sm();
    this.c = sm();
    this.d = sm() | 1;
  }

  u32(): number {
    const r = Math.imul(rotl(Math.imul(this.b, 5), 7), 9) >>> 0;
    const t = this.b << 9;
    this.c ^= this.a;
    this.d ^= this.b;
    this.b ^= this.c;
    this.a ^= this.d;
    this.c ^= t;
    this.d = rotl(this.d, 11);
    return r;
  }

  /** Uniform integer in [0, n). */
  int(n: number): number {
    return Math.floor((this.u32() / 4294967296) * n);
  }

  chance(p: number): boolean {
    return this.u32() / 4294967296 < p;
  }

  pick<T>(a: readonly T[]): T {
    return a[this.int(a.length)];
  }

  u64(): bigint {
    return (BigInt(this.u32()) << 32n) | BigInt(this.u32());
  }

  /** Uniform integer in [0, 2^53). */
  u53(): number {
    return (this.u32() & 0x1fffff) * 4294967296 + this.u32();
  }
}

function rotl(x: number, k: number): number {
  return (x << k) | (x >>> (32 - k));
}

// ---- values near the interesting boundaries -------------------------------------------------

const TWO32 = 1n << 32n;
const EDGE_IDS: bigint[] = [
  1n,
  2n,
  0xfffffffen,
  0xffffffffn,
  TWO32,
  TWO32 + 1n,
  2n * TWO32 - 1n,
  2n * TWO32,
  (1n << 63n) - 1n,
  1n << 63n,
  0xffffffff00000000n,
  0xffffffff00000001n,
  U64_MAX - 1n,
  U64_MAX,
];

function clampU64(x: bigint): bigint {
  return x < 0n ? 0n : x > U64_MAX ? U64_MAX : x;
}

/** Distinct non-zero ids: the boundary ids first, then ids sharing low halves, then random. */
function idPool(rng: Rng, n: number): bigint[] {
  const out = new Set<bigint>();
  const candidates = [...EDGE_IDS];
  // Same low half, different high halves (and the reverse): stresses hash mixing and the sort.
  for (const hi of [0n, 1n, 7n, 0xffffffffn]) candidates.push((hi << 32n) | 5n, (5n << 32n) | hi);
  for (let i = 0; out.size < n; i++) {
    const id = i < candidates.length && rng.chance(0.7) ? candidates[i] : rng.u64();
    if (id !== 0n) out.add(id);
  }
  return [...out];
}

function messageId(rng: Rng, last: bigint): bigint {
  const r = rng.int(10);
  if (r < 4) {
    // Relative to what the user has read: behind, equal, just ahead, across a 2^32 boundary.
    const lo = last & 0xffffffffn;
    const hi = last >> 32n;
    const rel = [
      last - 1n,
      last,
      last + 1n,
      last + TWO32,
      last - TWO32,
      (hi << 32n) | (lo ^ 0xffffffffn),
      ((hi + 1n) << 32n) | 0n,
      ((hi - 1n) << 32n) | 0xffffffffn,
      (hi << 32n) | 0xffffffffn,
    ];
    return clampU64(rng.pick(rel));
  }
  if (r < 7) return rng.pick([0n, ...EDGE_IDS]);
  if (r < 9) return BigInt(rng.u32()); // hi = 0
  return rng.u64();
}

function pinValue(rng: Rng, cur: number): number {
  const r = rng.int(8);
  if (r < 3) return Math.max(0, Math.min(MAX_PIN, cur + rng.pick([-1, 0, 1, 4294967296])));
  if (r < 6) return rng.pick([0, 1, 0xffffffff, 4294967296, 4294967297, MAX_PIN - 1, MAX_PIN]);
  return rng.u53();
}

function flagsValue(rng: Rng, cur: number): number {
  const r = rng.int(6);
  if (r === 0) return cur;
  if (r < 4) return rng.pick([0, 1, 2, 0x80000000, 0xffffffff]);
  return rng.u32();
}

// ---- the run --------------------------------------------------------------------------------

/**
 * How dirty read states reach the store:
 * - eager: flushDelayMs 0, every batch hands its changes to the store (the engine's default);
 * - evict: a flush delay that never comes, so changes leave only when their user is evicted;
 * - timer: a short delay on a fake clock, flush ticks on some batches, at most 3 read states per
 *   flush, and stretches where the store is degraded (no flushing, only clean users may be
 *   evicted, and what needs room gets ResultStatus.StoreBacklog instead).
 */
type Mode = 'eager' | 'evict' | 'timer';

interface Config {
  name: string;
  seed: number;
  capacity: number;
  maxUsers: number;
  users: number;
  channels: number;
  ops: number;
  maxBatch: number;
  mode: Mode;
  /** Percent of ops that are deletes (12 unless given): fewer deletes grow users towards capacity. */
  deletePercent?: number;
  /**
   * Chance that a batch may bring more distinct users than there are user slots (misses then wait
   * for a slot to free up). 0 keeps every batch within maxUsers users.
   */
  overfill: number;
  /** Minimums the run must reach, so that it cannot quietly stop exercising a path. */
  min: { evictions: number; loads: number; rejected: number; parked: number; heapSorted: number; backlog: number };
}

/**
 * The engine's versions are write timestamps: the model counts (version + 1 per change) and,
 * after each answer, takes the engine's version over (adoptVersions). So a change must give at
 * least the model's count (above the version before it), anything else exactly the model's.
 */
function sameRs(a: ReadState, b: ReadState, changed: boolean): boolean {
  return (
    a.channelId === b.channelId &&
    a.lastMessageId === b.lastMessageId &&
    a.mentionCount === b.mentionCount &&
    a.lastPinTimestamp === b.lastPinTimestamp &&
    a.flags === b.flags &&
    (Number.isNaN(b.version) ? a.version > 0 : changed ? a.version >= b.version : a.version === b.version)
  );
}

function sameResult(a: OpResult, e: Expected): boolean {
  if (a.status !== e.status || a.changed !== e.changed || a.states.length !== e.states.length) return false;
  for (let i = 0; i < e.states.length; i++) if (!sameRs(a.states[i], e.states[i], e.changed)) return false;
  return true;
}

/**
 * After a matching answer: the model keeps the engine's versions of the read states it shows. A
 * change answered without a body leaves the version unknown (NaN) until the next answer shows it.
 */
function adoptVersions(model: Model, op: Op, a: OpResult, e: Expected): void {
  if (op.kind !== 'getAll' && op.kind !== 'delete' && e.changed && a.states.length === 0) {
    const rs = model.find(op.user, op.channel);
    if (rs !== undefined) rs.version = NaN;
  }
  for (const st of a.states) {
    const rs = model.find(op.user, st.channelId);
    if (rs !== undefined) rs.version = st.version;
  }
}

const describeOp = (op: Op): string =>
  JSON.stringify(op, (_k, v: unknown) => (typeof v === 'bigint' ? v.toString() : v));

function runModel(cfg: Config): void {
  const rng = new Rng(cfg.seed);
  let clock = 1_000_000;
  const now = (): number => clock;
  const engine =
    cfg.mode === 'eager'
      ? undefined
      : cfg.mode === 'evict'
        ? { flushDelayMs: 1e15, now }
        : { flushDelayMs: 20, flushBatchMax: 3, now };
  const h = new EngineHarness({ capacity: cfg.capacity, maxUsers: cfg.maxUsers, engine });
  const model = new Model(cfg.capacity);
  const users = idPool(rng, cfg.users);
  const channels = idPool(rng, cfg.channels);
  // A few hot users make hits (and LRU order) matter; the rest come and go.
  const hot = users.slice(0, Math.max(1, Math.floor(cfg.users / 4)));
  /** Submitted ops by ticket; the model applies them in the order their results arrive. */
  const pending = new Map<number, { op: Op; seq: number }>();
  /** Per user, the last op whose result arrived: a user's ops must complete in arrival order. */
  const lastSeq = new Map<bigint, number>();
  const history: string[] = [];
  let seq = 0;
  let parked = 0;
  let parkedBehindSameUser = 0;
  let heapSorted = 0;
  let okWrites = 0;
  let backlog = 0;
  let overfull = 0;
  let degradedSteps = 0;
  let degradedLeft = 0;

  /** Takes every result that has arrived, in arrival order, and checks it against the model. */
  const consume = (): void => {
    for (const ticket of h.delivered) {
      const actual = h.take(ticket);
      const p = pending.get(ticket);
      if (p === undefined) throw new Error(`result for ticket ${ticket} that nobody submitted`);
      pending.delete(ticket);
      const prev = lastSeq.get(p.op.user) ?? -1;
      if (p.seq < prev) {
        const recent = history.slice(-60).join('\n');
        throw new Error(`op #${p.seq} of user ${p.op.user} completed after op #${prev}; recent:\n${recent}`);
      }
      lastSeq.set(p.op.user, p.seq);
      if (actual.status === ResultStatus.StoreBacklog) {
        // Refused for lack of room the store could take: allowed only while the store is degraded.
        expect(actual.taskFlags & DEGRADED_TASK, `op #${p.seq} got a backlog refusal outside a degraded task`).not.toBe(0);
        expect(actual.changed).toBe(false);
        backlog++;
        history.push(`#${p.seq} ${describeOp(p.op)} -> backlog`);
        continue;
      }
      const e = model.apply(p.op);
      history.push(`#${p.seq} ${describeOp(p.op)} -> ${e.status}`);
      if (history.length > 400) history.splice(0, 200);
      if (!sameResult(actual, e)) {
        const recent = history.filter((l) => l.includes(`"user":"${p.op.user}"`)).slice(-30).join('\n');
        expect(
          { op: describeOp(p.op), seq: p.seq, status: actual.status, changed: actual.changed, states: actual.states },
          `config ${cfg.name}; recent ops of this user:\n${recent}`,
        ).toEqual({ op: describeOp(p.op), seq: p.seq, status: e.status, changed: e.changed, states: e.states });
      }
      adoptVersions(model, p.op, actual, e);
      if (actual.changed) changedInStep++;
      if (p.op.kind === 'getAll' && actual.states.length > 24) heapSorted++;
      if (e.status === ResultStatus.Ok && p.op.kind !== 'get' && p.op.kind !== 'getAll') okWrites++;
    }
    h.delivered.length = 0;
    expect(h.results.size, 'results nobody took').toBe(0);
  };

  const randomOp = (user: bigint): Op => {
    const own = model.users.get(user);
    const ownChannels = own === undefined ? [] : [...own.keys()];
    const chan = (pExisting: number): bigint =>
      ownChannels.length > 0 && rng.chance(pExisting) ? rng.pick(ownChannels) : rng.pick(channels);
    const dp = cfg.deletePercent ?? 12;
    // Deletes take their share from the front of the range; the other kinds keep their proportions.
    const r0 = rng.int(100);
    if (r0 < dp) return del(user, chan(0.75));
    const r = Math.floor(((r0 - dp) * 88) / (100 - dp));
    if (r < 26) {
      const c = chan(0.6);
      const last = model.find(user, c)?.lastMessageId ?? 0n;
      const k = rng.int(10);
      const mentionCount = k < 6 ? rng.int(4) : k < 8 ? MAX_MENTIONS - rng.int(1500) : k < 9 ? MAX_MENTIONS : rng.int(1001);
      return ack(user, c, messageId(rng, last), { mentionCount, manual: rng.chance(0.25) });
    }
    if (r < 46) {
      const c = chan(0.6);
      const last = model.find(user, c)?.lastMessageId ?? 0n;
      const count = rng.chance(0.7) ? 1 + rng.int(1000) : rng.pick([1, 999, 1000]);
      return mention(user, c, {
        messageId: rng.chance(0.6) ? messageId(rng, last) : undefined,
        count,
        noBody: rng.chance(0.1),
      });
    }
    if (r < 60) {
      const c = chan(0.6);
      const rs = model.find(user, c);
      const which = rng.int(3);
      return patch(user, c, {
        lastPinTimestamp: which !== 1 ? pinValue(rng, rs?.lastPinTimestamp ?? 0) : undefined,
        flags: which !== 0 ? flagsValue(rng, rs?.flags ?? 0) : undefined,
      });
    }
    if (r < 76) return get(user, chan(0.7));
    return getAll(user);
  };

  /** Flags for the next task; advances the fake clock. */
  const nextFlags = (): number => {
    if (cfg.mode !== 'timer') return 0;
    clock += rng.int(6);
    if (degradedLeft > 0) {
      degradedLeft--;
      degradedSteps++;
      return DEGRADED_TASK;
    }
    if (rng.chance(0.01)) {
      degradedLeft = 5 + rng.int(30);
      return DEGRADED_TASK;
    }
    if (rng.chance(0.005)) return TaskFlag.FlushAll;
    return rng.chance(0.3) ? TaskFlag.FlushDue : 0;
  };

  let writesBefore = 0;
  let degradedWrites = 0;
  let changedInStep = 0;
  const afterStep = (flags: number): void => {
    changedInStep = 0;
    consume();
    verifyMemory(h.m, h.engine);
    if (cfg.mode === 'eager') expect(h.m.header[H_DIRTY], 'eager mode leaves nothing dirty').toBe(0);
    if (cfg.mode === 'evict') expect(h.engine.counters.flushed, 'only evictions write').toBe(h.store.writes);
    // A degraded store gets no flushes, and only users with nothing unflushed are evicted. The one
    // write that can still happen: a change that finds the dirty ring full forces its oldest entry
    // out (workers/engine.ts setDirty), so at most one write per change.
    if ((flags & DEGRADED_TASK) !== 0) {
      const w = h.store.writes - writesBefore;
      expect(w, 'writes while degraded').toBeLessThanOrEqual(changedInStep);
      degradedWrites += w;
    }
    writesBefore = h.store.writes;
  };

  const submit = (ops: Op[], settle: boolean, flags: number): void => {
    const tickets = h.step(ops, flags);
    tickets.forEach((t, i) => {
      history.push(`#${seq} submitted ${describeOp(ops[i])}`);
      pending.set(t, { op: ops[i], seq: seq++ });
    });
    // Ops not answered by their own task wait for a load (or for a user slot).
    const perUser = new Map<bigint, number>();
    const answered = new Set(h.delivered);
    for (let i = 0; i < tickets.length; i++) {
      if (answered.has(tickets[i])) continue;
      parked++;
      const u = ops[i].user;
      const n = (perUser.get(u) ?? 0) + 1;
      perUser.set(u, n);
      if (n > 1) parkedBehindSameUser++;
    }
    afterStep(flags);
    if (settle) {
      while (h.loadsPending) {
        const f = nextFlags();
        h.step([], f);
        afterStep(f);
      }
    }
  };

  /** Compares every user's whole state (get-all through the engine, which loads as needed). */
  const compareAll = (): void => {
    for (let i = 0; i < users.length; i += cfg.maxUsers) {
      submit(
        users.slice(i, i + cfg.maxUsers).map((u) => getAll(u)),
        true,
        0,
      );
    }
    h.drain();
    afterStep(0);
    expect(pending.size, 'every get-all answered').toBe(0);
  };

  let done = 0;
  let batches = 0;
  while (done < cfg.ops) {
    const size = 1 + rng.int(cfg.maxBatch);
    const limit = rng.chance(cfg.overfill) ? size : Math.min(cfg.maxUsers, size);
    const distinct = 1 + rng.int(limit);
    const batchUsers: bigint[] = [];
    while (batchUsers.length < distinct && batchUsers.length < users.length) {
      const u = rng.chance(0.5) ? rng.pick(hot) : rng.pick(users);
      if (!batchUsers.includes(u)) batchUsers.push(u);
    }
    const ops: Op[] = [];
    for (let i = 0; i < size; i++) ops.push(randomOp(rng.pick(batchUsers)));
    const missing = new Set(ops.map((o) => o.user).filter((u) => userFind(h.m, idLo(u), idHi(u)) === NIL));
    if (missing.size > cfg.maxUsers) overfull++;
    // Mostly settle each batch; sometimes leave the loads to ride with the next batch, as the lane does.
    submit(ops, rng.chance(0.7), nextFlags());
    done += size;
    if (++batches % 250 === 0) {
      h.drain();
      afterStep(0);
      compareAll();
    }
  }
  h.drain();
  afterStep(0);
  expect(pending.size, 'every op answered').toBe(0);
  compareAll();

  // Shutdown flush: with everything handed over, the store alone must hold exactly the model,
  // while the users are still cached; evicting them afterwards writes nothing more.
  for (let i = 0; h.m.header[H_DIRTY] > 0; i++) {
    expect(i, 'flush-all makes progress').toBeLessThan(cfg.capacity + 2);
    h.step([], TaskFlag.FlushAll);
    afterStep(TaskFlag.FlushAll);
  }
  const compareStore = (when: string): void => {
    for (const u of users) {
      const stored = h.store.statesOf(u);
      const want = model.statesOf(u);
      if (stored.length !== want.length || stored.some((rs, i) => !sameRs(rs, want[i]))) {
        expect({ when, user: u.toString(), stored }).toEqual({ when, user: u.toString(), stored: want });
      }
    }
    expect([...h.store.users.keys()].every((u) => model.users.has(u)), 'store holds no extra users').toBe(true);
  };
  compareStore('after flush-all');
  const writes = h.store.writes;
  h.evictAll();
  verifyMemory(h.m, h.engine);
  expect(h.store.writes, 'evicting clean users writes nothing').toBe(writes);
  expect(h.m.header[H_USER_COUNT]).toBe(0);
  expect(h.m.header[H_RS_COUNT]).toBe(0);
  compareStore('after evicting everyone');
  // And after reloading from the store, the engine still agrees.
  compareAll();

  const c = h.engine.counters;
  const stats = { degradedWrites, rejected: model.rejected, parked, parkedBehindSameUser, heapSorted, okWrites, backlog, overfull, degradedSteps };
  if (process.env.MODEL_STATS) console.log(cfg.name, c, stats, { tasks: h.tasks, writes: h.store.writes });
  expect(c.evictions, 'evictions').toBeGreaterThanOrEqual(cfg.min.evictions);
  expect(c.loads, 'loads').toBeGreaterThanOrEqual(cfg.min.loads);
  expect(c.hits, 'hits').toBeGreaterThan(0);
  expect(model.rejected, '507s').toBeGreaterThanOrEqual(cfg.min.rejected);
  expect(parked, 'ops parked behind a load').toBeGreaterThanOrEqual(cfg.min.parked);
  expect(parkedBehindSameUser, 'several ops parked behind the same load').toBeGreaterThan(0);
  expect(heapSorted, 'get-all of more than 24 read states').toBeGreaterThanOrEqual(cfg.min.heapSorted);
  expect(backlog, 'backlog refusals while degraded').toBeGreaterThanOrEqual(cfg.min.backlog);
  if (cfg.overfill > 0) expect(overfull, 'batches with more new users than user slots').toBeGreaterThan(0);
  expect(okWrites).toBeGreaterThan(cfg.ops / 5);
  expect(h.store.writes + h.store.deletes, 'store mutations').toBeGreaterThan(0);
  if (cfg.mode !== 'timer') expect(c.rejectedFull, '507s counted by the engine').toBe(model.rejected);
}

const CONFIGS: Config[] = [
  {
    name: 'capacity 1, one user slot',
    seed: 0x1001,
    capacity: 1,
    maxUsers: 1,
    users: 5,
    channels: 3,
    ops: 6_000,
    maxBatch: 5,
    mode: 'evict',
    overfill: 0.2,
    min: { evictions: 1000, loads: 1000, rejected: 100, parked: 1000, heapSorted: 0, backlog: 0 },
  },
  {
    name: 'capacity 1, three user slots',
    seed: 0x1002,
    capacity: 1,
    maxUsers: 3,
    users: 7,
    channels: 3,
    ops: 6_000,
    maxBatch: 6,
    mode: 'eager',
    overfill: 0.2,
    min: { evictions: 1000, loads: 1000, rejected: 100, parked: 1000, heapSorted: 0, backlog: 0 },
  },
  {
    name: 'capacity 8, 4 users',
    seed: 0x2001,
    capacity: 8,
    maxUsers: 4,
    users: 14,
    channels: 12,
    ops: 20_000,
    maxBatch: 8,
    mode: 'evict',
    overfill: 0.1,
    min: { evictions: 2000, loads: 2000, rejected: 50, parked: 2000, heapSorted: 0, backlog: 0 },
  },
  {
    name: 'capacity 8, 4 users, write-behind timer and store outages',
    seed: 0x2003,
    capacity: 8,
    maxUsers: 4,
    users: 14,
    channels: 12,
    ops: 20_000,
    maxBatch: 8,
    mode: 'timer',
    overfill: 0.1,
    min: { evictions: 1000, loads: 1000, rejected: 20, parked: 1000, heapSorted: 0, backlog: 20 },
  },
  {
    name: 'capacity 16, 8 users',
    seed: 0x2002,
    capacity: 16,
    maxUsers: 8,
    users: 30,
    channels: 20,
    ops: 20_000,
    maxBatch: 10,
    mode: 'eager',
    overfill: 0,
    min: { evictions: 1000, loads: 1000, rejected: 10, parked: 1000, heapSorted: 0, backlog: 0 },
  },
  {
    name: 'capacity 64, 16 users, long lists',
    seed: 0x3001,
    capacity: 64,
    maxUsers: 16,
    users: 24,
    channels: 90,
    ops: 20_000,
    maxBatch: 10,
    mode: 'evict',
    deletePercent: 2,
    overfill: 0,
    min: { evictions: 500, loads: 500, rejected: 10, parked: 500, heapSorted: 5, backlog: 0 },
  },
  {
    name: 'capacity 64, 16 users, long lists, write-behind timer and store outages',
    seed: 0x3002,
    capacity: 64,
    maxUsers: 16,
    users: 24,
    channels: 90,
    ops: 15_000,
    maxBatch: 10,
    mode: 'timer',
    deletePercent: 2,
    overfill: 0,
    min: { evictions: 300, loads: 300, rejected: 5, parked: 300, heapSorted: 5, backlog: 5 },
  },
  {
    name: 'capacity 512, 64 users',
    seed: 0x4001,
    capacity: 512,
    maxUsers: 64,
    users: 160,
    channels: 40,
    ops: 20_000,
    maxBatch: 16,
    mode: 'evict',
    deletePercent: 6,
    overfill: 0,
    min: { evictions: 200, loads: 300, rejected: 0, parked: 300, heapSorted: 5, backlog: 0 },
  },
];

describe('shard engine against a reference model', () => {
  for (const cfg of CONFIGS) {
    it(`${cfg.name} (${cfg.mode}): ${cfg.ops} random ops`, () => runModel(cfg));
  }
});
