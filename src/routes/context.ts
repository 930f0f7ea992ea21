import type { ShardRouter } from '../shard-router.js';

/** What route plugins need from the service. */
export interface RouteContext {
  router: ShardRouter;
  /** True once shutdown has begun: new operations get 503. */
  isClosing(): boolean;
}
