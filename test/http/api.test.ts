import { startService } from '../support/service.js';
import { defineApiSuite } from './api-suite.js';

defineApiSuite('slab service', (limits) =>
  startService({
    ...(limits.capacity !== undefined ? { capacity: limits.capacity } : {}),
    ...(limits.maxUsers !== undefined ? { maxUsers: limits.maxUsers } : {}),
    ...(limits.maxQueue !== undefined ? { maxQueue: limits.maxQueue } : {}),
    ...(limits.shards !== undefined ? { shards: limits.shards } : {}),
    ...(limits.capacity === undefined ? { capacity: 200_000, maxUsers: 50_000 } : {}),
  }),
);
