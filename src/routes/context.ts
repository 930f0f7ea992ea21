import type { ShardRouter } from '../shard-router.js';
import type { Metrics } from '../metrics.js';
import type { WriteBehind } from '../write-behind.js';

/** What route plugins need from the service. */
export interface RouteContext {
  router: ShardRouter;
  writeBehind: WriteBehind;
  metrics: Metrics;
  /** True once shutdown has begun: new operations get 503. */
  isClosing(): boolean;
}
