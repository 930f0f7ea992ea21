/**
 * The benchmark's backlog test (bench/harness/load.ts scheduleDebt): a service that keeps up with
 * a fixed rate, even with one very slow second, has no backlog; one that answers less than the
 * rate for long enough does, from the second it is more than 100 ms behind and still falling.
 */
import { describe, expect, it } from 'vitest';
import { scheduleDebt } from '../../bench/harness/load.js';

const secs = (done: number[]) => done.map((d) => ({ done: d }));

describe('scheduleDebt', () => {
  it('a service that keeps up, with noise and one stall it recovers from, is never falling behind', () => {
    // 1,000 req/s; one second answers only 850 (150 ms behind), the next catches up.
    const r = scheduleDebt(secs([995, 1003, 998, 1004, 850, 1150, 1000, 999, 1001]), 1000);
    expect(r.fallingBehind).toEqual([]);
    expect(r.maxBehindMs).toBe(150);
  });

  it('a service answering 90% of the rate is reported from the first second past 100 ms that keeps growing', () => {
    // behind after each second: 100, 200, 300, 400, 500 ms
    const r = scheduleDebt(secs([900, 900, 900, 900, 900]), 1000);
    expect(r.fallingBehind).toEqual([3, 4]);
    expect(r.maxBehindMs).toBe(500);
  });

  it('a plateau far behind schedule is not climbing, and a rate of 0 measures nothing', () => {
    const r = scheduleDebt(secs([500, 500, 1000, 1000, 1000, 1000]), 1000);
    expect(r.fallingBehind).toEqual([]);
    expect(r.maxBehindMs).toBe(1000);
    expect(scheduleDebt(secs([1, 2, 3, 4]), 0)).toEqual({ fallingBehind: [], maxBehindMs: 0 });
  });
});
