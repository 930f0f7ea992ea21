/**
 * Write-behind inside the shard engine: when dirty read states become store writes, with an
 * injectable clock.
 */
import { describe, expect, it } from 'vitest';
import { ShardEngine } from '../../workers/engine.js';
import { LoadStatus, OpFlag, OpWord, Opcode, RecordKind, ResultStatus, ResultWord, RsWord, StoredWord, join53 } from '../../workers/protocol.js';
import { allocateShardBuffers, attachShardMemory, H_DIRTY } from '../../workers/shard-memory.js';

interface Clock {
  t: number;
}

function setup(delay: number, capacity = 100, maxUsers = 10, flushBatchMax?: number) {
  const clock: Clock = { t: 1_000_000 };
  const m = attachShardMemory(allocateShardBuffers(capacity, maxUsers));
  const engine = new ShardEngine(m, { flushDelayMs: delay, now: () => clock.t, flushBatchMax });
  let ticket = 0;
  /** Applies one op; answers any load with "nothing stored"; returns the op's result status. */
  const op = (head: number, user: number, channel: number, msg = 0, count = 1): number => {
    const w = new Uint32Array(OpWord.Size);
    w[OpWord.Head] = head;
    w[OpWord.Ticket] = ++ticket;
    w[OpWord.UserLo] = user;
    w[OpWord.ChanLo] = channel;
    w[OpWord.MsgLo] = msg;
    w[OpWord.Count] = count;
    engine.applyOp(w, 0);
    if (engine.loadRequests.len > 0) {
      const loads = engine.loadRequests.buf.slice(0, engine.loadRequests.len);
      engine.loadRequests.len = 0;
      const section: number[] = [];
      for (let i = 0; i < loads.length; i += 2) section.push(loads[i], loads[i + 1], LoadStatus.Ok, 0);
      engine.installLoads(new Uint32Array(section), 0, section.length);
    }
    // the status of the last result record (walk them: records have a variable length)
    let status = 0;
    for (let at = 0; at < engine.results.len; at += ResultWord.HeaderSize + engine.results.buf[at + ResultWord.Count] * RsWord.Size) {
      status = engine.results.buf[at + ResultWord.Status];
    }
    engine.results.len = 0;
    return status;
  };
  const takeMutations = () => {
    const out: { kind: number; user: number; channel: number; mention: number; version: number; ts: number }[] = [];
    const b = engine.mutations.buf;
    for (let at = 0; at < engine.mutations.len; at += StoredWord.Size) {
      out.push({
        kind: b[at + StoredWord.Kind],
        user: b[at + StoredWord.UserLo],
        channel: b[at + StoredWord.Rs + RsWord.ChanLo],
        mention: b[at + StoredWord.Rs + RsWord.Mention],
        version: b[at + StoredWord.Rs + RsWord.VerLo],
        ts: join53(b[at + StoredWord.TsLo], b[at + StoredWord.TsHi]),
      });
    }
    engine.mutations.len = 0;
    return out;
  };
  return { clock, m, engine, op, takeMutations };
}

describe('engine write-behind', () => {
  it('writes a read state once, flush-delay after its first change, with its latest value', () => {
    const { clock, m, engine, op, takeMutations } = setup(30_000);
    expect(op(Opcode.Mention, 1, 10)).toBe(ResultStatus.Ok);
    engine.flushDue(); // tick: marks the change
    clock.t += 10_000;
    for (let i = 0; i < 5; i++) op(Opcode.Mention, 1, 10);
    engine.flushDue();
    expect(takeMutations()).toEqual([]);
    expect(m.header[H_DIRTY]).toBe(1);
    clock.t += 20_000; // 30 s after the first change
    engine.flushDue();
    const written = takeMutations();
    expect(written).toHaveLength(1);
    expect(written[0]).toMatchObject({ kind: RecordKind.Write, user: 1, channel: 10, mention: 6, version: 6 });
    expect(m.header[H_DIRTY]).toBe(0);
    clock.t += 60_000;
    engine.flushDue();
    expect(takeMutations()).toEqual([]);
  });

  it('a due batch larger than one tick may write is finished by the next ticks, even with no new changes', () => {
    const { clock, m, engine, op, takeMutations } = setup(30_000, 100, 10, 10);
    for (let c = 1; c <= 25; c++) op(Opcode.Mention, 1 + (c % 5), c);
    engine.flushDue(); // tick: marks all 25
    clock.t += 30_000;
    const counts: number[] = [];
    for (let tick = 0; tick < 4; tick++) {
      engine.flushDue();
      counts.push(takeMutations().length);
      clock.t += 1_000;
    }
    expect(counts).toEqual([10, 10, 5, 0]);
    expect(m.header[H_DIRTY]).toBe(0);
  });

  it('a due wave goes out in slices between ticks (flushBehind), and the slices take no marks', () => {
    const { clock, m, engine, op, takeMutations } = setup(30_000, 100, 10, 10);
    for (let c = 1; c <= 25; c++) op(Opcode.Mention, 1 + (c % 5), c);
    engine.flushDue(); // tick: marks all 25
    clock.t += 30_000;
    engine.flushDue();
    expect(takeMutations()).toHaveLength(10);
    expect(engine.flushBehind).toBe(true);
    // New changes between slices: they are not due, and a slice must not mark them (only a tick does).
    op(Opcode.Mention, 1, 99);
    const slices: number[] = [];
    while (engine.flushBehind) {
      engine.flushBehindSlice();
      slices.push(takeMutations().length);
    }
    expect(slices).toEqual([10, 5]);
    expect(m.header[H_DIRTY]).toBe(1);
    // The change made between slices is marked by the next tick and written a delay after it.
    engine.flushDue();
    clock.t += 29_000;
    engine.flushDue();
    expect(takeMutations()).toHaveLength(0);
    clock.t += 1_000;
    engine.flushDue();
    expect(takeMutations().map((w) => w.channel)).toEqual([99]);
    expect(engine.flushBehind).toBe(false);
  });

  it('a change after a snapshot was taken is written again, with a later timestamp', () => {
    const { clock, engine, op, takeMutations } = setup(0);
    op(Opcode.Mention, 1, 10);
    engine.flushDue();
    const first = takeMutations();
    expect(first).toHaveLength(1);
    op(Opcode.Mention, 1, 10); // lands while the first write may still be in flight
    clock.t -= 5_000; // even if the wall clock steps back
    engine.flushDue();
    const second = takeMutations();
    expect(second).toHaveLength(1);
    expect(second[0].mention).toBe(2);
    expect(second[0].ts).toBeGreaterThan(first[0].ts);
  });

  it('with delay 0 every changed read state goes out at the next flush; unchanged ones do not', () => {
    const { engine, op, takeMutations } = setup(0);
    op(Opcode.Ack | OpFlag.HasMsg, 1, 10, 5);
    op(Opcode.Ack | OpFlag.HasMsg, 1, 10, 4); // older ack: no change
    op(Opcode.Mention, 2, 10);
    engine.flushDue();
    expect(takeMutations().map((x) => [x.user, x.channel])).toEqual([[1, 10], [2, 10]]);
    op(Opcode.Ack | OpFlag.HasMsg, 1, 10, 3);
    engine.flushDue();
    expect(takeMutations()).toEqual([]);
  });

  it('flushAll hands over everything dirty regardless of the delay', () => {
    const { engine, op, takeMutations } = setup(3_600_000);
    for (let c = 1; c <= 20; c++) op(Opcode.Mention, 1 + (c % 3), c);
    expect(engine.flushAll()).toBe(0);
    expect(takeMutations()).toHaveLength(20);
  });

  it('deletes go out as deletes with a timestamp after the last write', () => {
    const { engine, op, takeMutations } = setup(0);
    op(Opcode.Mention, 1, 10);
    engine.flushDue();
    const [w] = takeMutations();
    op(Opcode.Delete, 1, 10);
    const [d] = takeMutations();
    expect(d).toMatchObject({ kind: RecordKind.Delete, user: 1, channel: 10 });
    expect(d.ts).toBeGreaterThan(w.ts);
  });

  it('eviction prefers users with nothing unflushed', () => {
    const { engine, op, takeMutations } = setup(3_600_000, 4, 4);
    op(Opcode.Mention, 1, 1); // dirty, least recently used
    op(Opcode.Mention, 2, 1);
    op(Opcode.Mention, 3, 1);
    op(Opcode.Mention, 4, 1);
    engine.flushAll();
    takeMutations();
    op(Opcode.Mention, 1, 1); // user 1 dirty again; users 2-4 clean
    op(Opcode.Mention, 5, 1); // needs a user slot and a read state: evicts a clean user, not user 1
    expect(takeMutations()).toEqual([]);
    expect(engine.counters.evictions).toBe(1);
  });

  it('while the store is degraded, only clean users are evicted; otherwise 503 (STORE_BACKLOG), nothing dropped', () => {
    const { m, engine, op, takeMutations } = setup(3_600_000, 2, 4);
    op(Opcode.Mention, 1, 1);
    op(Opcode.Mention, 2, 1); // capacity full, both users dirty
    engine.degraded = true;
    expect(op(Opcode.Mention, 3, 1)).toBe(ResultStatus.StoreBacklog);
    expect(takeMutations().filter((x) => x.kind === RecordKind.Write)).toEqual([]);
    expect(m.header[H_DIRTY]).toBeGreaterThan(0);
    engine.degraded = false;
    expect(op(Opcode.Mention, 3, 1)).toBe(ResultStatus.Ok);
    // The evicted user's change went to the store; user 2's stays dirty in the slab. (User 3's new
    // read state reuses user 1's slot, whose stale dirty-queue entry may write it early: harmless.)
    const writes = takeMutations().filter((x) => x.kind === RecordKind.Write);
    expect(writes.map((x) => x.user)).toContain(1);
    expect(writes.map((x) => x.user)).not.toContain(2);
    expect(m.userDirty.reduce((a, b) => a + b, 0)).toBe(m.header[H_DIRTY]);
  });
});

describe('long flush delays', () => {
  it('a change comes due even when more ticks than marks fall inside one flush delay', () => {
    // 2,000 s delay, a tick every second, a new change every tick: 2,000 ticks per delay for 1,024 marks.
    const delay = 2_000_000;
    const { clock, engine, op, takeMutations } = setup(delay, 10_000, 10);
    const start = clock.t;
    let firstWrittenAt = -1;
    for (let tick = 0; tick < 4_200 && firstWrittenAt < 0; tick++) {
      op(Opcode.Mention, 1, 1 + tick);
      engine.flushDue();
      if (takeMutations().some((w) => w.channel === 1)) firstWrittenAt = clock.t;
      clock.t += 1_000;
    }
    expect(firstWrittenAt).toBeGreaterThanOrEqual(start + delay);
    expect(firstWrittenAt).toBeLessThanOrEqual(start + 2 * delay);
  });
});
