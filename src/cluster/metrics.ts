/**
 * Cluster-mode series, read from the coordinator when Prometheus scrapes (nothing is counted on a
 * request's path but the plain integers of ClusterView.counters).
 */
import { Counter, Gauge, type Registry } from 'prom-client';
import type { Coordinator } from './coordinator.js';

export function registerClusterMetrics(registry: Registry, c: Coordinator): void {
  const r = [registry];
  new Gauge({
    name: 'readstates_cluster_partitions_owned',
    help: 'Partitions this instance holds (handovers in progress included)',
    registers: r,
    collect() {
      this.set(c.snapshot().partitionsOwned);
    },
  });
  const totals: [string, string, () => number][] = [
    ['readstates_cluster_lease_renewals_total', 'Successful renewals of this member\'s lease', () => c.stats.renewals],
    ['readstates_cluster_lease_renewal_failures_total', 'Lease renewals that failed or were refused', () => c.stats.renewalFailures],
    ['readstates_cluster_lease_lapses_total', 'Times the lease ran out before a renewal (every partition dropped)', () => c.stats.leaseLapses],
    ['readstates_cluster_partitions_taken_total', 'Partitions this instance took', () => c.stats.taken],
    ['readstates_cluster_partitions_handed_over_total', 'Partitions this instance flushed and released to another', () => c.stats.handedOver],
    ['readstates_cluster_handover_seconds_total', 'Time spent in handovers (refusing, flushing, releasing)', () => c.stats.handoverSeconds],
    ['readstates_cluster_handovers_abandoned_total', 'Handovers given up because the store did not confirm in time', () => c.stats.handoversAbandoned],
    ['readstates_cluster_forwarded_total', 'Requests or batch parts forwarded to the owning instance', () => c.counters.forwarded],
    ['readstates_cluster_forward_failures_total', 'Forwards that got no answer from the owner', () => c.counters.forwardFailures],
    ['readstates_cluster_refused_moving_total', 'Operations refused because their partition had no owner or was moving', () => c.counters.refusedMoving],
    ['readstates_cluster_lease_lost_answers_total', 'Answers turned into 503 LEASE_LOST because the lease ended first', () => c.counters.leaseLostAnswers],
  ];
  for (const [name, help, read] of totals) {
    let last = 0;
    new Counter({
      name,
      help,
      registers: r,
      collect() {
        const now = read();
        this.inc(now - last);
        last = now;
      },
    });
  }
}
