/**
 * The data set and the request mixes of the tail-latency benchmark.
 *
 * Data set: users k = 0, 1, 2, ... with 10..300 channels each (10 + floor(290 u^3), u uniform from
 * a hash of k: mean about 82, a long tail of users with hundreds). Channel 0 of every user is one
 * of HOT_CHANNELS shared "hot" channels (user k is a member of hot channel k mod HOT_CHANNELS);
 * channels 1.. are drawn from a pool of a million (common.ts channelOf). The resident set is the
 * first users whose channels add up to `resident` read states (the last one cut short).
 *
 * Skew: HOT_FRACTION of the single read-state ops go to a hot channel (one of HOT_CHANNELS, then a
 * random member), the rest to a read state drawn uniformly from the working set. With churn F
 * (--churn, or the scenario's default: mixed has 1.1) the capacity is the resident set, so the
 * service is full once the fill is done, and the working set is F x that capacity: users beyond
 * the resident set are touched uniformly too, so both services load users (empty at first, later
 * the ones they evicted), create read states and evict the least recently used users to make room.
 */
import { Rng, chanHi, chanLo, channelOf, idString, mix32, userHi, userLo } from '../common.js';

export const HOT_CHANNELS = 8;
export const HOT_FRACTION = 0.5;
/** Channel index space of the hot channels, outside the pool of 1,000,000. */
const HOT_BASE = 2_000_000;

export function channelsOf(k: number): number {
  const u = mix32(k ^ 0x9e3779b9) / 4294967296;
  return 10 + Math.floor(290 * u * u * u);
}

/** Channel number (hot or pool) of user k's j-th channel. */
function channelNumber(k: number, j: number): number {
  return j === 0 ? HOT_BASE + (k % HOT_CHANNELS) : channelOf(k, j);
}

export interface Universe {
  resident: number;
  residentUsers: number;
  /** users of the working set (residentUsers unless churn) */
  users: number;
  /** read states of the working set */
  readStates: number;
  /** cum[k] = read states of users 0..k-1 (length users + 1) */
  cum: Float64Array;
}

/**
 * The resident set (exactly `resident` read states) and the working set (`workingReadStates`,
 * at least the resident set: users appended until their channels reach it).
 */
export function buildUniverse(resident: number, workingReadStates: number): Universe {
  const cumList: number[] = [0];
  let total = 0;
  let residentUsers = 0;
  while (total < resident) {
    total += Math.min(channelsOf(residentUsers), resident - total);
    residentUsers++;
    cumList.push(total);
  }
  let users = residentUsers;
  while (total < workingReadStates) {
    total += channelsOf(users);
    users++;
    cumList.push(total);
  }
  return { resident, residentUsers, users, readStates: total, cum: Float64Array.from(cumList) };
}

/**
 * The services' --capacity for a run: with churn the resident set itself (full after the fill, so
 * the working set beyond it can only get in by evicting), otherwise 20% headroom (nothing evicted).
 */
export function capacityFor(resident: number, churn: number): number {
  return churn > 0 ? resident : Math.ceil(resident * 1.2);
}

/** Channels user k has in the universe (the last resident user may be cut short). */
export function userChannels(u: Universe, k: number): number {
  return u.cum[k + 1] - u.cum[k];
}

export type OpKind = 'mention' | 'ack' | 'get' | 'delete' | 'connect';

export interface BuiltRequest {
  method: 'GET' | 'POST' | 'DELETE';
  path: string;
  body?: string;
}

export interface ScenarioSpec {
  name: string;
  description: string;
  /** read-state operations per HTTP request */
  opsPerRequest: number;
  /** op mix: kind -> probability (sums to 1); for batch, the mix of ops inside a request */
  mix: Partial<Record<OpKind, number>>;
  batch: boolean;
  /** only the hot/cold skew applies to single read-state ops; false = uniform over the working set */
  skewed: boolean;
  /**
   * --churn when the flag is absent: the working set as a multiple of the service's capacity
   * (0: the resident set only, nothing is ever evicted).
   */
  defaultChurn: number;
}

export const SCENARIOS: Record<string, ScenarioSpec> = {
  mentions: {
    name: 'mentions',
    description: '70% mention increments, 30% acks; half of them on 8 hot channels, half uniform over all read states',
    opsPerRequest: 1,
    mix: { mention: 0.7, ack: 0.3 },
    batch: false,
    skewed: true,
    defaultChurn: 0,
  },
  connect: {
    name: 'connect',
    description: 'GET all read states of a user (10..300 each, mean ~82), users uniform',
    opsPerRequest: 1,
    mix: { connect: 1 },
    batch: false,
    skewed: false,
    defaultChurn: 0,
  },
  mixed: {
    name: 'mixed',
    description: '50% mentions, 30% acks, 12% gets, 5% connects (all read states of a user), 3% deletes; single ops half on 8 hot channels',
    opsPerRequest: 1,
    mix: { mention: 0.5, ack: 0.3, get: 0.12, connect: 0.05, delete: 0.03 },
    batch: false,
    skewed: true,
    // The brief's mixed shape has churn: a working set a tenth larger than the service's capacity,
    // so misses load users back from the store and every new read state evicts someone.
    defaultChurn: 1.1,
  },
  batch: {
    name: 'batch',
    description: 'POST /v1/batch of 100 ops: 55% mentions, 30% acks, 12% gets, 3% deletes (mixed without connects, which batch cannot do)',
    opsPerRequest: 100,
    mix: { mention: 0.55, ack: 0.3, get: 0.12, delete: 0.03 },
    batch: true,
    skewed: true,
    defaultChurn: 0,
  },
  single: {
    name: 'single',
    description: 'POST mentions on one read state each, uniform over all read states (the gate\'s single-op throughput probe)',
    opsPerRequest: 1,
    mix: { mention: 1 },
    batch: false,
    skewed: false,
    defaultChurn: 0,
  },
};

/** Generates the requests of a scenario; message ids are always newer. */
export class RequestFactory {
  private readonly rng: Rng;
  private readonly userIds: string[] = [];
  private readonly kinds: OpKind[] = [];
  private readonly thresholds: number[] = [];
  private msg = 1;
  /** ops generated by kind (for the record) */
  readonly generated: Record<OpKind, number> = { mention: 0, ack: 0, get: 0, delete: 0, connect: 0 };

  constructor(
    readonly universe: Universe,
    readonly scenario: ScenarioSpec,
    seed: number,
  ) {
    this.rng = new Rng(seed);
    for (let k = 0; k < universe.users; k++) this.userIds.push(idString(userLo(k), userHi(k)));
    let acc = 0;
    for (const [kind, p] of Object.entries(scenario.mix) as [OpKind, number][]) {
      acc += p;
      this.kinds.push(kind);
      this.thresholds.push(acc);
    }
  }

  userId(k: number): string {
    return this.userIds[k];
  }

  /** Computed every time: a cache of up to a million strings would grow this process's heap. */
  channelId(c: number): string {
    return idString(chanLo(c), chanHi(c));
  }

  /** 19-digit message id, newer on every call. */
  private nextMessageId(): string {
    return '1101' + String(this.msg++).padStart(15, '0');
  }

  private uniform(): number {
    return (this.rng.next() * 4294967296 + this.rng.next()) / 18446744073709551616;
  }

  private pickKind(): OpKind {
    const x = this.uniform();
    for (let i = 0; i < this.kinds.length; i++) if (x < this.thresholds[i]) return this.kinds[i];
    return this.kinds[this.kinds.length - 1];
  }

  /** A read state (user k, channel number): hot with HOT_FRACTION if skewed, else uniform. */
  private pickReadState(): [number, number] {
    const u = this.universe;
    if (this.scenario.skewed && this.uniform() < HOT_FRACTION) {
      // A hot channel, then a random resident member of it (k = h + HOT_CHANNELS * m).
      const h = this.rng.below(HOT_CHANNELS);
      const members = Math.max(1, Math.floor((u.residentUsers - 1 - h) / HOT_CHANNELS) + 1);
      const k = Math.min(u.residentUsers - 1, h + HOT_CHANNELS * this.rng.below(members));
      return [k, channelNumber(k, 0)];
    }
    const r = Math.floor(this.uniform() * u.readStates);
    // binary search: the user whose [cum[k], cum[k+1]) holds r
    let lo = 0;
    let hi = u.users - 1;
    while (lo < hi) {
      const mid = (lo + hi + 1) >> 1;
      if (u.cum[mid] <= r) lo = mid;
      else hi = mid - 1;
    }
    return [lo, channelNumber(lo, r - u.cum[lo])];
  }

  private pickUser(): number {
    return Math.floor(this.uniform() * this.universe.users);
  }

  /** One single-op request of the scenario's mix. */
  private single(): BuiltRequest {
    const kind = this.pickKind();
    this.generated[kind]++;
    if (kind === 'connect') return { method: 'GET', path: `/v1/users/${this.userIds[this.pickUser()]}/read-states` };
    const [k, c] = this.pickReadState();
    const path = `/v1/users/${this.userIds[k]}/read-states/${this.channelId(c)}`;
    switch (kind) {
      case 'mention':
        return { method: 'POST', path: path + '/mentions', body: `{"message_id":"${this.nextMessageId()}","count":1}` };
      case 'ack':
        return { method: 'POST', path: path + '/ack', body: `{"message_id":"${this.nextMessageId()}"}` };
      case 'get':
        return { method: 'GET', path };
      case 'delete':
        return { method: 'DELETE', path };
    }
  }

  private batchOp(): string {
    const kind = this.pickKind();
    this.generated[kind]++;
    const [k, c] = this.pickReadState();
    const ids = `"user_id":"${this.userIds[k]}","channel_id":"${this.channelId(c)}"`;
    switch (kind) {
      case 'mention':
        return `{"op":"mention",${ids},"message_id":"${this.nextMessageId()}"}`;
      case 'ack':
        return `{"op":"ack",${ids},"message_id":"${this.nextMessageId()}"}`;
      case 'get':
        return `{"op":"get",${ids}}`;
      default:
        return `{"op":"delete",${ids}}`;
    }
  }

  next(): BuiltRequest {
    if (!this.scenario.batch) return this.single();
    const parts = new Array<string>(this.scenario.opsPerRequest);
    for (let i = 0; i < parts.length; i++) parts[i] = this.batchOp();
    return { method: 'POST', path: '/v1/batch', body: `{"ops":[${parts.join(',')}]}` };
  }

  /** One request of every kind the scenario uses (a smoke test before a run). */
  samples(): BuiltRequest[] {
    if (this.scenario.batch) return [this.next()];
    const out: BuiltRequest[] = [];
    const [k, c] = this.pickReadState();
    const path = `/v1/users/${this.userIds[k]}/read-states/${this.channelId(c)}`;
    for (const kind of Object.keys(this.scenario.mix) as OpKind[]) {
      if (kind === 'connect') out.push({ method: 'GET', path: `/v1/users/${this.userIds[k]}/read-states` });
      else if (kind === 'mention') out.push({ method: 'POST', path: path + '/mentions', body: `{"message_id":"${this.nextMessageId()}","count":1}` });
      else if (kind === 'ack') out.push({ method: 'POST', path: path + '/ack', body: `{"message_id":"${this.nextMessageId()}"}` });
      else if (kind === 'get') out.push({ method: 'GET', path });
    }
    // a delete last (it would turn the get into a 404), then a mention to put the read state back
    if (this.scenario.mix.delete !== undefined) {
      out.push({ method: 'DELETE', path });
      out.push({ method: 'POST', path: path + '/mentions', body: `{"message_id":"${this.nextMessageId()}","count":1}` });
    }
    return out;
  }
}

/**
 * The fill: every read state of the resident set as batch mention ops (no message id: creates the
 * read state with one mention), cut into bodies of at most `maxOps` ops and `maxBytes` bytes.
 */
export function* fillBodies(u: Universe, f: RequestFactory, maxOps: number, maxBytes: number): Generator<{ body: string; ops: number }> {
  let parts: string[] = [];
  let bytes = 9;
  for (let k = 0; k < u.residentUsers; k++) {
    const n = userChannels(u, k);
    const user = f.userId(k);
    for (let j = 0; j < n; j++) {
      const op = `{"op":"mention","user_id":"${user}","channel_id":"${f.channelId(channelNumber(k, j))}"}`;
      if (parts.length === maxOps || bytes + op.length + 1 > maxBytes) {
        yield { body: `{"ops":[${parts.join(',')}]}`, ops: parts.length };
        parts = [];
        bytes = 9;
      }
      parts.push(op);
      bytes += op.length + 1;
    }
  }
  if (parts.length > 0) yield { body: `{"ops":[${parts.join(',')}]}`, ops: parts.length };
}
