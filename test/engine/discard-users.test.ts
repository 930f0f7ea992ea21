/**
 * Cluster mode's drop of a moved partition's users: the chosen users leave the shard with nothing
 * written for them (their next owner loads what the store holds), the others stay as they were.
 */
import { describe, expect, it } from 'vitest';
import { EngineHarness, get, mention, verifyMemory } from '../support/engine-harness.js';
import { H_DIRTY, H_USER_COUNT } from '../../workers/shard-memory.js';
import { TaskFlag } from '../../workers/protocol.js';

describe('ShardEngine.discardUsers', () => {
  it('drops the selected users unwritten, dirty or not, and keeps the rest', () => {
    // a long flush delay: every change stays dirty in the shard
    const h = new EngineHarness({ capacity: 64, maxUsers: 16, engine: { flushDelayMs: 3_600_000 } });
    const users = [1n, 2n, 3n, 4n, 5n, 6n];
    h.run(users.flatMap((u) => [mention(u, 10n), mention(u, 11n)]));
    expect(h.m.header[H_DIRTY]).toBe(12);
    const odd = (lo: number, hi: number): boolean => hi === 0 && lo % 2 === 1;
    expect(h.engine.discardUsers(odd)).toBe(3);
    verifyMemory(h.m, h.engine);
    expect(h.m.header[H_USER_COUNT]).toBe(3);
    expect(h.m.header[H_DIRTY]).toBe(6);
    expect(h.engine.counters.discarded).toBe(3);
    // writing everything out sends the kept users' changes and nothing of the dropped ones
    h.step([], TaskFlag.FlushAll);
    expect(h.store.statesOf(1n)).toEqual([]);
    expect(h.store.statesOf(2n)).toHaveLength(2);
    // a dropped user is loaded again from the store (which never saw its mentions)
    expect(h.one(get(1n, 10n)).status).toBe(404);
    // a kept one still has its cached changes
    expect(h.one(get(2n, 10n)).states[0].mentionCount).toBe(1);
  });
});
