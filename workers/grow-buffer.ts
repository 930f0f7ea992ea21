/**
 * A grow-only Uint32Array scratch buffer: doubles when full and is reused after each batch, so
 * steady-state batches allocate nothing but the one compact copy they hand to postMessage.
 */
export class GrowBuffer {
  buf: Uint32Array;
  len = 0;

  constructor(initialWords = 1024) {
    this.buf = new Uint32Array(initialWords);
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
