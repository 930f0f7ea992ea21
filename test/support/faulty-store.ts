/**
 * Fault injection around a real store: calls can be made to fail or to wait until released, to
 * test the write-behind logic under store outages and slow writes.
 */
import type { ReadStateStore } from '../../workers/store/store.js';

export class FaultyStore implements ReadStateStore {
  readonly name: string;
  failing = false;
  holding = false;
  /** load() waits until releaseLoads() (a miss stays parked in its shard meanwhile) */
  holdingLoads = false;
  applyCalls = 0;
  loadCalls = 0;
  private held: (() => void)[] = [];
  private heldLoads: (() => void)[] = [];

  constructor(readonly inner: ReadStateStore) {
    this.name = `faulty(${inner.name})`;
  }

  open(): Promise<void> {
    return this.inner.open();
  }

  async load(lo: number, hi: number): Promise<Uint32Array> {
    this.loadCalls++;
    if (this.holdingLoads) await new Promise<void>((r) => this.heldLoads.push(r));
    if (this.failing) throw new Error('store down (injected)');
    return this.inner.load(lo, hi);
  }

  async apply(records: Uint32Array, count: number): Promise<void> {
    this.applyCalls++;
    if (this.holding) await new Promise<void>((r) => this.held.push(r));
    if (this.failing) throw new Error('store down (injected)');
    await this.inner.apply(records.slice(), count);
  }

  /** Lets every held apply() continue. */
  release(): void {
    this.holding = false;
    const held = this.held;
    this.held = [];
    for (const r of held) r();
  }

  /** Lets every held load() continue. */
  releaseLoads(): void {
    this.holdingLoads = false;
    const held = this.heldLoads;
    this.heldLoads = [];
    for (const r of held) r();
  }

  close(): Promise<void> {
    return this.inner.close();
  }
}
