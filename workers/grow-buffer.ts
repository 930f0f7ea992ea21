/**
 * A Uint32Array scratch buffer: doubles when full and is reused after each batch, so steady-state
 * batches allocate nothing but the one compact copy they hand to postMessage. Once its thread is
 * idle, trim() gives back what the largest batch made it grow to.
 */
export class GrowBuffer {
  buf: Uint32Array;
  len = 0;
  private readonly initialWords: number;

  constructor(initialWords = 1024) {
    this.initialWords = initialWords;
    this.buf = new Uint32Array(initialWords);
  }

  /** Back to the initial size if empty (a buffer that holds words keeps them and its size). */
  trim(): void {
    if (this.len === 0 && this.buf.length > this.initialWords) this.buf = new Uint32Array(this.initialWords);
  }

  /** Makes room for `words` more words and returns the offset to write them at. */
  reserve(words: number): number {
    const at = this.len;
    if (at + words > this.buf.length) this.grow(at + words);
    this.len = at + words;
    return at;
  }

  push(word: number): void {
    if (this.len === this.buf.length) this.grow(this.len + 1);
    this.buf[this.len++] = word;
  }

  private grow(min: number): void {
    let size = this.buf.length * 2;
    while (size < min) size *= 2;
    const next = new Uint32Array(size);
    next.set(this.buf.subarray(0, this.len));
    this.buf = next;
  }
}

/**
 * The same buffer over a growable SharedArrayBuffer: another thread that holds the buffer sees the
 * words written (the crash ledger's journal scratch). The view tracks the buffer's length, so it
 * stays the same object when the buffer grows.
 */
export class SharedGrowBuffer {
  readonly buf: Uint32Array;
  len = 0;
  private readonly sab: SharedArrayBuffer;

  constructor(sab: SharedArrayBuffer) {
    this.sab = sab;
    this.buf = new Uint32Array(sab);
  }

  reserve(words: number): number {
    const at = this.len;
    if ((at + words) * 4 > this.sab.byteLength) this.grow(at + words);
    this.len = at + words;
    return at;
  }

  push(word: number): void {
    if ((this.len + 1) * 4 > this.sab.byteLength) this.grow(this.len + 1);
    this.buf[this.len++] = word;
  }

  private grow(minWords: number): void {
    let bytes = this.sab.byteLength * 2;
    while (bytes < minWords * 4) bytes *= 2;
    this.sab.grow(Math.min(bytes, this.sab.maxByteLength));
    if (minWords * 4 > this.sab.byteLength) throw new Error(`shared buffer full at ${this.sab.maxByteLength} bytes`);
  }
}

/** What the engine needs of either kind of buffer. */
export interface WordBuffer {
  readonly buf: Uint32Array;
  len: number;
  reserve(words: number): number;
  push(word: number): void;
}
