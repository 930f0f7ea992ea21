/**
 * Write timestamps never go back: not when the wall clock steps back inside a run, not in a
 * replacement worker on the same shard header, not in a later run (the reservation file).
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, expect, it } from 'vitest';
import { HybridClock, RESERVE_US, clockFileName, readReservations } from '../../workers/hybrid-clock.js';
import { H_CLOCK_BACK_MAX_MS, H_CLOCK_BACK_STEPS, H_WORDS } from '../../workers/shard-memory.js';

const dir = mkdtempSync(join(tmpdir(), 'rs-clock-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

function clockAt(header: Int32Array, wall: { t: number }, floorUs = 0, file: string | null = null): HybridClock {
  return new HybridClock({ header, now: () => wall.t, floorUs, reservationFile: file, fsync: false });
}

it('keeps increasing when the wall clock steps back, and counts the step', () => {
  const header = new Int32Array(new SharedArrayBuffer(H_WORDS * 4));
  const wall = { t: 1_800_000_000_000 };
  const c = clockAt(header, wall);
  c.beginBatch();
  const a = c.next();
  const b = c.next();
  expect(a).toBe(wall.t * 1000);
  expect(b).toBe(a + 1);
  wall.t -= 3_600_000;
  c.beginBatch();
  const d = c.next();
  expect(d).toBe(b + 1);
  expect(header[H_CLOCK_BACK_STEPS]).toBe(1);
  expect(header[H_CLOCK_BACK_MAX_MS]).toBe(3_600_000);
  // Once the wall clock is past the last timestamp again, it is followed.
  wall.t += 3_600_000 + 5;
  c.beginBatch();
  expect(c.next()).toBe(wall.t * 1000);
  expect(header[H_CLOCK_BACK_STEPS]).toBe(1);
});

it('a replacement worker on the same header continues above its predecessor', () => {
  const header = new Int32Array(new SharedArrayBuffer(H_WORDS * 4));
  const wall = { t: 1_800_000_000_000 };
  const first = clockAt(header, wall);
  first.beginBatch();
  let last = 0;
  for (let i = 0; i < 10; i++) last = first.next();
  first.endBatch();
  wall.t -= 60_000;
  const second = clockAt(header, wall);
  second.beginBatch();
  expect(second.next()).toBe(last + 1);
});

it('a later run starts above every timestamp a previous run handed out (reservation file)', () => {
  const wall = { t: 1_800_000_000_000 };
  const file = join(dir, clockFileName(0));
  const run1 = clockAt(new Int32Array(new SharedArrayBuffer(H_WORDS * 4)), wall, 0, file);
  run1.beginBatch();
  let last = 0;
  // Past the first reservation: the file is moved ahead again before such a timestamp is handed out.
  wall.t += RESERVE_US / 1000 + 1;
  run1.beginBatch();
  for (let i = 0; i < 5; i++) last = run1.next();
  run1.close();
  const reserved = readReservations(dir);
  expect(reserved).toBeGreaterThan(last);
  // Next run, fresh memory, wall clock an hour behind.
  wall.t -= 3_600_000;
  const run2 = clockAt(new Int32Array(new SharedArrayBuffer(H_WORDS * 4)), wall, reserved, file);
  run2.beginBatch();
  expect(run2.next()).toBeGreaterThan(last);
  run2.close();
});
