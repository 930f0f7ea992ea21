/**
 * One full collection on a thread once it has been idle for a whole check period after work (the
 * HTTP thread, and each shard worker). V8 collects when a thread allocates; an idle thread does
 * not, so what a burst left behind stays resident until the next burst: after a fill of 10M read
 * states through /v1/batch the HTTP thread's heap held 131 MiB (36 MiB with this collection), and
 * a shard keeps the dirty ring a write-back wave outgrew (dirty-ring.ts: 40 MB at 10M) until its
 * ArrayBuffer is collected. Idle means the activity count did not move between two checks; under
 * any steady traffic that never holds, so this never runs while requests come (an operation
 * arriving during the collection waits for it; that pause was not measured here).
 */
import { collectGarbage } from './collect-garbage.js';

/** Tests of the idle behaviour from outside set a short period (every thread reads it at start). */
export const IDLE_CHECK_ENV = 'READ_STATES_TEST_IDLE_CHECK_MS';

/** How often a thread checks whether it has been idle. */
export const IDLE_CHECK_MS = idleCheckMs(process.env);

function idleCheckMs(env: NodeJS.ProcessEnv): number {
  const raw = env[IDLE_CHECK_ENV];
  if (raw === undefined) return 10_000;
  const ms = Number(raw);
  if (!Number.isSafeInteger(ms) || ms < 10) throw new Error(`${IDLE_CHECK_ENV} must be an integer >= 10 (ms), got "${raw}"`);
  return ms;
}

export class IdleCollector {
  private seen = 0;
  private busy = false;
  private readonly timer: NodeJS.Timeout | null;

  /** `activity`: a count that moves with every operation (ShardRouter.submitted, a shard's ops); `periodMs` 0: checks only when called */
  constructor(
    private readonly activity: () => number,
    periodMs: number,
    private readonly collect: () => void = collectGarbage,
  ) {
    this.timer = periodMs > 0 ? setInterval(() => this.check(), periodMs) : null;
    this.timer?.unref();
  }

  /** Collects (and returns true) if nothing came in since the last check and something had before. */
  check(): boolean {
    const n = this.activity();
    if (n !== this.seen) {
      this.seen = n;
      this.busy = true;
      return false;
    }
    if (!this.busy) return false;
    this.busy = false;
    this.collect();
    return true;
  }

  close(): void {
    if (this.timer !== null) clearInterval(this.timer);
  }
}
