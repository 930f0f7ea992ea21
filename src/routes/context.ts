import type { ShardRouter } from '../shard-router.js';
import type { Metrics } from '../metrics.js';
import type { StoreLink } from '../store/store-link.js';
import type { Coordinator } from '../cluster/coordinator.js';
import type { ClusterRouting } from '../cluster/http-routing.js';

/** What route plugins need from the service. */
export interface RouteContext {
  router: ShardRouter;
  /** the store thread (write-behind state, drain) */
  store: StoreLink;
  metrics: Metrics;
  /** cluster mode's coordinator; null for a single instance */
  cluster: Coordinator | null;
  /** cluster mode's split of multi-user requests by partition owner; null for a single instance */
  clusterRouting: ClusterRouting | null;
  /** True once shutdown has begun: new operations get 503. */
  isClosing(): boolean;
}
