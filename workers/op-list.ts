/**
 * Operations in the wire layout of protocol.ts (OpWord.Size words each), written once: a route
 * stages its operations here while it validates them, the router copies each into its shard's
 * batch as is, and the tests and benches build engine input with the same writer. Nothing else
 * knows where a field of an operation lives.
 */
import { OpWord, hi32, lo32 } from './protocol.js';

export class OpList {
  words: Uint32Array;
  /** operations in the list */
  length = 0;

  constructor(capacity = 1) {
    this.words = new Uint32Array(Math.max(1, capacity) * OpWord.Size);
  }

  /** Empties the list; its buffer is kept for the next use. */
  clear(): void {
    this.length = 0;
  }

  /**
   * Appends an operation on (user, channel) whose other fields are 0 and returns its word offset,
   * for the setters below. `head` is the opcode with its F_* flag bits.
   */
  add(head: number, userLo: number, userHi: number, chanLo: number, chanHi: number): number {
    const at = this.length * OpWord.Size;
    if (at + OpWord.Size > this.words.length) this.grow();
    const w = this.words;
    w.fill(0, at, at + OpWord.Size);
    w[at + OpWord.Head] = head;
    w[at + OpWord.UserLo] = userLo;
    w[at + OpWord.UserHi] = userHi;
    w[at + OpWord.ChanLo] = chanLo;
    w[at + OpWord.ChanHi] = chanHi;
    this.length++;
    return at;
  }

  setMessage(at: number, lo: number, hi: number): void {
    this.words[at + OpWord.MsgLo] = lo;
    this.words[at + OpWord.MsgHi] = hi;
  }

  /** ack: the mention count to set; mention: how many mentions to add. */
  setCount(at: number, n: number): void {
    this.words[at + OpWord.Count] = n;
  }

  /** last_pin_timestamp: an integer < 2^53, as two words. */
  setPin(at: number, pin: number): void {
    this.words[at + OpWord.PinLo] = lo32(pin);
    this.words[at + OpWord.PinHi] = hi32(pin);
  }

  setFlags(at: number, flags: number): void {
    this.words[at + OpWord.Flags] = flags;
  }

  /** Tests and benches that drive an engine directly set the ticket the lane would. */
  setTicket(at: number, ticket: number): void {
    this.words[at + OpWord.Ticket] = ticket;
  }

  private grow(): void {
    const words = new Uint32Array(this.words.length * 2);
    words.set(this.words);
    this.words = words;
  }
}
