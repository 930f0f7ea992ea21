/**
 * What the HTTP layer needs to know about the cluster (--cluster mode): which partition a user is
 * in, whether this instance may apply and acknowledge its operations right now, and where to send
 * them otherwise. The coordinator (coordinator.ts) keeps it current; reads cost no I/O.
 */

export interface ClusterView {
  readonly clusterName: string;
  readonly instanceId: string;
  readonly partitions: number;
  partitionOf(lo: number, hi: number): number;
  /**
   * True while this instance holds partition p's lease by its own monotonic clock (with the safety
   * margin) and p is not being handed over: only then may an operation of p be applied here, and
   * only then may its answer be sent as a success.
   */
  ownsNow(p: number): boolean;
  /**
   * True while the answer of an operation of p that was already applied here may go out as a
   * success: p is held or being handed over (its changes are flushed before it is released) and
   * the lease is valid, and p is still held under `epoch`, the epoch the operation was accepted under
   * (a lapse and a re-take in between dropped what that operation changed). Weaker than ownsNow,
   * which also refuses new operations during a handover.
   */
  mayAnswer(p: number, epoch: number): boolean;
  /** The base URL (no trailing slash) of the instance that holds p, when another one does; else null. */
  ownerUrl(p: number): string | null;
  /** The epoch under which this instance holds p (0 when it does not). */
  epochOf(p: number): number;
  /** Counters the HTTP layer bumps (exported as metrics). */
  readonly counters: ClusterHttpCounters;
}

export interface ClusterHttpCounters {
  /** requests (or batch parts) sent on to another instance */
  forwarded: number;
  /** forwards that failed (no answer from the owner) */
  forwardFailures: number;
  /** operations refused because their partition had no owner or was moving */
  refusedMoving: number;
  /** answers turned into 503 LEASE_LOST because the lease ended before the answer went out */
  leaseLostAnswers: number;
}
