import type { WriteBehind } from '../../workers/write-behind.js';
import type { UserCache } from './cache.js';
import type { DirtyTracker } from './dirty.js';

/** What the naive routes need from the service. */
export interface NaiveContext {
  cache: UserCache;
  dirty: DirtyTracker;
  writeBehind: WriteBehind;
  /** True once shutdown has begun: new operations get 503. */
  isClosing(): boolean;
}
