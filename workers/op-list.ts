/**
 * Operations in the wire layout of protocol.ts (OP_WORDS words each), written once: a route
 * stages its operations here while it validates them, the router copies each into its shard's
 * batch as is, and the tests and benches build engine input with the same writer. Nothing else
 * knows where a field of an operation lives.
 */
import { OP_WORDS, O_CHAN_HI, O_CHAN_LO, O_COUNT, O_FLAGS, O_HEAD, O_MSG_HI, O_MSG_LO, O_PIN_HI, O_PIN_LO, O_TICKET, O_USER_HI, O_USER_LO, hi32, lo32 } from './protocol.js';

export class OpList {
  words: Uint32Array;
  /** operations in the list */
  length = 0;

  constructor(capacity = 1) {
    this.words = new Uint32Array(Math.max(1, capacity) * OP_WORDS);
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
    const at = this.length * OP_WORDS;
    if (at + OP_WORDS > this.words.length) this.grow();
    const w = this.words;
    w.fill(0, at, at + OP_WORDS);
    w[at + O_HEAD] = head;
    w[at + O_USER_LO] = userLo;
    w[at + O_USER_HI] = userHi;
    w[at + O_CHAN_LO] = chanLo;
    w[at + O_CHAN_HI] = chanHi;
    this.length++;
    return at;
  }

  setMessage(at: number, lo: number, hi: number): void {
    this.words[at + O_MSG_LO] = lo;
    this.words[at + O_MSG_HI] = hi;
  }

  /** ack: the mention count to set; mention: how many mentions to add. */
  setCount(at: number, n: number): void {
    this.words[at + O_COUNT] = n;
  }

  /** last_pin_timestamp: an integer < 2^53, as two words. */
  setPin(at: number, pin: number): void {
    this.words[at + O_PIN_LO] = lo32(pin);
    this.words[at + O_PIN_HI] = hi32(pin);
  }

  setFlags(at: number, flags: number): void {
    this.words[at + O_FLAGS] = flags;
  }

  /** Tests and benches that drive an engine directly set the ticket the lane would. */
  setTicket(at: number, ticket: number): void {
    this.words[at + O_TICKET] = ticket;
  }

  private grow(): void {
    const words = new Uint32Array(this.words.length * 2);
    words.set(this.words);
    this.words = words;
  }
}
