/**
 * The /v1/batch answer written as bytes (src/batch-answer.ts, src/json-bytes.ts) against the
 * string renderer it replaces (renderBatchOpResult, itself tested against JSON.parse): random
 * batches of every op kind, result records of every status with ids and counters of every width,
 * delivered in any order and spread over several reply buffers as several shards would send them.
 */
import fc from 'fast-check';
import type { FastifyReply } from 'fastify';
import { describe, expect, it } from 'vitest';
import { BatchAnswerSink } from '../../src/batch-answer.js';
import { parseBatch } from '../../src/batch-parser.js';
import { renderBatchOpResult } from '../../src/replies.js';
import { ResultStatus, ResultWord, RsWord } from '../../workers/protocol.js';

const u32 = fc.oneof(fc.constant(0), fc.constant(0xffffffff), fc.integer({ min: 0, max: 0xffffffff }), fc.integer({ min: 0, max: 999 }));
/** high words of 53-bit values (pins, versions, mention totals) */
const hi21 = fc.oneof(fc.constant(0), fc.constant(0x1fffff), fc.integer({ min: 0, max: 0x1fffff }));
const id = fc.oneof(fc.bigInt({ min: 1n, max: (1n << 64n) - 1n }), fc.bigInt({ min: 1n, max: 1n << 40n }), fc.bigInt({ min: 1n, max: 999n })).map(String);
const status = fc.constantFrom(
  ResultStatus.Ok,
  ResultStatus.Ok,
  ResultStatus.Ok,
  ResultStatus.NoContent,
  ResultStatus.NotFound,
  ResultStatus.Unavailable,
  ResultStatus.InsufficientStorage,
  ResultStatus.StoreBacklog,
  ResultStatus.UserLimit,
  ResultStatus.NotApplied,
);
const op = fc.record({
  kind: fc.constantFrom('get', 'ack', 'mention', 'patch', 'delete', 'summary'),
  user: id,
  channel: id,
  status,
  /** Ok with no read state (an op that answers only a status) */
  empty: fc.boolean(),
  words: fc.tuple(u32, u32, u32, u32, u32, u32, hi21, u32, u32, hi21),
});

/** Result words are 53-bit where the protocol says so; a summary uses the same record width. */
function bodyOf(o: { kind: string; user: string; channel: string }): Record<string, unknown> {
  const base: Record<string, unknown> = { op: o.kind, user_id: o.user };
  if (o.kind !== 'summary') base.channel_id = o.channel;
  if (o.kind === 'ack') base.message_id = '5';
  if (o.kind === 'patch') base.flags = 1;
  return base;
}

class Capture {
  headers: Record<string, string> = {};
  body: Buffer | null = null;
  header(k: string, v: string): this {
    this.headers[k] = v;
    return this;
  }
  send(b: Buffer): this {
    this.body = b;
    return this;
  }
}

describe('batch answer', () => {
  it('writes, byte for byte, what the string renderer writes, whatever the order and split of the replies', () => {
    fc.assert(
      fc.property(fc.array(op, { minLength: 1, maxLength: 30 }), fc.boolean(), fc.nat(), (ops, pretty, seed) => {
        const text = JSON.stringify({ ops: ops.map(bodyOf) }, null, pretty ? 1 : 0);
        const batch = parseBatch(Buffer.from(text));
        // Each op's result record, in a reply buffer of its own shard (one of 3), at some offset.
        const records = ops.map((o) => {
          const n = o.status === ResultStatus.Ok && !(o.empty && o.kind !== 'summary') ? 1 : 0;
          const r = new Uint32Array(ResultWord.HeaderSize + n * RsWord.Size);
          r[ResultWord.Status] = o.status;
          r[ResultWord.Count] = n;
          if (n === 1) r.set(o.words, ResultWord.HeaderSize);
          return r;
        });
        const expected = '{"results":[' + records.map((r, i) => renderBatchOpResult(batch.userId(i), batch.channelId(i), r, 0)).join(',') + ']}';
        const replies = [0, 1, 2].map((shard) => {
          const mine = records.map((r, i) => ({ r, i })).filter(({ i }) => (i + seed) % 3 === shard);
          const buf = new Uint32Array(3 + mine.reduce((s, { r }) => s + r.length, 0));
          let at = 3;
          const placed = mine.map(({ r, i }) => {
            buf.set(r, at);
            at += r.length;
            return { i, at: at - r.length };
          });
          return { buf, placed };
        });
        const reply = new Capture();
        const sink = new BatchAnswerSink(reply as unknown as FastifyReply, batch);
        // Shards answer in any order; each shard's results come in its own request order.
        for (let k = 0; k < 3; k++) {
          const { buf, placed } = replies[(k + seed) % 3];
          for (const { i, at } of placed) sink.onResult(i, buf, at);
        }
        expect(reply.body).not.toBeNull();
        expect((reply.body as Buffer).toString('latin1')).toBe(expected);
        expect(reply.headers['content-type']).toMatch(/^application\/json/);
      }),
      { seed: 777, numRuns: 1500 },
    );
  });

  it('answers nothing until the last result is in, then exactly once', () => {
    const batch = parseBatch(Buffer.from('{"ops":[{"op":"get","user_id":"1","channel_id":"2"},{"op":"summary","user_id":"3"}]}'));
    let sends = 0;
    const reply = { header: () => reply, send: () => sends++ } as unknown as FastifyReply;
    const sink = new BatchAnswerSink(reply, batch);
    const r = new Uint32Array([0, ResultStatus.NotFound, 0, 0]);
    sink.onResult(1, r, 0);
    expect(sends).toBe(0);
    sink.onResult(0, r, 0);
    expect(sends).toBe(1);
  });

  it('renders an answer larger than the scratch buffer it starts with', () => {
    const n = 10_000;
    const ops = Array.from({ length: n }, (_, i) => ({ op: 'get', user_id: '18446744073709551615', channel_id: String(10_000_000_000_000_000_000n + BigInt(i)) }));
    const batch = parseBatch(Buffer.from(JSON.stringify({ ops })));
    const reply = new Capture();
    const sink = new BatchAnswerSink(reply as unknown as FastifyReply, batch);
    const r = new Uint32Array(ResultWord.HeaderSize + RsWord.Size);
    r[ResultWord.Status] = ResultStatus.Ok;
    r[ResultWord.Count] = 1;
    r.fill(0xffffffff, ResultWord.HeaderSize);
    r[ResultWord.HeaderSize + RsWord.PinHi] = 0x1fffff;
    r[ResultWord.HeaderSize + RsWord.VerHi] = 0x1fffff;
    for (let i = 0; i < n; i++) sink.onResult(i, r, 0);
    const answer = JSON.parse((reply.body as Buffer).toString()) as { results: { read_state: { channel_id: string; last_message_id: string; version: number } }[] };
    expect(answer.results).toHaveLength(n);
    expect(answer.results[n - 1].read_state.channel_id).toBe(ops[n - 1].channel_id);
    expect(answer.results[0].read_state.last_message_id).toBe('18446744073709551615');
    expect(answer.results[0].read_state.version).toBe(Number.MAX_SAFE_INTEGER);
    // The big answer took the grown scratch with it: the next answer must not write into it.
    const kept = Buffer.from(reply.body as Buffer);
    const small = parseBatch(Buffer.from('{"ops":[{"op":"get","user_id":"1","channel_id":"2"}]}'));
    const next = new Capture();
    new BatchAnswerSink(next as unknown as FastifyReply, small).onResult(0, r, 0);
    expect(JSON.parse((next.body as Buffer).toString()).results).toHaveLength(1);
    expect((reply.body as Buffer).equals(kept)).toBe(true);
  });
});
