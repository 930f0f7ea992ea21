/**
 * The /v1/batch body parser: its fast reader against the exact one (JSON.parse + the route's JSON
 * schema), on random bodies built to hit every branch: valid ops in every shape, whitespace,
 * escapes, number spellings, duplicate and unknown keys, schema violations and broken JSON.
 */
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { parseBatch, readsFast, trimBatchStaging } from '../../src/batch-parser.js';
import { ApiError } from '../../src/errors.js';
import { MAX_BATCH_OPS } from '../../src/schemas.js';
import { OpWord } from '../../workers/protocol.js';

type Outcome = { error: string } | { words: number[]; userIds: string[]; channelIds: string[] };

function outcome(body: string, exactOnly: boolean): Outcome {
  try {
    const p = parseBatch(Buffer.from(body), exactOnly);
    const ids = (f: (i: number) => string) => Array.from({ length: p.length }, (_, i) => f.call(p, i));
    return { words: [...p.ops.words.subarray(0, p.ops.length * OpWord.Size)], userIds: ids(p.userId), channelIds: ids(p.channelId) };
  } catch (err) {
    if (!(err instanceof ApiError)) throw err;
    return { error: err.code };
  }
}

const idText = fc.oneof(
  fc.constantFrom('0', '1', '7', '18446744073709551615', '18446744073709551616', '99999999999999999999', '01', '', '123456789012345678901', '-1', '1.5'),
  fc.bigInt({ min: 1n, max: (1n << 64n) - 1n }).map(String),
  fc.nat().map(String),
);
const intText = fc.oneof(
  fc.constantFrom('0', '1', '5', '1000', '1001', '2147483647', '2147483648', '4294967295', '4294967296', '9007199254740991', '9007199254740992', '1234567890123456'),
  fc.constantFrom('1.0', '1e3', '2E0', '-0', '-1', '0.5', '01', '1e400', '"5"', 'null', 'true', '[]'),
  fc.nat({ max: 3000 }).map(String),
);
const key = (k: string) => fc.constantFrom(`"${k}"`, `"${k}"`, `"${k}"`, `"${[...k].map((c) => '\\u' + c.charCodeAt(0).toString(16).padStart(4, '0')).join('')}"`);
const ws = fc.constantFrom('', '', '', ' ', '\n  ', '\t', '\r\n');
const str = (s: fc.Arbitrary<string>) => s.map((v) => (v.startsWith('"') || v === 'null' || /^-?\d/.test(v) ? v : `"${v}"`));
const escaped = (s: string) => `"${[...s].map((c) => '\\u' + c.charCodeAt(0).toString(16).padStart(4, '0')).join('')}"`;

const field = fc.oneof(
  fc.tuple(key('op'), fc.constantFrom('"get"', '"ack"', '"mention"', '"patch"', '"delete"', '"summary"', '"nuke"', '"GET"', '1', escaped('ack'))),
  fc.tuple(key('user_id'), fc.oneof(str(idText), idText.map(escaped))),
  fc.tuple(key('channel_id'), fc.oneof(str(idText), idText.map(escaped))),
  fc.tuple(key('message_id'), str(idText)),
  fc.tuple(key('mention_count'), intText),
  fc.tuple(key('manual'), fc.constantFrom('true', 'false', '"true"', '1', 'null')),
  fc.tuple(key('count'), intText),
  fc.tuple(key('last_pin_timestamp'), intText),
  fc.tuple(key('flags'), intText),
  fc.tuple(fc.constantFrom('"extra"', '"Op"'), fc.constantFrom('1', '"x"', '{}', '[1,{"a":[]}]')),
);

/** An op that is valid for its kind, most of the time, so that many bodies parse. */
const validOp = fc.record({
  kind: fc.constantFrom('get', 'ack', 'mention', 'patch', 'delete', 'summary'),
  user: fc.bigInt({ min: 1n, max: (1n << 64n) - 1n }).map(String),
  channel: fc.nat({ max: 1_000_000 }).map((n) => String(n + 1)),
  msg: fc.option(fc.nat().map((n) => String(n + 1))),
  n: fc.option(fc.nat({ max: 1000 }).map((n) => n + 1)),
  manual: fc.option(fc.boolean()),
  pin: fc.option(fc.nat()),
  flags: fc.option(fc.nat()),
}).map((o) => {
  const f: string[] = [`"op":"${o.kind}"`, `"user_id":"${o.user}"`];
  if (o.kind !== 'summary') f.push(`"channel_id":"${o.channel}"`);
  if (o.kind === 'ack') f.push(`"message_id":"${o.msg ?? '0'}"`);
  if (o.kind === 'ack' && o.n !== null) f.push(`"mention_count":${o.n}`);
  if (o.kind === 'ack' && o.manual !== null) f.push(`"manual":${o.manual}`);
  if (o.kind === 'mention' && o.msg !== null) f.push(`"message_id":"${o.msg}"`);
  if (o.kind === 'mention' && o.n !== null) f.push(`"count":${o.n}`);
  if (o.kind === 'patch') f.push(`"last_pin_timestamp":${o.pin ?? 1}`);
  if (o.kind === 'patch' && o.flags !== null) f.push(`"flags":${o.flags}`);
  return f;
});

const anyOp = fc.oneof(
  { weight: 12, arbitrary: validOp },
  { weight: 2, arbitrary: fc.tuple(validOp, fc.array(field, { maxLength: 3 })).map(([v, extra]) => [...v, ...extra.map(([k, val]) => `${k}:${val}`)]) },
  { weight: 1, arbitrary: fc.array(field, { maxLength: 6 }).map((fs) => fs.map(([k, v]) => `${k}:${v}`)) },
);

const body = fc
  .tuple(fc.array(fc.tuple(fc.shuffledSubarray([0, 1, 2, 3, 4, 5, 6, 7, 8, 9], { minLength: 10 }), anyOp), { minLength: 0, maxLength: 5 }), ws, ws, fc.nat({ max: 20 }))
  .map(([ops, w1, w2, mutation]) => {
    const objs = ops.map(([order, fields]) => {
      const shuffled = order.filter((i) => i < fields.length).map((i) => fields[i]);
      return `{${w1}${shuffled.join(`,${w2}`)}${w1}}`;
    });
    const text = `{${w1}"ops"${w2}:${w1}[${objs.join(`,${w1}`)}]${w2}}`;
    // A few mutations that break the JSON or the top-level shape.
    switch (mutation) {
      case 0:
        return text.slice(0, Math.max(0, text.length - 3));
      case 1:
        return text.replace('"ops"', '"opz"');
      case 2:
        return `${text.slice(0, -1)},"more":1}`;
      case 3:
        return text.replace('[', '{');
      case 4:
        return text + ' x';
      case 5:
        return `[${text}]`;
      default:
        return text;
    }
  });

describe('batch body parser', () => {
  it('reads the same ops after its staging grew for a big batch and was trimmed back', () => {
    const body = (n: number, base: number): string =>
      JSON.stringify({ ops: Array.from({ length: n }, (_, i) => (i % 2 === 0 ? { op: 'mention', user_id: String(base + (i >> 3)), channel_id: String(base * 3 + i) } : { op: 'ack', user_id: String(base + (i >> 3)), channel_id: String(base * 3 + i), message_id: String(i + 1), mention_count: i % 7 })) });
    const small = body(40, 1000);
    const big = body(MAX_BATCH_OPS, 5);
    const before = outcome(small, false);
    expect('words' in before && before.words.length).toBe(40 * OpWord.Size);
    const bigFast = outcome(big, false);
    expect(bigFast).toEqual(outcome(big, true));
    trimBatchStaging();
    expect(outcome(small, false)).toEqual(before);
    expect(outcome(big, false)).toEqual(bigFast);
    trimBatchStaging();
    trimBatchStaging();
    expect(outcome(small, false)).toEqual(before);
  });

  it('the fast reader agrees with JSON.parse + the schema on random bodies', () => {
    let fast = 0;
    fc.assert(
      fc.property(body, (text) => {
        if (readsFast(Buffer.from(text))) fast++;
        expect(outcome(text, false)).toEqual(outcome(text, true));
      }),
      { seed: 20261202, numRuns: 20_000 },
    );
    // The property is only worth something if both readers were exercised.
    expect(fast).toBeGreaterThan(2_000);
    expect(fast).toBeLessThan(18_000);
  });

  it('takes the shapes clients send without falling back', () => {
    const ops = [
      { op: 'ack', user_id: '18446744073709551615', channel_id: '2', message_id: '0', mention_count: 3, manual: true },
      { op: 'mention', user_id: '1', channel_id: '2' },
      { op: 'patch', user_id: '1', channel_id: '2', last_pin_timestamp: 1733100000000, flags: 4294967295 },
      { channel_id: '9', op: 'delete', user_id: '3' },
    ];
    expect(readsFast(Buffer.from(JSON.stringify({ ops })))).toBe(true);
    expect(readsFast(Buffer.from(JSON.stringify({ ops }, null, 2)))).toBe(true);
    const p = parseBatch(Buffer.from(JSON.stringify({ ops })));
    expect(p.ops.length).toBe(4);
    expect([0, 1, 2, 3].map((i) => p.userId(i))).toEqual(['18446744073709551615', '1', '1', '3']);
  });

  it('reads ids of every length (1-20 digits) to the same halves as BigInt, and refuses longer or larger ones', () => {
    const digits = (n: number) => fc.tuple(fc.integer({ min: 1, max: 9 }), fc.array(fc.integer({ min: 0, max: 9 }), { minLength: n - 1, maxLength: n - 1 })).map(([a, rest]) => String(a) + rest.join(''));
    fc.assert(
      fc.property(fc.integer({ min: 1, max: 21 }).chain(digits), (id) => {
        const text = `{"ops":[{"op":"get","user_id":"${id}","channel_id":"${id}"}]}`;
        const v = BigInt(id);
        if (v >= 1n << 64n) {
          expect(readsFast(Buffer.from(text))).toBe(false);
          return;
        }
        expect(readsFast(Buffer.from(text))).toBe(true);
        const w = parseBatch(Buffer.from(text)).ops.words;
        expect([w[OpWord.UserLo], w[OpWord.UserHi], w[OpWord.ChanLo], w[OpWord.ChanHi]]).toEqual([Number(v & 0xffffffffn), Number(v >> 32n), Number(v & 0xffffffffn), Number(v >> 32n)]);
      }),
      { seed: 5, numRuns: 3000 },
    );
  });

  it('answers the documented codes: broken JSON, schema, ids, kinds', () => {
    const code = (text: string) => (outcome(text, false) as { error?: string }).error;
    expect(code('')).toBe('INVALID_JSON');
    expect(code('{"ops":[')).toBe('INVALID_JSON');
    expect(code('{"ops":[]}')).toBe('INVALID_BODY');
    expect(code('{"ops":[{"op":"get","user_id":"1"}]}')).toBe('INVALID_BODY');
    expect(code('{"ops":[{"op":"get","user_id":"01","channel_id":"1"}]}')).toBe('INVALID_ID');
    expect(code('{"ops":[{"op":"get","user_id":"18446744073709551616","channel_id":"1"}]}')).toBe('INVALID_ID');
    expect(code('{"ops":[{"op":"get","user_id":"0","channel_id":"1"}]}')).toBe('INVALID_ID');
    expect(code('{"ops":[{"op":"get","user_id":"1","channel_id":"1","count":2}]}')).toBe('INVALID_BODY');
    expect(code('{"ops":[{"op":"ack","user_id":"1","channel_id":"1"}]}')).toBe('INVALID_BODY');
    expect(code('{"ops":[{"op":"patch","user_id":"1","channel_id":"1"}]}')).toBe('INVALID_BODY');
    expect(code('{"ops":[{"op":"summary","user_id":"1","channel_id":"1"}]}')).toBe('INVALID_BODY');
    expect(code('{"ops":[{"op":"get","user_id":"1"}]}')).toBe('INVALID_BODY');
    expect(outcome('{"ops":[{"op":"summary","user_id":"5"}]}', false)).toMatchObject({ userIds: ['5'], channelIds: [''] });
    const many = JSON.stringify({ ops: Array.from({ length: MAX_BATCH_OPS + 1 }, (_, i) => ({ op: 'get', user_id: String(i + 1), channel_id: '1' })) });
    expect(code(many)).toBe('INVALID_BODY');
    // Escapes and other number spellings mean the same as the plain ones.
    const plain = outcome('{"ops":[{"op":"mention","user_id":"12","channel_id":"3","count":10}]}', false);
    expect(outcome('{"ops":[{"op":"mention","user_id":"\\u0031\\u0032","channel_id":"3","count":1e1}]}', false)).toEqual(plain);
  });
});
