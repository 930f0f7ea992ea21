/**
 * What a shard worker leaves in shared memory so that, if it dies, the main thread knows exactly
 * which operations it applied and can keep their changes:
 *
 *   done[t]        u32  the full ticket word (epoch included) of the last op on ticket t that
 *                       produced its result; the main thread sets NOT_DONE when it hands t out
 *   outcome[t]     u32  that op's result status | changed << 16
 *   journal             the current batch's journal frame (header room + records) as the engine
 *                       builds it, in a growable SharedArrayBuffer; header word H_LEDGER_JOURNAL_LEN
 *                       publishes its length after every record (records not yet in the file)
 *   header words   H_EXECUTING / H_EXECUTING_TICKET: the op being applied right now (its changes may
 *                  be half made); H_STARTS / H_RESCUED: a replacement worker waits until the main
 *                  thread has read what its predecessor left (see awaitRescue)
 *
 * A result is marked after it is complete, so a marked op was applied whole; the one op being
 * applied at the death is the only one that "may have been applied"; every other outstanding op was
 * not. Cost per op: three word stores. Nothing is read here unless a worker dies.
 */
import { H_STARTS, H_RESCUED } from './shard-memory.js';

/** done[] value of a ticket handed out and not completed (no real ticket word: tickets < 2^24 - 1). */
export const NOT_DONE = 0xffffffff;
/** virtual size of the journal scratch (grown on demand; address space only) */
const JOURNAL_MAX_BYTES = 256 * 1024 * 1024;

export interface LedgerBuffers {
  done: SharedArrayBuffer;
  outcome: SharedArrayBuffer;
  journal: SharedArrayBuffer;
}

export function allocateLedger(maxTickets: number): LedgerBuffers {
  const done = new SharedArrayBuffer(Math.max(4, maxTickets * 4));
  new Uint32Array(done).fill(NOT_DONE);
  return {
    done,
    outcome: new SharedArrayBuffer(Math.max(4, maxTickets * 4)),
    journal: new SharedArrayBuffer(4096, { maxByteLength: JOURNAL_MAX_BYTES }),
  };
}

/**
 * A replacement worker, before it touches the ledger: waits (bounded) until the main thread has
 * read what the previous worker on these buffers left. The first worker does not wait.
 */
export function awaitRescue(header: Int32Array, timeoutMs = 10_000): void {
  const before = Atomics.add(header, H_STARTS, 1);
  if (before === 0) return;
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const rescued = Atomics.load(header, H_RESCUED);
    if (rescued >= before || Date.now() >= deadline) return;
    Atomics.wait(header, H_RESCUED, rescued, 50);
  }
}

/** Main thread, after reading the ledger of a dead worker: lets its replacement go on. */
export function rescued(header: Int32Array): void {
  Atomics.store(header, H_RESCUED, Atomics.load(header, H_STARTS));
  Atomics.notify(header, H_RESCUED);
}
