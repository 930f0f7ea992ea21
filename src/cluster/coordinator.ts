/**
 * Cluster mode: which partitions this instance owns, kept in Cassandra (lease-table.ts).
 *
 * Two loops on the main thread, each one query or a handful at a time (never on a request's path):
 * - renew, every lease/4: the member row's LWT (renewals + 1). A successful renewal that started at
 *   t makes this instance's lease valid until t + lease - margin by its own monotonic clock
 *   (margin = lease/5). Every held partition is valid exactly as long as that lease: an operation
 *   is accepted, and its answer sent as a success, only while it is.
 * - sync, every lease/4 (sooner while partitions are moving): reads members and partition rows,
 *   computes who should own what (assignment.ts) and acts: takes partitions it should own whose
 *   owner released them or died, hands over partitions another live member should own.
 *
 * Why it is safe: another instance declares this one dead only after seeing its renewal counter
 * unchanged for a whole lease by the observer's clock, which starts after our last successful
 * renewal ended; our lease ended `margin` before that. So a partition is taken only once its old
 * owner has stopped acknowledging and stopped writing (its store writes are fenced on the same
 * lease: workers/cluster-fence.ts). Every take bumps the partition's epoch with an LWT, so two
 * takers cannot both win.
 *
 * Handing a partition over (a member joined, or this one stops): stop accepting its operations,
 * wait until every shard has applied what it was sent, write every dirty read state and wait for
 * the store to confirm, then release the row (owner null); the next owner takes it at its next
 * sync and loads its users from Cassandra. What a taker may still have cached from an earlier
 * ownership is dropped before it acknowledges anything.
 */
import { partitionOf } from '../../workers/hash.js';
import { monotonicMs, type Fence } from '../../workers/cluster-fence.js';
import type { CassandraConfig, ClusterConfig } from '../config.js';
import type { ShardRouter } from '../shard-router.js';
import type { StoreLink } from '../store/store-link.js';
import { desiredOwners } from './assignment.js';
import { LeaseTable, type MemberRow, type PartitionRow } from './lease-table.js';
import type { ClusterHttpCounters, ClusterView } from './view.js';

const enum Held {
  No = 0,
  Yes = 1,
  /** being handed over: no new operations; answers of those already applied may still go out */
  Moving = 2,
  /**
   * the last step of a handover: no answer goes out as a success any more (an op parked behind a
   * load may be applied after the first flush; only what was answered before this is sure to be
   * in the last one), writes still do
   */
  Releasing = 3,
}

/** LWTs in flight at once while taking or releasing many partitions */
const LWT_CONCURRENCY = 16;
/** sync period while partitions this instance waits for are moving */
const FAST_SYNC_MS = 100;

export interface ClusterLog {
  info(obj: object, msg: string): void;
  warn(obj: object, msg: string): void;
  error(obj: object, msg: string): void;
}

export interface CoordinatorOptions {
  cluster: ClusterConfig;
  cassandra: CassandraConfig;
  router: ShardRouter;
  /** the store thread (write-behind state, drain) */
  store: StoreLink;
  fence: Fence;
  log: ClusterLog;
  /** a handover that has not flushed within this long is abandoned (the partition stays here) */
  handoverTimeoutMs?: number;
}

export interface ClusterStats {
  partitionsOwned: number;
  renewals: number;
  renewalFailures: number;
  /** times the lease ran out before a renewal (every partition dropped) */
  leaseLapses: number;
  taken: number;
  handedOver: number;
  handoverSeconds: number;
  handoversAbandoned: number;
  lwtUnknownOutcomes: number;
}

export interface ClusterDescription {
  cluster: string;
  instance_id: string;
  partitions: number;
  lease_ms: number;
  members: { instance_id: string; url: string; alive: boolean; leaving: boolean }[];
  owners: { owner: string | null; url: string | null; epoch: number }[];
}

export class Coordinator implements ClusterView {
  readonly clusterName: string;
  readonly instanceId: string;
  readonly partitions: number;
  readonly counters: ClusterHttpCounters = { forwarded: 0, forwardFailures: 0, refusedMoving: 0, leaseLostAnswers: 0 };
  readonly stats: ClusterStats = { partitionsOwned: 0, renewals: 0, renewalFailures: 0, leaseLapses: 0, taken: 0, handedOver: 0, handoverSeconds: 0, handoversAbandoned: 0, lwtUnknownOutcomes: 0 };
  private readonly o: CoordinatorOptions;
  private readonly url: string;
  private readonly leaseMs: number;
  private readonly marginMs: number;
  private readonly table: LeaseTable;
  private readonly fence: Fence;
  private readonly held: Uint8Array;
  private readonly epochs: Float64Array;
  /** partitions held at some point since start: their cached users may be stale when taken again */
  private readonly everHeld: Uint8Array;
  private rows: PartitionRow[];
  private members: MemberRow[] = [];
  private readonly urls = new Map<string, string>();
  /** each member's renewal counter and when (our monotonic ms) we first saw that value; -1: row absent */
  private readonly seen = new Map<string, { renewals: number; at: number }>();
  /** performance.now() until which our lease is valid (0: never renewed) */
  private validUntil = 0;
  private renewals = 0;
  /** the last renewal started (renew() chains on it) */
  private renewChain: Promise<void> = Promise.resolve();
  private registered = false;
  private leaving = false;
  private stopped = false;
  private renewTimer: NodeJS.Timeout | undefined;
  private syncTimer: NodeJS.Timeout | undefined;
  private syncing: Promise<void> | null = null;

  constructor(o: CoordinatorOptions) {
    this.o = o;
    this.clusterName = o.cluster.name;
    this.instanceId = o.cluster.instanceId;
    this.partitions = o.cluster.partitions;
    this.url = o.cluster.advertiseUrl;
    this.leaseMs = o.cluster.leaseMs;
    this.marginMs = Math.floor(o.cluster.leaseMs / 5);
    this.table = new LeaseTable(o.cassandra, o.cluster.name, o.cluster.leaseMs);
    this.fence = o.fence;
    this.held = new Uint8Array(this.partitions);
    this.epochs = new Float64Array(this.partitions);
    this.everHeld = new Uint8Array(this.partitions);
    this.rows = Array.from({ length: this.partitions }, () => ({ owner: null, epoch: 0 }));
  }

  /** Joins the cluster and takes what it should own before the service answers anything. */
  async start(): Promise<void> {
    await this.table.open(this.o.cassandra.replicationFactor);
    const existing = await this.table.partitionCount(this.partitions);
    if (existing !== this.partitions) {
      throw new Error(`cluster ${this.clusterName} was created with ${existing} partitions; this instance has --partitions ${this.partitions} (it cannot change)`);
    }
    await this.renew();
    if (!this.leaseValid()) throw new Error(`could not join cluster ${this.clusterName}: the member row ${this.instanceId} was not written`);
    await this.sync();
    this.scheduleRenew();
    this.scheduleSync(this.leaseMs / 4);
  }

  // ---- ClusterView: read on every request, no I/O -------------------------------------------

  partitionOf(lo: number, hi: number): number {
    return partitionOf(lo, hi, this.partitions);
  }

  ownsNow(p: number): boolean {
    return this.held[p] === Held.Yes && performance.now() < this.validUntil;
  }

  mayAnswer(p: number, epoch: number): boolean {
    const h = this.held[p];
    return (h === Held.Yes || h === Held.Moving) && this.epochs[p] === epoch && performance.now() < this.validUntil;
  }

  ownerUrl(p: number): string | null {
    const owner = this.rows[p].owner;
    if (owner === null || owner === this.instanceId || !this.alive(owner, performance.now())) return null;
    return this.urls.get(owner) ?? null;
  }

  epochOf(p: number): number {
    return this.held[p] === Held.No ? 0 : this.epochs[p];
  }

  /** /ready: a member whose lease is valid. */
  ready(): boolean {
    return this.registered && this.leaseValid();
  }

  describe(): ClusterDescription {
    const now = performance.now();
    return {
      cluster: this.clusterName,
      instance_id: this.instanceId,
      partitions: this.partitions,
      lease_ms: this.leaseMs,
      members: this.members.map((m) => ({ instance_id: m.instanceId, url: m.url, alive: m.instanceId === this.instanceId ? this.leaseValid() : this.alive(m.instanceId, now), leaving: m.leaving })),
      owners: this.rows.map((r, p) => {
        const mine = r.owner === this.instanceId;
        return { owner: r.owner, url: r.owner === null ? null : mine ? this.url : (this.urls.get(r.owner) ?? null), epoch: mine && this.held[p] !== Held.No ? this.epochs[p] : r.epoch };
      }),
    };
  }

  snapshot(): ClusterStats {
    let owned = 0;
    for (let p = 0; p < this.partitions; p++) if (this.held[p] !== Held.No) owned++;
    return { ...this.stats, partitionsOwned: owned, lwtUnknownOutcomes: this.table.unknownOutcomes };
  }

  // ---- stop ----------------------------------------------------------------------------------

  /**
   * Graceful stop: says it is leaving (the others stop assigning it anything), hands every
   * partition over (flushed and confirmed by the store first), and removes its member row.
   * Resolves true when nothing was left behind.
   */
  async leave(timeoutMs: number): Promise<boolean> {
    this.leaving = true;
    clearTimeout(this.syncTimer);
    await this.syncing;
    await this.renew();
    const mine: number[] = [];
    for (let p = 0; p < this.partitions; p++) if (this.held[p] === Held.Yes) mine.push(p);
    const clean = mine.length === 0 || (await this.handOver(mine, timeoutMs));
    this.stop();
    if (clean) await this.table.leave(this.instanceId).catch((err: unknown) => this.o.log.warn({ err }, 'cluster: removing the member row failed (it expires by itself)'));
    return clean;
  }

  stop(): void {
    this.stopped = true;
    clearTimeout(this.renewTimer);
    clearTimeout(this.syncTimer);
  }

  async close(): Promise<void> {
    this.stop();
    await this.syncing;
    await this.table.close();
  }

  // ---- lease ---------------------------------------------------------------------------------

  private leaseValid(): boolean {
    return performance.now() < this.validUntil;
  }

  private scheduleRenew(): void {
    if (this.stopped) return;
    this.renewTimer = setTimeout(() => void this.renew().finally(() => this.scheduleRenew()), this.leaseMs / 4);
    this.renewTimer.unref();
  }

  /**
   * Renewals run one after another (the timer's and leave()'s): two at once would both send
   * `IF renewals = n`, and the loser would take itself for a member whose row was taken away.
   */
  private renew(): Promise<void> {
    const next = this.renewChain.then(() => this.renewOnce());
    this.renewChain = next;
    return next;
  }

  private async renewOnce(): Promise<void> {
    this.checkLapse();
    const started = performance.now();
    const startedMono = monotonicMs();
    try {
      let ok: boolean;
      if (!this.registered) {
        ok = await this.table.register({ instanceId: this.instanceId, url: this.url, renewals: 1, leaving: false });
        if (ok) {
          this.registered = true;
          this.renewals = 1;
        }
      } else {
        ok = await this.table.renew(this.instanceId, this.url, this.renewals, this.leaving);
        if (ok) this.renewals++;
        else this.registered = false;
      }
      if (!ok) {
        this.stats.renewalFailures++;
        // Our row expired or was changed: we are no member any more until we register again.
        this.loseAll('the member row was gone or changed');
        return;
      }
      this.checkLapse();
      this.validUntil = started + this.leaseMs - this.marginMs;
      this.fence.validUntil = startedMono + this.leaseMs - this.marginMs;
      this.stats.renewals++;
    } catch (err) {
      this.stats.renewalFailures++;
      this.o.log.warn({ err }, 'cluster: lease renewal failed; partitions are dropped if the lease runs out');
      this.checkLapse();
    }
  }

  /** The lease ran out (a pause, a slow or unreachable Cassandra): everything held is lost. */
  private checkLapse(): void {
    if (this.validUntil !== 0 && performance.now() >= this.validUntil && this.heldCount() > 0) {
      this.stats.leaseLapses++;
      this.loseAll('the lease ran out before it was renewed');
    }
  }

  private heldCount(): number {
    let n = 0;
    for (let p = 0; p < this.partitions; p++) if (this.held[p] !== Held.No) n++;
    return n;
  }

  private loseAll(why: string): void {
    const lost: number[] = [];
    for (let p = 0; p < this.partitions; p++) if (this.held[p] !== Held.No) lost.push(p);
    this.validUntil = 0;
    this.fence.validUntil = 0;
    this.lose(lost, why);
  }

  private lose(lost: number[], why: string): void {
    for (const p of lost) {
      this.held[p] = Held.No;
      this.fence.setHeld(p, false);
      this.everHeld[p] = 1;
    }
    if (lost.length === 0) return;
    this.o.log.error({ partitions: lost.length, why }, 'cluster: lost partitions; their unwritten changes are dropped, the next owners load from Cassandra');
    void this.discard(lost);
  }

  /** Drops the cached users of `ps` in every shard (their copy here is, or may become, stale). */
  private async discard(ps: number[]): Promise<void> {
    for (const p of ps) this.fence.setDrop(p, true);
    try {
      await this.o.router.discardUsers();
    } finally {
      for (const p of ps) this.fence.setDrop(p, false);
    }
  }

  // ---- sync ----------------------------------------------------------------------------------

  private scheduleSync(ms: number): void {
    if (this.stopped || this.leaving) return;
    this.syncTimer = setTimeout(() => {
      this.syncing = this.sync()
        .catch((err: unknown) => this.o.log.warn({ err }, 'cluster: reading the cluster state failed'))
        .then((fast) => {
          this.syncing = null;
          this.scheduleSync(fast === true ? FAST_SYNC_MS : this.leaseMs / 4);
        });
    }, ms);
    this.syncTimer.unref();
  }

  /** One round: read, decide, act. True when something is still moving (sync again soon). */
  private async sync(): Promise<boolean> {
    const [members, rows] = await Promise.all([this.table.members(), this.table.partitions(this.partitions)]);
    // Back from a pause, this may run before the renewal notices the lease ran out: say so first.
    this.checkLapse();
    const now = performance.now();
    this.observe(members, rows, now);
    this.members = members;
    const usurped: number[] = [];
    for (let p = 0; p < this.partitions; p++) {
      if (this.held[p] === Held.No) continue;
      // A row read before our own take landed may be older than what we know.
      if (rows[p].epoch < this.epochs[p]) rows[p] = { owner: this.instanceId, epoch: this.epochs[p] };
      // Never expected while our lease is valid; if it happens, the row wins.
      else if (rows[p].epoch > this.epochs[p]) usurped.push(p);
    }
    if (usurped.length > 0) this.lose(usurped, 'another instance took them under a newer epoch');
    this.rows = rows;
    if (!this.leaseValid() || this.leaving) return false;

    const live = members.filter((m) => !m.leaving && (m.instanceId === this.instanceId || this.alive(m.instanceId, now))).map((m) => m.instanceId);
    if (!live.includes(this.instanceId)) live.push(this.instanceId);
    live.sort();
    const desired = desiredOwners(live, this.partitions);
    const me = live.indexOf(this.instanceId);
    const take: number[] = [];
    const give: number[] = [];
    const releaseRows: number[] = [];
    let waiting = false;
    for (let p = 0; p < this.partitions; p++) {
      const row = rows[p];
      const mine = desired[p] === me;
      if (this.held[p] === Held.Yes) {
        if (!mine) give.push(p);
        continue;
      }
      if (this.held[p] !== Held.No) continue; // moving
      if (row.owner === this.instanceId) {
        // The row names us but we do not hold it (lost with a lapse, or a release that failed).
        if (mine) take.push(p);
        else releaseRows.push(p);
        continue;
      }
      if (!mine) continue;
      if (row.owner === null || !this.alive(row.owner, now)) take.push(p);
      else waiting = true; // its owner hands it over (or is declared dead after a lease)
    }
    if (take.length > 0) await this.take(take);
    if (releaseRows.length > 0) await this.releaseRows(releaseRows);
    if (give.length > 0) await this.handOver(give, this.o.handoverTimeoutMs ?? 30_000);
    return waiting || give.length > 0;
  }

  private observe(members: MemberRow[], rows: PartitionRow[], now: number): void {
    for (const m of members) {
      this.urls.set(m.instanceId, m.url);
      const s = this.seen.get(m.instanceId);
      if (s === undefined || s.renewals !== m.renewals) this.seen.set(m.instanceId, { renewals: m.renewals, at: now });
    }
    const present = new Set(members.map((m) => m.instanceId));
    for (const r of rows) {
      if (r.owner === null || present.has(r.owner)) continue;
      const s = this.seen.get(r.owner);
      if (s === undefined || s.renewals !== -1) this.seen.set(r.owner, { renewals: -1, at: now });
    }
  }

  /** Renewed within the last lease, as far as we have seen (a member first seen now counts as alive). */
  private alive(id: string, now: number): boolean {
    const s = this.seen.get(id);
    return s !== undefined && now - s.at < this.leaseMs;
  }

  private async take(ps: number[]): Promise<void> {
    const won: number[] = [];
    await forEachBounded(ps, LWT_CONCURRENCY, async (p) => {
      const seen = this.rows[p];
      try {
        if (await this.table.take(p, seen, this.instanceId)) {
          won.push(p);
          this.rows[p] = { owner: this.instanceId, epoch: seen.epoch + 1 };
        }
      } catch (err) {
        this.o.log.warn({ err, partition: p }, 'cluster: taking a partition failed; retried at the next sync');
      }
    });
    if (won.length === 0) return;
    // Anything still cached from an earlier ownership is older than the store: drop it first.
    const stale = won.filter((p) => this.everHeld[p] === 1);
    if (stale.length > 0) await this.discard(stale);
    for (const p of won) {
      this.epochs[p] = this.rows[p].epoch;
      this.fence.setHeld(p, true);
      this.held[p] = Held.Yes;
      this.everHeld[p] = 1;
    }
    this.stats.taken += won.length;
    this.o.log.info({ partitions: won.length }, 'cluster: took partitions');
  }

  /**
   * Hands `ps` over: refuse new operations, let the shards apply what they were sent, write every
   * dirty read state and wait for the store, then release the rows. False (and the partitions
   * stay here) if the store did not confirm in time or the lease ran out meanwhile.
   */
  private async handOver(ps: number[], timeoutMs: number): Promise<boolean> {
    const started = performance.now();
    for (const p of ps) this.held[p] = Held.Moving;
    const deadline = Date.now() + timeoutMs;
    const left = (): number => Math.max(0, deadline - Date.now());
    // Every op sent before is applied once each shard answers; then write and confirm everything.
    const written = (await this.o.router.ready(left())) && (await this.flushAndConfirm(left));
    // From here no answer of these partitions goes out as a success; a second round writes what was
    // applied (and may have been answered) since the first one, usually nothing.
    for (const p of ps) if (this.held[p] === Held.Moving) this.held[p] = Held.Releasing;
    if (!written || !(await this.flushAndConfirm(left)) || !this.leaseValid()) {
      for (const p of ps) if (this.held[p] === Held.Moving || this.held[p] === Held.Releasing) this.held[p] = this.leaseValid() ? Held.Yes : Held.No;
      this.stats.handoversAbandoned++;
      this.o.log.warn({ partitions: ps.length }, 'cluster: handover abandoned: the store did not confirm every change in time');
      return false;
    }
    for (const p of ps) {
      this.fence.setHeld(p, false);
      this.held[p] = Held.No;
    }
    await this.releaseRows(ps);
    void this.discard(ps);
    this.stats.handedOver += ps.length;
    this.stats.handoverSeconds += (performance.now() - started) / 1000;
    this.o.log.info({ partitions: ps.length, ms: Math.round(performance.now() - started) }, 'cluster: handed partitions over');
    return true;
  }

  /** Every dirty read state of every shard written, and confirmed by the store, before `left()` runs out. */
  private async flushAndConfirm(left: () => number): Promise<boolean> {
    const router = this.o.router;
    const flushed = await Promise.race([router.flushAll().then(() => true), sleep(left()).then(() => false)]);
    return flushed && (await this.o.store.drain(left()));
  }

  private async releaseRows(ps: number[]): Promise<void> {
    await forEachBounded(ps, LWT_CONCURRENCY, async (p) => {
      const epoch = this.rows[p].owner === this.instanceId ? this.rows[p].epoch : this.epochs[p];
      try {
        if (await this.table.release(p, epoch, this.instanceId)) this.rows[p] = { owner: null, epoch };
      } catch (err) {
        this.o.log.warn({ err, partition: p }, 'cluster: releasing a partition failed; retried at the next sync');
      }
    });
  }
}

async function forEachBounded<T>(items: T[], limit: number, fn: (item: T) => Promise<void>): Promise<void> {
  let next = 0;
  const lane = async (): Promise<void> => {
    while (next < items.length) await fn(items[next++]);
  };
  await Promise.all(Array.from({ length: Math.min(limit, items.length) }, lane));
}

function sleep(ms: number): Promise<void> {
  return new Promise((r) => setTimeout(r, ms).unref());
}
