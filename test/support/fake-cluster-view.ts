/**
 * A ClusterView whose owners, epochs and lease a test sets, so that the HTTP routing can be tested
 * without Cassandra or a coordinator. FakeCluster keeps several instances' views agreeing.
 */
import type { ClusterHttpCounters, ClusterView } from '../../src/cluster/view.js';
import { parseId, parsed } from '../../src/ids.js';
import { partitionOf } from '../../workers/hash.js';

export class FakeClusterView implements ClusterView {
  readonly clusterName = 'test';
  readonly counters: ClusterHttpCounters = { forwarded: 0, forwardFailures: 0, refusedMoving: 0, leaseLostAnswers: 0 };
  /** owner (instance id) of each partition, as this instance sees it */
  readonly owners: (string | null)[];
  readonly epochs: number[];
  /** base URL of each instance id */
  readonly urls = new Map<string, string>();
  /** partitions this instance is handing over: refused, but answers of ops already applied may go out */
  readonly handing = new Set<number>();
  /** the lease of every partition this instance holds has ended */
  leaseEnded = false;
  /** how often ownsNow was asked (a test waits on it to know a request has arrived) */
  ownsNowCalls = 0;
  private endAtNextAnswer = false;
  private retakeAtNextAnswer = false;

  constructor(
    readonly instanceId: string,
    readonly partitions: number,
  ) {
    this.owners = new Array<string | null>(partitions).fill(null);
    this.epochs = new Array<number>(partitions).fill(0);
  }

  partitionOf(lo: number, hi: number): number {
    return partitionOf(lo, hi, this.partitions);
  }

  ownsNow(p: number): boolean {
    this.ownsNowCalls++;
    return this.owners[p] === this.instanceId && !this.leaseEnded && !this.handing.has(p);
  }

  mayAnswer(p: number, epoch: number): boolean {
    // The lease runs out after the op was admitted and applied, just before its answer goes out.
    if (this.endAtNextAnswer) {
      this.endAtNextAnswer = false;
      this.leaseEnded = true;
    }
    // Lost and taken back under a newer epoch between apply and answer.
    if (this.retakeAtNextAnswer) {
      this.retakeAtNextAnswer = false;
      this.epochs[p] += 2;
    }
    return this.owners[p] === this.instanceId && !this.leaseEnded && this.epochs[p] === epoch;
  }

  ownerUrl(p: number): string | null {
    const owner = this.owners[p];
    if (owner === null || owner === this.instanceId) return null;
    return this.urls.get(owner) ?? null;
  }

  epochOf(p: number): number {
    return this.owners[p] === this.instanceId ? this.epochs[p] : 0;
  }

  /** The lease ends at the next answer-time check (after the op was admitted and applied). */
  endLeaseAtNextAnswer(): void {
    this.endAtNextAnswer = true;
  }

  /** Partition lost and taken back (a newer epoch) at the next answer-time check. */
  retakeBeforeNextAnswer(): void {
    this.retakeAtNextAnswer = true;
  }
}

/** Views of one cluster's instances that agree on owners and epochs. */
export class FakeCluster {
  readonly views = new Map<string, FakeClusterView>();

  constructor(
    readonly partitions: number,
    instanceIds: string[],
  ) {
    for (const id of instanceIds) this.views.set(id, new FakeClusterView(id, partitions));
  }

  view(id: string): FakeClusterView {
    const v = this.views.get(id);
    if (v === undefined) throw new Error(`no instance ${id}`);
    return v;
  }

  /** Every view learns where instance `id` answers. */
  setUrl(id: string, url: string): void {
    for (const v of this.views.values()) v.urls.set(id, url);
  }

  /** Every view sees `owner` (null: none) holding p under `epoch`. */
  assign(p: number, owner: string | null, epoch: number): void {
    for (const v of this.views.values()) {
      v.owners[p] = owner;
      v.epochs[p] = epoch;
    }
  }
}

/** The partition of a decimal user id. */
export function partitionOfId(userId: string, partitions: number): number {
  if (!parseId(userId)) throw new Error(`not an id: ${userId}`);
  return partitionOf(parsed.lo, parsed.hi, partitions);
}

/** `count` user ids (from `from` up) whose partition is p. */
export function usersOfPartition(p: number, partitions: number, count: number, from = 1): string[] {
  const out: string[] = [];
  for (let id = from; out.length < count; id++) if (partitionOfId(String(id), partitions) === p) out.push(String(id));
  return out;
}
