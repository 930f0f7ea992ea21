/**
 * The hand-written JSON renderings (src/render-json.ts) against a reference built the obvious
 * way: decode the record's words with BigInt, build the object, compare with JSON.parse of the
 * rendered text. Random words cover every id width (0, below 2^53, up to 2^64-1).
 */
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { renderBatchResult, renderList, renderReadState, renderSummary, renderUserReadStates } from '../../src/render-json.js';
import { userReadStates } from '../../src/render-bytes.js';
import type { ReadStateJson } from '../../src/replies.js';
import { ListMetaWord, RsWord, SummaryWord } from '../../workers/protocol.js';

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
        const b = new Uint32Array(offset + RsWord.Size);
        b.set(w, offset);
        const text = renderReadState(JSON.stringify(user), null, b, offset);
        expect(JSON.parse(text)).toStrictEqual(reference(user, w));
        // the channel as the request named it gives the same text
        expect(renderReadState(JSON.stringify(user), reference(user, w).channel_id, b, offset)).toBe(text);
      }),
      { seed: 4242, numRuns: 2000 },
    );
  });

  it('renders all of a user\'s read states in order (none, one, many), as a full answer or a delta with deleted ids and a cursor', () => {
    const ids = fc.array(fc.tuple(u32, u32), { maxLength: 12 });
    fc.assert(
      fc.property(userId, fc.array(record, { maxLength: 400 }), fc.boolean(), fc.boolean(), ids, fc.integer({ min: 0, max: Number.MAX_SAFE_INTEGER }), (user, rows, full, more, dels, version) => {
        const delRecords = Math.ceil(dels.length / ListMetaWord.DeletesPerRecord);
        const b = new Uint32Array(3 + (1 + rows.length + delRecords) * RsWord.Size);
        const meta = 3;
        b[meta + ListMetaWord.VerLo] = version % 2 ** 32;
        b[meta + ListMetaWord.VerHi] = Math.floor(version / 2 ** 32);
        b[meta + ListMetaWord.Full] = full ? 1 : 0;
        b[meta + ListMetaWord.RsCount] = rows.length;
        b[meta + ListMetaWord.DelCount] = full ? 0 : dels.length;
        b[meta + ListMetaWord.More] = more ? 1 : 0;
        rows.forEach((w, i) => b.set(w, meta + (1 + i) * RsWord.Size));
        dels.forEach(([lo, hi], i) => b.set([lo, hi], meta + (1 + rows.length) * RsWord.Size + i * 2));
        const text = renderUserReadStates(user, b, meta);
        // the byte writer the route uses gives the same text, byte for byte
        expect(userReadStates(user, b, meta).toString('latin1')).toBe(text);
        const parsed: unknown = JSON.parse(text);
        const states = rows.map((w) => reference(user, w));
        const expected: Record<string, unknown> = { user_id: user, version, full, read_states: states };
        if (!full) expected.deleted_channel_ids = dels.map(([lo, hi]) => String((BigInt(hi) << 32n) | BigInt(lo)));
        if (more && rows.length > 0) expected.next_after = states[states.length - 1].channel_id;
        expect(parsed).toStrictEqual(expected);
      }),
      { seed: 99, numRuns: 1000 },
    );
  });

  it('renders a summary, alone and as a batch result', () => {
    const b = new Uint32Array(RsWord.Size);
    const total = 10000 * 0x7fffffff;
    b[SummaryWord.VerLo] = 5;
    b[SummaryWord.VerHi] = 0x1fffff;
    b[SummaryWord.ReadStates] = 10000;
    b[SummaryWord.MentionsLo] = total % 2 ** 32;
    b[SummaryWord.MentionsHi] = Math.floor(total / 2 ** 32);
    b[SummaryWord.ChannelsWithMentions] = 10000;
    const summary = { user_id: '18446744073709551615', version: 0x1fffff * 2 ** 32 + 5, read_states: 10000, mention_total: total, channels_with_mentions: 10000 };
    const text = renderSummary('18446744073709551615', b, 0);
    expect(JSON.parse(text)).toStrictEqual(summary);
    expect(JSON.parse(renderBatchResult(200, null, null, undefined, text))).toStrictEqual({ status: 200, summary });
  });

  it('renders batch results with a read state, an error or only a status, and lists of them', () => {
    const b = new Uint32Array(RsWord.Size);
    b.set([1, 2, 3, 4, 5, 6, 7, 8, 9, 10]);
    const rs = renderReadState('"7"', null, b, 0);
    const items = [renderBatchResult(200, rs, null), renderBatchResult(404, null, 'NOT_FOUND'), renderBatchResult(204, null, null)];
    expect(JSON.parse(renderList('results', items))).toStrictEqual({
      results: [{ status: 200, read_state: reference('7', [1, 2, 3, 4, 5, 6, 7, 8, 9, 10]) }, { status: 404, error: 'NOT_FOUND' }, { status: 204 }],
    });
    expect(JSON.parse(renderList('read_states', []))).toStrictEqual({ read_states: [] });
  });
});
