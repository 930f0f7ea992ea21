/**
 * Load for cluster failover tests, with the clients' own record of what was acknowledged, by whom
 * and under which epoch.
 *
 * Each client worker owns a fixed subset of the (user, channel) read states and sends one request at
 * a time, each to a random instance, so the answers of one read state arrive in the order they were
 * applied. Every answer is checked against a model of the read-state rules applied to what was
 * acknowledged before (each successful answer carries the whole state after its operation): an
 * answer that does not follow from the last acknowledged state means an acknowledged change was lost,
 * or another instance held the read state at the same time. Outcomes the service leaves open
 * (`applied: null`, a connection lost mid-request, a timeout) are kept as "may have been applied":
 * the next answer may follow from the state with or without them. `applied: false` answers are
 * retried. A fault scenario later decides which mismatches its loss bound allows (see lossAllowed).
 */
import { Agent, request } from 'node:http';
import { performance } from 'node:perf_hooks';
import { partitionOf } from '../../workers/hash.js';

/** A read state as the model tracks it; version null = not known (the state follows from an open outcome). */
export interface RsValue {
  lastMessageId: bigint;
  mentionCount: number;
  pin: number;
  flags: number;
  version: number | null;
}
/** null = absent (never created, or deleted) */
export type RsState = RsValue | null;

export type Op =
  | { kind: 'ack'; message: bigint; mentionCount?: number }
  | { kind: 'mention'; count: number }
  | { kind: 'patch'; pin?: number; flags?: number }
  | { kind: 'delete' };

/** Who acknowledged something: from the `read-states-owner` header, and the client's clock (ms, monotonic). */
export interface AckMeta {
  instanceId: string;
  partition: number;
  epoch: number;
  start: number;
  end: number;
  /** when the answer's status and headers arrived: the instance had decided by then */
  decided: number;
  /** the instance the request was sent to (it may have forwarded it) */
  sentTo: string;
}

export interface Answer {
  key: string;
  op: Op;
  sentTo: string;
  start: number;
  end: number;
  /**
   * When the status line and headers arrived (undefined without an answer): by then the instance
   * had decided the answer. A process stopped while writing its answer delivers the rest later,
   * so `end` alone does not tell when it decided.
   */
  headersAt?: number;
  /** HTTP status, or 0 for no answer (connection error, timeout) */
  status: number;
  /** the answered read state's version (the write timestamp of its change, µs wall clock) */
  version?: number;
  error?: string;
  applied?: boolean | null;
  owner?: { instanceId: string; partition: number; epoch: number };
}

/** The model's view of one read state since the start: certain states, each followed by open outcomes. */
interface Snapshot {
  base: RsState;
  /** null: the initial "never written" state */
  meta: AckMeta | null;
  /** operations after base whose outcome is open */
  open: Op[];
}

/** An observation that does not follow from the last certain state (and the open outcomes after it). */
export interface Mismatch {
  key: string;
  where: string;
  observed: string;
  expected: string;
  /**
   * The certain states the observation skipped (newest first), when it follows from an older one:
   * acknowledged changes that are missing. Empty with `explained` false: it follows from nothing
   * that was ever acknowledged.
   */
  skipped: AckMeta[];
  explained: boolean;
  at: number;
}

const MAX_OPEN = 6;

export function applyOp(s: RsState, op: Op): { state: RsState; status: 200 | 204 | 404; changed: boolean } {
  if (op.kind === 'delete') return s === null ? { state: null, status: 404, changed: false } : { state: null, status: 204, changed: true };
  const created = s === null;
  const n: RsValue = s === null ? { lastMessageId: 0n, mentionCount: 0, pin: 0, flags: 0, version: 0 } : { ...s };
  let changed = created;
  if (op.kind === 'ack') {
    if (op.message > n.lastMessageId) {
      n.lastMessageId = op.message;
      n.mentionCount = op.mentionCount ?? 0;
      changed = true;
    }
  } else if (op.kind === 'mention') {
    const after = Math.min(0x7fffffff, n.mentionCount + op.count);
    if (after !== n.mentionCount) changed = true;
    n.mentionCount = after;
  } else {
    if (op.pin !== undefined && op.pin > n.pin) {
      n.pin = op.pin;
      changed = true;
    }
    if (op.flags !== undefined && op.flags !== n.flags) {
      n.flags = op.flags;
      changed = true;
    }
  }
  // A change gets a new timestamp, above the one before: its value is the server's to say.
  if (changed) n.version = null;
  return { state: n, status: 200, changed };
}

function sameValue(a: RsState, b: RsState): boolean {
  if (a === null || b === null) return a === b;
  return a.lastMessageId === b.lastMessageId && a.mentionCount === b.mentionCount && a.pin === b.pin && a.flags === b.flags;
}

export function show(s: RsState): string {
  if (s === null) return 'absent';
  return `{msg ${s.lastMessageId}, mentions ${s.mentionCount}, pin ${s.pin}, flags ${s.flags}, v ${s.version ?? '?'}}`;
}

function showOp(op: Op): string {
  return JSON.stringify(op, (_k, v: unknown) => (typeof v === 'bigint' ? v.toString() : v));
}

/** Every state the read state may be in: base with any in-order subset of the open outcomes applied. */
function expand(base: RsState, open: Op[]): RsState[] {
  let states: RsState[] = [base];
  for (const op of open) {
    const next = [...states];
    for (const s of states) {
      const a = applyOp(s, op).state;
      if (!next.some((t) => sameValue(t, a) && (t === null || a === null || t.version === a.version))) next.push(a);
    }
    states = next;
  }
  return states;
}

/** Whether an operation's certain answer follows from a possible prior state. */
function answerFollows(prior: RsState, op: Op, status: number, got: RsState): boolean {
  const r = applyOp(prior, op);
  if (r.status !== status) return false;
  if (op.kind === 'delete') return true;
  if (!sameValue(r.state, got)) return false;
  if (prior === null || prior.version === null || got === null || got.version === null) return true;
  return r.changed ? got.version > prior.version : got.version === prior.version;
}

/** Whether a read of the state matches a possible state (the version too, when it is known). */
function readMatches(possible: RsState, got: RsState): boolean {
  if (!sameValue(possible, got)) return false;
  return possible === null || got === null || possible.version === null || possible.version === got.version;
}

class KeyTrack {
  readonly history: Snapshot[] = [{ base: null, meta: null, open: [] }];
  /** set when more outcomes were open than the model follows: the next answer is taken as it is */
  lostTrack = false;

  get current(): Snapshot {
    return this.history[this.history.length - 1]!;
  }

  possible(): RsState[] {
    return expand(this.current.base, this.current.open);
  }

  addOpen(op: Op): void {
    if (this.current.open.length >= MAX_OPEN) this.lostTrack = true;
    else this.current.open.push(op);
  }

  /** The newest snapshot from which `follows` holds, searching older ones; undefined if none. */
  findFrom(follows: (s: RsState) => boolean): number | undefined {
    for (let j = this.history.length - 1; j >= 0; j--) {
      const snap = this.history[j]!;
      if (expand(snap.base, snap.open).some(follows)) return j;
    }
    return undefined;
  }

  certain(state: RsState, meta: AckMeta): void {
    this.history.push({ base: state, meta, open: [] });
    this.lostTrack = false;
  }
}

export interface LoadOptions {
  /** user ids firstUser .. firstUser + users - 1 */
  firstUser: number;
  users: number;
  channels: number;
  workers: number;
  partitions: number;
  /** give up on a request after this long (its outcome is then open) */
  requestTimeoutMs: number;
  /** the instances to send to right now, by name -> url; called for every request */
  targets: () => { name: string; url: string }[];
  /** true in cluster mode: every local answer must carry the owner header */
  expectOwnerHeader: boolean;
}

interface Reply {
  /** when the instance decided: its read-states-answered-at where it sent one, else when the headers arrived */
  headersAt: number;
  status: number;
  body: unknown;
  owner: string | undefined;
}

function send(agent: Agent, url: string, method: string, path: string, body: unknown, timeoutMs: number): Promise<Reply> {
  return new Promise((resolve, reject) => {
    const base = new URL(url);
    const data = body === undefined ? undefined : JSON.stringify(body);
    const req = request(
      {
        host: base.hostname,
        port: base.port,
        method,
        path,
        agent,
        headers: data === undefined ? {} : { 'content-type': 'application/json', 'content-length': Buffer.byteLength(data) },
      },
      (res) => {
        const headersAt = performance.now();
        let text = '';
        res.setEncoding('utf8');
        res.on('data', (d: string) => (text += d));
        res.on('end', () => {
          clearTimeout(timer);
          let parsed: unknown = null;
          try {
            parsed = text.length > 0 ? JSON.parse(text) : null;
          } catch {
            parsed = text;
          }
          const owner = res.headers['read-states-owner'];
          // The owner's own word for when it decided (same machine, same wall clock), which a pause
          // between deciding and writing delays the headers past; never later than they arrived.
          const answeredAt = Number(res.headers['read-states-answered-at']);
          const decidedAt = Number.isFinite(answeredAt) && answeredAt > 0 ? Math.min(headersAt, answeredAt - performance.timeOrigin) : headersAt;
          resolve({ headersAt: decidedAt, status: res.statusCode ?? 0, body: parsed, owner: Array.isArray(owner) ? owner[0] : owner });
        });
        res.on('error', (err) => {
          clearTimeout(timer);
          reject(err);
        });
      },
    );
    const timer = setTimeout(() => req.destroy(Object.assign(new Error('client timeout'), { code: 'CLIENT_TIMEOUT' })), timeoutMs);
    req.on('error', (err) => {
      clearTimeout(timer);
      reject(err);
    });
    req.end(data);
  });
}

interface WireState {
  channel_id: string;
  last_message_id: string;
  mention_count: number;
  last_pin_timestamp: number;
  flags: number;
  version: number;
}

function fromWire(w: WireState): RsValue {
  return { lastMessageId: BigInt(w.last_message_id), mentionCount: w.mention_count, pin: w.last_pin_timestamp, flags: w.flags, version: w.version };
}

export function parseOwner(h: string | undefined): { instanceId: string; partition: number; epoch: number } | undefined {
  if (h === undefined) return undefined;
  const parts = h.trim().split(' ');
  if (parts.length !== 3 || !/^\d+$/.test(parts[1]!) || !/^\d+$/.test(parts[2]!)) return undefined;
  return { instanceId: parts[0]!, partition: Number(parts[1]), epoch: Number(parts[2]) };
}

export class ClusterRecord {
  readonly keys = new Map<string, KeyTrack>();
  /** every answer (and non-answer) of every request, in the order they ended */
  readonly answers: Answer[] = [];
  /** acknowledgements (successful answers) with their owner header */
  readonly acks: (AckMeta & { key: string; version?: number })[] = [];
  readonly mismatches: Mismatch[] = [];
  /** what should never happen whatever the fault: an answer without a header, a wrong partition, a status the API does not have */
  readonly protocolErrors: string[] = [];
  counts = { acked: 0, open: 0, retriedNotApplied: 0, gaveUp: 0, untracked: 0 };
  private messageSeq = 1_000_000n;
  private pinSeq = 1_000;

  constructor(private readonly o: LoadOptions) {
    for (let u = 0; u < o.users; u++) for (let c = 1; c <= o.channels; c++) this.keys.set(`${o.firstUser + u}/${c}`, new KeyTrack());
  }

  partitionOfUser(user: number): number {
    return partitionOf(user >>> 0, Math.floor(user / 2 ** 32) >>> 0, this.o.partitions);
  }

  /** Runs the workers until stop() is true; resolves once every request in flight has ended. */
  async run(stop: () => boolean): Promise<void> {
    const agent = new Agent({ keepAlive: true, maxSockets: 4 * this.o.workers });
    const worker = async (w: number): Promise<void> => {
      let seed = ((w + 1) * 2654435761) >>> 0;
      const rnd = (n: number): number => {
        seed = (Math.imul(seed, 1103515245) + 12345) >>> 0;
        return (seed >>> 8) % n;
      };
      const mine = [...this.keys.keys()].filter((_, i) => i % this.o.workers === w);
      while (!stop()) await this.one(agent, mine[rnd(mine.length)]!, rnd);
    };
    await Promise.all(Array.from({ length: this.o.workers }, (_, w) => worker(w)));
    agent.destroy();
  }

  private nextOp(rnd: (n: number) => number): Op {
    const k = rnd(100);
    if (k < 35) return { kind: 'ack', message: this.messageSeq++, ...(rnd(3) === 0 ? { mentionCount: rnd(3) } : {}) };
    if (k < 75) return { kind: 'mention', count: 1 + rnd(3) };
    if (k < 92) return rnd(2) === 0 ? { kind: 'patch', flags: rnd(8) } : { kind: 'patch', pin: this.pinSeq++ };
    return { kind: 'delete' };
  }

  /** One operation, retried while the service says it was not applied. */
  private async one(agent: Agent, key: string, rnd: (n: number) => number): Promise<void> {
    const op = this.nextOp(rnd);
    const [user, channel] = key.split('/');
    const path = `/v1/users/${user}/read-states/${channel}`;
    const [method, url, body] =
      op.kind === 'ack'
        ? ['POST', `${path}/ack`, { message_id: op.message.toString(), ...(op.mentionCount !== undefined ? { mention_count: op.mentionCount } : {}) }]
        : op.kind === 'mention'
          ? ['POST', `${path}/mentions`, { count: op.count }]
          : op.kind === 'patch'
            ? ['PATCH', path, op.pin !== undefined ? { last_pin_timestamp: op.pin } : { flags: op.flags }]
            : ['DELETE', path, undefined];
    for (let attempt = 0; attempt < 200; attempt++) {
      const targets = this.o.targets();
      if (targets.length === 0) {
        await new Promise((r) => setTimeout(r, 50));
        continue;
      }
      const target = targets[rnd(targets.length)]!;
      const start = performance.now();
      let reply: Reply | undefined;
      let error: string | undefined;
      try {
        reply = await send(agent, target.url, method, url, body, this.o.requestTimeoutMs);
      } catch (err) {
        error = (err as NodeJS.ErrnoException).code ?? String(err);
      }
      const end = performance.now();
      const a: Answer = { key, op, sentTo: target.name, start, end, status: reply?.status ?? 0 };
      if (error !== undefined) a.error = error;
      if (reply !== undefined) {
        a.headersAt = reply.headersAt;
        const v = (reply.body as { version?: unknown } | null)?.version;
        if (reply.status === 200 && typeof v === 'number') a.version = v;
        const applied = (reply.body as { applied?: unknown } | null)?.applied;
        if (applied === false || applied === null) a.applied = applied;
        const owner = parseOwner(reply.owner);
        if (owner !== undefined) a.owner = owner;
        else if (reply.owner !== undefined) this.protocolErrors.push(`${key}: malformed read-states-owner header ${JSON.stringify(reply.owner)}`);
      }
      this.answers.push(a);
      // A connection that was never made carried nothing: the operation was not applied.
      if (error === 'ECONNREFUSED') {
        this.counts.retriedNotApplied++;
        await new Promise((r) => setTimeout(r, 20));
        continue;
      }
      if (reply === undefined) {
        this.open(key, op);
        return;
      }
      if (reply.status === 200 || reply.status === 204 || reply.status === 404) {
        this.acknowledged(key, op, a, reply);
        return;
      }
      if (reply.status === 503 && a.applied === false) {
        this.counts.retriedNotApplied++;
        await new Promise((r) => setTimeout(r, 30 + rnd(70)));
        continue;
      }
      if (reply.status !== 503 || a.applied !== null) {
        this.protocolErrors.push(`${key} ${showOp(op)} via ${target.name}: unexpected answer ${reply.status} ${JSON.stringify(reply.body)}`);
      }
      this.open(key, op);
      return;
    }
    this.counts.gaveUp++;
  }

  private open(key: string, op: Op): void {
    this.counts.open++;
    this.keys.get(key)!.addOpen(op);
  }

  private acknowledged(key: string, op: Op, a: Answer, reply: Reply): void {
    const track = this.keys.get(key)!;
    const user = Number(key.split('/')[0]);
    const got: RsState = reply.status === 200 ? fromWire(reply.body as WireState) : null;
    let meta: AckMeta;
    if (a.owner !== undefined) {
      meta = { ...a.owner, start: a.start, end: a.end, decided: reply.headersAt, sentTo: a.sentTo };
      if (a.owner.partition !== this.partitionOfUser(user)) {
        this.protocolErrors.push(`${key}: answer says partition ${a.owner.partition}, partitionOf(user) is ${this.partitionOfUser(user)}`);
      }
      this.acks.push(a.version === undefined ? { ...meta, key } : { ...meta, key, version: a.version });
    } else {
      if (this.o.expectOwnerHeader) this.protocolErrors.push(`${key} ${showOp(op)} via ${a.sentTo}: ${reply.status} without a read-states-owner header`);
      meta = { instanceId: `?${a.sentTo}`, partition: -1, epoch: -1, start: a.start, end: a.end, decided: reply.headersAt, sentTo: a.sentTo };
    }
    this.counts.acked++;
    if (track.lostTrack) {
      this.counts.untracked++;
    } else if (!track.possible().some((p) => answerFollows(p, op, reply.status, got))) {
      const j = track.findFrom((p) => answerFollows(p, op, reply.status, got));
      this.mismatches.push({
        key,
        where: `answer to ${showOp(op)} from ${meta.instanceId} (epoch ${meta.epoch}, via ${a.sentTo})`,
        observed: `${reply.status} ${show(got)}`,
        expected: `from ${track.possible().map(show).join(' | ')}`,
        skipped: j === undefined ? [] : track.history.slice(j + 1).map((s) => s.meta!).reverse(),
        explained: j !== undefined,
        at: a.end,
      });
    }
    track.certain(got, meta);
  }

  /** What each tracked read state may be now: for a final read, with the ack that made the certain one. */
  expectations(): Map<string, { possible: RsState[]; lastAck: AckMeta | null; untracked: boolean }> {
    const out = new Map<string, { possible: RsState[]; lastAck: AckMeta | null; untracked: boolean }>();
    for (const [k, t] of this.keys) out.set(k, { possible: t.possible(), lastAck: t.current.meta, untracked: t.lostTrack });
    return out;
  }

  /**
   * Compares what a final read (through an instance, or in Cassandra) found for every tracked read
   * state with the record; mismatches are returned (not stored), each explained by the acknowledged
   * states it skipped if it matches an older one.
   */
  compare(where: string, found: Map<string, RsState>): Mismatch[] {
    const out: Mismatch[] = [];
    for (const [k, t] of this.keys) {
      if (t.lostTrack) continue;
      const got = found.get(k) ?? null;
      if (t.possible().some((p) => readMatches(p, got))) continue;
      const j = t.findFrom((p) => readMatches(p, got));
      out.push({
        key: k,
        where,
        observed: show(got),
        expected: t.possible().map(show).join(' | '),
        skipped: j === undefined ? [] : t.history.slice(j + 1).map((s) => s.meta!).reverse(),
        explained: j !== undefined,
        at: performance.now(),
      });
    }
    return out;
  }

  /**
   * The epoch rule, per partition: every acknowledgement under epoch e came from one instance, and
   * none under e started after one under a larger epoch had ended (that would be two owners
   * acknowledging at once). Returns the violations.
   */
  epochViolations(): string[] {
    const out: string[] = [];
    const byPartition = new Map<number, (AckMeta & { key: string })[]>();
    for (const a of this.acks) {
      let l = byPartition.get(a.partition);
      if (l === undefined) byPartition.set(a.partition, (l = []));
      l.push(a);
    }
    for (const [p, acks] of byPartition) {
      const byEpoch = new Map<number, (AckMeta & { key: string })[]>();
      for (const a of acks) {
        let l = byEpoch.get(a.epoch);
        if (l === undefined) byEpoch.set(a.epoch, (l = []));
        l.push(a);
      }
      const epochs = [...byEpoch.keys()].sort((x, y) => y - x);
      let earliestEndAbove: (AckMeta & { key: string }) | undefined;
      for (const e of epochs) {
        const l = byEpoch.get(e)!;
        const ids = new Set(l.map((a) => a.instanceId));
        if (ids.size > 1) out.push(`partition ${p} epoch ${e}: acknowledged by ${[...ids].join(', ')}`);
        if (earliestEndAbove !== undefined) {
          const late = l.filter((a) => a.start > earliestEndAbove!.end);
          if (late.length > 0) {
            const a = late[0]!;
            const b = earliestEndAbove;
            out.push(
              `partition ${p}: ${late.length} acks under epoch ${e} by ${a.instanceId} started after an ack under epoch ${b.epoch} by ${b.instanceId} had ended ` +
                `(e.g. ${a.key} started ${a.start.toFixed(0)} ms, ${b.key} ended ${b.end.toFixed(0)} ms)`,
            );
          }
        }
        for (const a of l) if (earliestEndAbove === undefined || a.end < earliestEndAbove.end) earliestEndAbove = a;
      }
    }
    return out;
  }
}

/** Reads every tracked user's read states through one instance (GET /v1/users/:u/read-states). */
export async function readAllThrough(
  url: string,
  firstUser: number,
  users: number,
  channels: number,
  timeoutMs = 10_000,
): Promise<{ found: Map<string, RsState>; failures: string[] }> {
  const agent = new Agent({ keepAlive: true, maxSockets: 16 });
  const found = new Map<string, RsState>();
  const failures: string[] = [];
  const list = Array.from({ length: users }, (_, i) => firstUser + i);
  const readOne = async (u: number): Promise<void> => {
    for (let attempt = 0; attempt < 20; attempt++) {
      let r: Reply;
      try {
        r = await send(agent, url, 'GET', `/v1/users/${u}/read-states`, undefined, timeoutMs);
      } catch (err) {
        failures.push(`user ${u}: ${String(err)}`);
        return;
      }
      if (r.status === 200) {
        for (const w of (r.body as { read_states: WireState[] }).read_states) {
          if (Number(w.channel_id) >= 1 && Number(w.channel_id) <= channels) found.set(`${u}/${w.channel_id}`, fromWire(w));
        }
        return;
      }
      if (r.status === 503) {
        await new Promise((res) => setTimeout(res, 200));
        continue;
      }
      failures.push(`user ${u}: ${r.status} ${JSON.stringify(r.body)}`);
      return;
    }
    failures.push(`user ${u}: still 503 after 20 tries`);
  };
  for (let i = 0; i < list.length; i += 16) await Promise.all(list.slice(i, i + 16).map(readOne));
  agent.destroy();
  return { found, failures };
}
