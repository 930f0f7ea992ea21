/**
 * Rebuilding a shard's structures from slot data after a worker died mid-batch.
 */
import { describe, expect, it } from 'vitest';
import { ShardEngine } from '../../workers/engine.js';
import { chanFind, userFind } from '../../workers/hash-index.js';
import { LoadStatus, OpWord, Opcode, StoredWord } from '../../workers/protocol.js';
import { hasState, recoverShard } from '../../workers/recovery.js';
import {
  H_DIRTY,
  H_MUTATING,
  H_RS_COUNT,
  H_USER_COUNT,
  NIL,
  USER_LOADING,
  allocateShardBuffers,
  attachShardMemory,
  type ShardBuffers,
} from '../../workers/shard-memory.js';

function fill(buffers: ShardBuffers, users: number, channels: number): ShardEngine {
  const m = attachShardMemory(buffers);
  const engine = new ShardEngine(m, { flushDelayMs: 3_600_000 });
  const w = new Uint32Array(OpWord.Size);
  for (let u = 1; u <= users; u++) {
    for (let c = 1; c <= channels; c++) {
      w.fill(0);
      w[OpWord.Head] = Opcode.Mention;
      w[OpWord.Ticket] = 1;
      w[OpWord.UserLo] = u;
      w[OpWord.ChanLo] = c;
      w[OpWord.Count] = u + c;
      engine.applyOp(w, 0);
      if (engine.loadRequests.len > 0) {
        engine.installLoads(new Uint32Array([engine.loadRequests.buf[0], engine.loadRequests.buf[1], LoadStatus.Ok, 0]), 0, 4);
        engine.loadRequests.len = 0;
      }
      engine.resetOutput();
    }
  }
  return engine;
}

describe('shard recovery', () => {
  it('a fresh shard has nothing to recover', () => {
    expect(hasState(attachShardMemory(allocateShardBuffers(10, 10)))).toBe(false);
  });

  it('after a clean stop it only releases users that were being loaded', () => {
    const buffers = allocateShardBuffers(1000, 100);
    const engine = fill(buffers, 20, 5);
    const w = new Uint32Array(OpWord.Size);
    w[OpWord.Head] = Opcode.Mention;
    w[OpWord.UserLo] = 999; // a miss: user 999 is left LOADING, as if the worker died before its load
    engine.applyOp(w, 0);
    const m = attachShardMemory(buffers); // the replacement worker's view
    expect(m.userState[userFind(m, 999, 0)]).toBe(USER_LOADING);
    const report = recoverShard(m);
    expect(report).toEqual({ rebuilt: false, releasedLoading: 1, droppedSlots: 0 });
    expect(userFind(m, 999, 0)).toBe(NIL);
    expect(m.header[H_USER_COUNT]).toBe(20);
  });

  it('after a batch that finished it still re-flushes every cached read state (its reply may have died in the port)', () => {
    const buffers = allocateShardBuffers(1000, 100);
    const engine = fill(buffers, 10, 3);
    engine.flushAll(); // the snapshots leave with a reply the main thread never gets
    engine.resetOutput();
    const m = attachShardMemory(buffers);
    expect(m.header[H_DIRTY]).toBe(0);
    expect(recoverShard(m).rebuilt).toBe(false);
    expect(m.header[H_DIRTY]).toBe(30);
    for (let u = 1; u <= 10; u++) expect(m.userDirty[userFind(m, u, 0)]).toBe(3);
    const replacement = new ShardEngine(m, { flushDelayMs: 0 });
    replacement.rebuildDirtyQueue();
    expect(replacement.flushAll()).toBe(0);
    expect(replacement.mutations.len / StoredWord.Size).toBe(30);
  });

  it('after a torn batch it rebuilds indexes, lists and free lists from slot data and marks everything dirty', () => {
    const buffers = allocateShardBuffers(1000, 100);
    fill(buffers, 30, 7);
    const m = attachShardMemory(buffers);
    // Simulate a worker that died mid-mutation: indexes wrecked, counts wrong.
    m.header[H_MUTATING] = 1;
    m.chanIndex.fill(0);
    m.userIndex.fill(0);
    m.header[H_RS_COUNT] = 12345;
    m.userHead.fill(NIL);
    const report = recoverShard(m);
    expect(report.rebuilt).toBe(true);
    expect(m.header[H_MUTATING]).toBe(0);
    expect(m.header[H_RS_COUNT]).toBe(210);
    expect(m.header[H_USER_COUNT]).toBe(30);
    expect(m.header[H_DIRTY]).toBe(210);
    for (let u = 1; u <= 30; u++) {
      const slot = userFind(m, u, 0);
      expect(slot).not.toBe(NIL);
      expect(m.userCount[slot]).toBe(7);
      for (let c = 1; c <= 7; c++) {
        const s = chanFind(m, slot, c, 0);
        expect(s, `${u}/${c}`).not.toBe(NIL);
        expect(m.rsMention[s]).toBe(u + c);
      }
    }
    // The engine keeps working on the rebuilt shard, and flushes every read state once.
    const engine = new ShardEngine(m, { flushDelayMs: 0 });
    engine.rebuildDirtyQueue();
    expect(engine.flushAll()).toBe(0);
    expect(engine.mutations.len / StoredWord.Size).toBe(210);
    const more = fill(buffers, 40, 7); // 10 new users, slots reused from the rebuilt free lists
    expect(more.m.header[H_RS_COUNT]).toBe(280);
  });
});
