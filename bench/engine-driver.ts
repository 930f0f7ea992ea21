/**
 * Drives a ShardEngine synchronously the way the shard worker and src/shard-lane.ts do, without
 * piscina or HTTP: apply a batch of encoded ops, answer the load requests it produced (the lane
 * asks the store and sends the answers with the next task), install them, and clear the output
 * buffers between batches. The ops themselves are built in an OpList (workers/op-list.ts), the
 * service's one writer of the op layout; the helpers below only number them as the lane would.
 */
import type { ShardEngine } from '../workers/engine.js';
import type { OpList } from '../workers/op-list.js';
import { LoadStatus, Opcode, RsWord } from '../workers/protocol.js';

const EMPTY = new Uint32Array(0);

/** Answers a load request: the user's stored read states, RsWord.Size words each. */
export type Loader = (lo: number, hi: number) => Uint32Array;
export const emptyLoader: Loader = () => EMPTY;

export class EngineDriver {
  private section = new Uint32Array(4096);
  /** ns spent in the loader (store look-ups) since the last reset */
  loaderNs = 0;
  /** users loaded since the last reset */
  loaded = 0;

  constructor(
    readonly engine: ShardEngine,
    private readonly loader: Loader = emptyLoader,
  ) {}

  /** One task: ops[off .. off + count * OpWord.Size], then the load round trip for any misses. */
  batch(ops: Uint32Array, off: number, count: number): void {
    const e = this.engine;
    e.applyOps(ops, off, count);
    const reqs = e.loadRequests;
    if (reqs.len === 0) {
      e.resetOutput();
      return;
    }
    // What the store host does with the shard's misses: load each user, answer with a load section.
    const t0 = process.hrtime.bigint();
    let at = 0;
    for (let i = 0; i < reqs.len; i += 2) {
      const lo = reqs.buf[i];
      const hi = reqs.buf[i + 1];
      const records = this.loader(lo, hi);
      at = this.ensure(at, 4 + records.length);
      const s = this.section;
      s[at] = lo;
      s[at + 1] = hi;
      s[at + 2] = LoadStatus.Ok;
      s[at + 3] = records.length / RsWord.Size;
      s.set(records, at + 4);
      at += 4 + records.length;
      this.loaded++;
    }
    this.loaderNs += Number(process.hrtime.bigint() - t0);
    e.resetOutput();
    // The answer arrives on the shard's store port; parked ops replay behind the loads.
    e.installLoads(this.section, 0, at);
    e.resetOutput();
  }

  private ensure(at: number, words: number): number {
    if (at + words > this.section.length) {
      let size = this.section.length * 2;
      while (size < at + words) size *= 2;
      const next = new Uint32Array(size);
      next.set(this.section.subarray(0, at));
      this.section = next;
    }
    return at;
  }
}

/**
 * Appends an op to a task's list with a ticket of its own (its place in the list; the lane gives
 * every op in flight a distinct one) and returns its offset for OpList's setters.
 */
export function addOp(ops: OpList, head: number, uLo: number, uHi: number, cLo: number, cHi: number): number {
  const at = ops.add(head, uLo, uHi, cLo, cHi);
  ops.setTicket(at, ops.length - 1);
  return at;
}

/** Appends a mention that adds one. */
export function addMention(ops: OpList, uLo: number, uHi: number, cLo: number, cHi: number): void {
  ops.setCount(addOp(ops, Opcode.Mention, uLo, uHi, cLo, cHi), 1);
}

/** Appends a GET of the user's channel 1: whatever its answer, a miss makes the user resident. */
export function addGet(ops: OpList, uLo: number, uHi: number): void {
  addOp(ops, Opcode.Get, uLo, uHi, 1, 0);
}
