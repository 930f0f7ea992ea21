/**
 * Per-thread telemetry (workers/thread-telemetry.ts): the live-heap figure is null until the
 * thread's first full collection, then the heap measured right after the latest one, which a
 * benchmark can compare between services without sampling their GC cycles.
 */
import { runInNewContext } from 'node:vm';
import { setFlagsFromString } from 'node:v8';
import { describe, expect, it } from 'vitest';
import { collectGarbage } from '../../workers/collect-garbage.js';
import { TelemetryRecorder } from '../../workers/thread-telemetry.js';

setFlagsFromString('--expose-gc');
const fullGc = runInNewContext('gc') as () => void;
const observerTurn = () => new Promise((r) => setTimeout(r, 50));

describe('TelemetryRecorder', () => {
  it('counts and times the idle collections of its thread', () => {
    const t = new TelemetryRecorder('test');
    try {
      const before = t.read().idleCollections;
      let garbage: number[][] | undefined = Array.from({ length: 2_000 }, () => Array.from({ length: 500 }, (_, i) => i + 0.5));
      expect(garbage.length).toBe(2_000);
      garbage = undefined;
      collectGarbage();
      collectGarbage();
      const after = t.read().idleCollections;
      expect(after.count).toBe(before.count + 2);
      expect(after.seconds).toBeGreaterThan(before.seconds);
      expect(after.maxSeconds).toBeGreaterThan(0);
      expect(after.maxSeconds).toBeLessThanOrEqual(after.seconds);
    } finally {
      t.close();
    }
  });

  it('reports the heap after the latest Mark-Compact, and counts it as a major GC', async () => {
    const t = new TelemetryRecorder('test');
    try {
      expect(t.read().heapLiveAfterMajorGc).toBeNull();
      // garbage plus a retained 40 MB of JS objects: the live figure must see the retained part
      let keep: number[][] | undefined = Array.from({ length: 5_000 }, () => Array.from({ length: 1_000 }, (_, i) => i + 0.5));
      fullGc();
      await observerTurn();
      const withData = t.read();
      expect(withData.gc.major.count).toBeGreaterThanOrEqual(1);
      expect(withData.heapLiveAfterMajorGc).not.toBeNull();
      expect(keep.length).toBe(5_000);
      keep = undefined;
      fullGc();
      await observerTurn();
      const released = t.read();
      expect(released.gc.major.count).toBeGreaterThan(withData.gc.major.count);
      expect(withData.heapLiveAfterMajorGc! - released.heapLiveAfterMajorGc!).toBeGreaterThan(30 * 1048576);
    } finally {
      t.close();
    }
  });
});
