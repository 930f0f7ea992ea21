/**
 * The hand-written JSON renderings (src/render-json.ts) against a reference built the obvious
 * way: decode the record's words with BigInt, build the object, compare with JSON.parse of the
 * rendered text. Random words cover every id width (0, below 2^53, up to 2^64-1).
 */
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { renderBatchResult, renderList, renderReadState, renderUserReadStates } from '../../src/render-json.js';
import type { ReadStateJson } from '../../src/replies.js';
import { RS_WORDS } from '../../workers/protocol.js';

const u32 = fc.oneof(fc.constant(0), fc.constant(0xffffffff), fc.integer({ min: 0, max: 0xffffffff }));
/** high words of 53-bit values (pin timestamps, versions) */
const hi21 = fc.oneof(fc.constant(0), fc.constant(0x1fffff), fc.integer({ min: 0, max: 0x1fffff }));
const record = fc.tuple(u32, u32, u32, u32, u32, u32, hi21, u32, u32, hi21);
const userId = fc.bigInt({ min: 1n, max: (1n << 64n) - 1n }).map(String);

function reference(user: string, w: number[]): ReadStateJson {
  const big = (lo: number, hi: number) => (BigInt(hi) << 32n) | BigInt(lo);
  return {
    user_id: user,
    channel_id: String(big(w[0], w[1])),
    last_message_id: String(big(w[2], w[3])),
    mention_count: w[4],
    last_pin_timestamp: Number(big(w[5], w[6])),
    flags: w[7],
    version: Number(big(w[8], w[9])),
  };
}

describe('render-json', () => {
  it('renders one read state exactly as the reference object, at any offset', () => {
    fc.assert(
      fc.property(userId, record, fc.nat(7), (user, w, offset) => {
        const b = new Uint32Array(offset + RS_WORDS);
        b.set(w, offset);
        const text = renderReadState(JSON.stringify(user), null, b, offset);
        expect(JSON.parse(text)).toStrictEqual(reference(user, w));
        // the channel as the request named it gives the same text
        expect(renderReadState(JSON.stringify(user), reference(user, w).channel_id, b, offset)).toBe(text);
      }),
      { seed: 4242, numRuns: 2000 },
    );
  });

  it('renders all of a user\'s read states in order (none, one, many)', () => {
    fc.assert(
      fc.property(userId, fc.array(record, { maxLength: 40 }), (user, rows) => {
        const b = new Uint32Array(3 + rows.length * RS_WORDS);
        rows.forEach((w, i) => b.set(w, 3 + i * RS_WORDS));
        const parsed: unknown = JSON.parse(renderUserReadStates(user, b, 3, rows.length));
        expect(parsed).toStrictEqual({ user_id: user, read_states: rows.map((w) => reference(user, w)) });
      }),
      { seed: 99, numRuns: 300 },
    );
  });

  it('renders batch results with a read state, an error or only a status, and lists of them', () => {
    const b = new Uint32Array(RS_WORDS);
    b.set([1, 2, 3, 4, 5, 6, 7, 8, 9, 10]);
    const rs = renderReadState('"7"', null, b, 0);
    const items = [renderBatchResult(200, rs, null), renderBatchResult(404, null, 'NOT_FOUND'), renderBatchResult(204, null, null)];
    expect(JSON.parse(renderList('results', items))).toStrictEqual({
      results: [{ status: 200, read_state: reference('7', [1, 2, 3, 4, 5, 6, 7, 8, 9, 10]) }, { status: 404, error: 'NOT_FOUND' }, { status: 204 }],
    });
    expect(JSON.parse(renderList('read_states', []))).toStrictEqual({ read_states: [] });
  });
});
