/**
 * The hand-written JSON renderings (src/render-json.ts) against a reference built the obvious
 * way: decode the record's words with BigInt, build the object, compare with JSON.parse of the
 * rendered text. Random words cover every id width (0, below 2^53, up to 2^64-1).
 */
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { renderGathered, renderReadState, renderUserReadStates } from '../../src/render-json.js';
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
        const text = renderReadState(user, null, b, offset).toString('latin1');
        expect(JSON.parse(text)).toStrictEqual(reference(user, w));
        // the channel as the request named it gives the same bytes
        expect(renderReadState(user, reference(user, w).channel_id, b, offset).toString('latin1')).toBe(text);
      }),
      { seed: 4242, numRuns: 2000 },
    );
  });

  it('renders all of a user\'s read states in order (none, one, many)', () => {
    fc.assert(
      fc.property(userId, fc.array(record, { maxLength: 40 }), (user, rows) => {
        const b = new Uint32Array(3 + rows.length * RS_WORDS);
        rows.forEach((w, i) => b.set(w, 3 + i * RS_WORDS));
        const parsed: unknown = JSON.parse(renderUserReadStates(user, b, 3, rows.length).toString('latin1'));
        expect(parsed).toStrictEqual({ user_id: user, read_states: rows.map((w) => reference(user, w)) });
      }),
      { seed: 99, numRuns: 300 },
    );
  });

  it('renders gathered results in request order: read state, error or bare status; and read-state lists', () => {
    fc.assert(
      fc.property(
        fc.array(fc.tuple(userId, record, fc.constantFrom(200, 204, 404, 503, 507), fc.boolean()), { minLength: 1, maxLength: 30 }),
        (ops) => {
          const n = ops.length;
          const statuses = new Uint16Array(n);
          const errors: (string | undefined)[] = new Array(n);
          const has = new Uint8Array(n);
          const words = new Uint32Array(n * RS_WORDS);
          const expected: unknown[] = [];
          ops.forEach(([user, w, status, withRs], i) => {
            statuses[i] = status;
            words.set(w, i * RS_WORDS);
            if (status === 200 && withRs) {
              has[i] = 1;
              expected.push({ status, read_state: reference(user, w) });
            } else if (status >= 400) {
              errors[i] = `CODE_${status}`;
              expected.push({ status, error: `CODE_${status}` });
            } else expected.push({ status });
          });
          const users = ops.map((o) => o[0]);
          const channels = ops.map((o) => reference(o[0], o[1]).channel_id);
          const text = renderGathered('batch', users, channels, statuses, errors, has, words).toString('latin1');
          expect(JSON.parse(text)).toStrictEqual({ results: expected });
          has.fill(1);
          const list = renderGathered('read_states', users, channels, statuses, errors, has, words).toString('latin1');
          expect(JSON.parse(list)).toStrictEqual({ read_states: ops.map(([u, w]) => reference(u, w)) });
        },
      ),
      { seed: 7, numRuns: 300 },
    );
  });

  it('grows its scratch for a large answer and stays correct for the next one', () => {
    const rows = 20_000; // ~3.4 MB, beyond the initial 64 KiB scratch
    const b = new Uint32Array(rows * RS_WORDS);
    for (let i = 0; i < rows; i++) b.set([i, 0xffffffff, i * 7, 0x12345678, i % 1000, 5, 0, 1, i, 0], i * RS_WORDS);
    const big = JSON.parse(renderUserReadStates('18446744073709551615', b, 0, rows).toString('latin1')) as { read_states: ReadStateJson[] };
    expect(big.read_states).toHaveLength(rows);
    expect(big.read_states[rows - 1]).toStrictEqual(reference('18446744073709551615', [...b.subarray((rows - 1) * RS_WORDS, rows * RS_WORDS)]));
    const one = renderReadState('1', null, b, 0).toString('latin1');
    expect(JSON.parse(one)).toStrictEqual(reference('1', [...b.subarray(0, RS_WORDS)]));
  });
});
