/**
 * The HTTP thread's idle collection (workers/idle-collector.ts): once per idle period that followed
 * work, never while operations keep coming, never before any work.
 */
import { expect, it } from 'vitest';
import { IdleCollector } from '../../workers/idle-collector.js';

it('collects once after a whole quiet period that followed work, and never while work continues', () => {
  let ops = 0;
  let collections = 0;
  const c = new IdleCollector(() => ops, 0, () => collections++);
  expect(c.check()).toBe(false);
  expect(c.check()).toBe(false);
  expect(collections).toBe(0); // idle from the start: nothing to collect
  for (let period = 0; period < 5; period++) {
    ops += 1 + period; // steady traffic: something in every period
    expect(c.check()).toBe(false);
  }
  expect(collections).toBe(0);
  expect(c.check()).toBe(true); // a whole period with nothing
  expect(c.check()).toBe(false); // still idle: once
  expect(collections).toBe(1);
  ops++;
  expect(c.check()).toBe(false);
  expect(c.check()).toBe(true);
  expect(collections).toBe(2);
  c.close();
});
