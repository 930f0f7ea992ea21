/**
 * The HTTP API contract, written once and run against every implementation of it (the service,
 * and the naive comparison service in bench/), over real HTTP.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { call, type HttpResult } from '../support/http-client.js';
import { ReferenceModel, type ModelOp, type ModelState } from '../support/reference-model.js';

export interface Limits {
  capacity?: number;
  maxUsers?: number;
  maxQueue?: number;
  shards?: number;
}

export interface Target {
  url: string;
  close(): Promise<void>;
}

export type Starter = (limits: Limits) => Promise<Target>;

interface RS {
  user_id: string;
  channel_id: string;
  last_message_id: string;
  mention_count: number;
  last_pin_timestamp: number;
  flags: number;
  version: number;
}

const MAX_ID = '18446744073709551615';

/** A small deterministic PRNG (mulberry32) so failures replay. */
export function rng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

function toWire(user: bigint, s: ModelState): RS {
  return {
    user_id: user.toString(),
    channel_id: s.channel_id.toString(),
    last_message_id: s.last_message_id.toString(),
    mention_count: s.mention_count,
    last_pin_timestamp: s.last_pin_timestamp,
    flags: s.flags,
    version: s.version,
  };
}

/** Sends a model op over its single-op route. */
export function sendOp(url: string, o: ModelOp): Promise<HttpResult> {
  const path = `/v1/users/${o.user}/read-states/${o.channel}`;
  switch (o.op) {
    case 'get':
      return call(url, 'GET', path);
    case 'delete':
      return call(url, 'DELETE', path);
    case 'ack':
      return call(url, 'POST', path + '/ack', {
        message_id: o.message.toString(),
        ...(o.mentionCount !== undefined ? { mention_count: o.mentionCount } : {}),
        ...(o.manual !== undefined ? { manual: o.manual } : {}),
      });
    case 'mention':
      return call(url, 'POST', path + '/mentions', {
        ...(o.message !== undefined ? { message_id: o.message.toString() } : {}),
        ...(o.count !== undefined ? { count: o.count } : {}),
      });
    case 'patch':
      return call(url, 'PATCH', path, {
        ...(o.pin !== undefined ? { last_pin_timestamp: o.pin } : {}),
        ...(o.flags !== undefined ? { flags: o.flags } : {}),
      });
  }
}

export function randomOp(r: () => number, users: bigint[], channels: bigint[]): ModelOp {
  const user = users[Math.floor(r() * users.length)];
  const channel = channels[Math.floor(r() * channels.length)];
  const message = BigInt(Math.floor(r() * 50));
  const k = r();
  if (k < 0.1) return { op: 'get', user, channel };
  if (k < 0.35) return { op: 'ack', user, channel, message, mentionCount: Math.floor(r() * 3), manual: r() < 0.2 };
  if (k < 0.75) return r() < 0.5 ? { op: 'mention', user, channel, message: message + 1n, count: 1 + Math.floor(r() * 3) } : { op: 'mention', user, channel };
  if (k < 0.9) return { op: 'patch', user, channel, pin: Math.floor(r() * 1000), flags: r() < 0.5 ? Math.floor(r() * 16) : undefined };
  return { op: 'delete', user, channel };
}

/**
 * Checks an answer against the model's. Versions are the implementation's own numbers (the
 * service's are timestamps of the change): a change must raise the read state's version, an op
 * that changes nothing must keep it. The version seen is written back into the model, so its
 * later lists compare versions exactly.
 */
function expectMatches(res: HttpResult, user: bigint, expected: ReturnType<ReferenceModel['apply']>, model: ReferenceModel): void {
  expect(res.status).toBe(expected.status);
  if (expected.status !== 200) return;
  const body = res.body as RS;
  const want = toWire(user, expected.state!);
  expect({ ...body, version: 0 }).toEqual({ ...want, version: 0 });
  // the model counts: its version before the op is the one seen last (0 for a new read state)
  const before = expected.changed ? want.version - 1 : want.version;
  if (expected.changed) expect(body.version).toBeGreaterThan(before);
  else expect(body.version).toBe(before);
  model.users.get(user)!.get(expected.state!.channel_id)!.version = body.version;
}

/** Versions of successive answers: `same[i]` says answer i must keep the version of answer i-1. */
function expectVersions(bodies: unknown[], same: boolean[]): void {
  for (let i = 1; i < bodies.length; i++) {
    const prev = (bodies[i - 1] as RS).version;
    const cur = (bodies[i] as RS).version;
    if (same[i]) expect(cur, `answer ${i}`).toBe(prev);
    else expect(cur, `answer ${i}`).toBeGreaterThan(prev);
  }
}

/** A list answer: the service adds the user's version and `full`; the rest is the same everywhere. */
function listOf(body: unknown): { user_id: string; read_states: RS[] } {
  const b = body as { user_id: string; read_states: RS[] };
  return { user_id: b.user_id, read_states: b.read_states };
}

export function defineApiSuite(name: string, start: Starter): void {
  describe(`${name}: HTTP API`, () => {
    let t: Target;
    let url: string;
    beforeAll(async () => {
      t = await start({});
      url = t.url;
    });
    afterAll(async () => {
      await t.close();
    });

    it('answers /health and /ready', async () => {
      expect((await call(url, 'GET', '/health')).body).toEqual({ status: 'ok' });
      const ready = await call(url, 'GET', '/ready');
      expect(ready.status).toBe(200);
      expect(ready.body).toEqual({ status: 'ready' });
    });

    it('creates on mention, acks forward only, and versions only changes', async () => {
      const p = '/v1/users/100/read-states/200';
      expect((await call(url, 'GET', p)).status).toBe(404);
      const seen: unknown[] = [];
      const same: boolean[] = [];
      const step = (res: HttpResult, unchanged: boolean): void => {
        seen.push(res.body);
        same.push(unchanged);
      };
      let r = await call(url, 'POST', p + '/mentions', {});
      expect(r.status).toBe(200);
      expect({ ...(r.body as RS), version: 0 }).toEqual({ user_id: '100', channel_id: '200', last_message_id: '0', mention_count: 1, last_pin_timestamp: 0, flags: 0, version: 0 });
      expect((r.body as RS).version).toBeGreaterThan(0);
      step(r, false);
      r = await call(url, 'POST', p + '/mentions', { count: 4 });
      expect(r.body).toMatchObject({ mention_count: 5 });
      step(r, false);
      r = await call(url, 'POST', p + '/ack', { message_id: '50', mention_count: 1 });
      expect(r.body).toMatchObject({ last_message_id: '50', mention_count: 1 });
      step(r, false);
      // older and equal acks change nothing and still answer 200 with the current state
      for (const m of ['49', '50']) {
        r = await call(url, 'POST', p + '/ack', { message_id: m });
        expect(r.status).toBe(200);
        expect(r.body).toMatchObject({ last_message_id: '50', mention_count: 1 });
        step(r, true);
      }
      // a mention of a message already read does not count
      r = await call(url, 'POST', p + '/mentions', { message_id: '50' });
      expect(r.body).toMatchObject({ mention_count: 1 });
      step(r, true);
      r = await call(url, 'POST', p + '/mentions', { message_id: '51', count: 2 });
      expect(r.body).toMatchObject({ mention_count: 3 });
      step(r, false);
      // manual ack goes backwards (mark as unread)
      r = await call(url, 'POST', p + '/ack', { message_id: '10', mention_count: 7, manual: true });
      expect(r.body).toMatchObject({ last_message_id: '10', mention_count: 7 });
      step(r, false);
      r = await call(url, 'POST', p + '/ack', { message_id: '10', mention_count: 7, manual: true });
      step(r, true);
      r = await call(url, 'GET', p);
      expect(r.body).toMatchObject({ last_message_id: '10', mention_count: 7 });
      step(r, true);
      expectVersions(seen, same);
    });

    it('patches pins forward only and flags as given', async () => {
      const p = '/v1/users/101/read-states/201';
      const r1 = await call(url, 'PATCH', p, { last_pin_timestamp: 1700000000000, flags: 4294967295 });
      expect(r1.body).toMatchObject({ last_pin_timestamp: 1700000000000, flags: 4294967295 });
      const r2 = await call(url, 'PATCH', p, { last_pin_timestamp: 1600000000000 });
      expect(r2.body).toMatchObject({ last_pin_timestamp: 1700000000000 });
      const r3 = await call(url, 'PATCH', p, { last_pin_timestamp: 9007199254740991, flags: 0 });
      expect(r3.body).toMatchObject({ last_pin_timestamp: 9007199254740991, flags: 0 });
      expectVersions([r1.body, r2.body, r3.body], [false, true, false]);
      const r = await call(url, 'PATCH', p, {});
      expect(r.status).toBe(400);
      expect(r.body).toMatchObject({ error: 'EMPTY_PATCH' });
    });

    it('deletes: 204, then 404, and a re-created read state starts again', async () => {
      const p = '/v1/users/102/read-states/202';
      const first = await call(url, 'POST', p + '/mentions', { count: 3 });
      expect((await call(url, 'DELETE', p)).status).toBe(204);
      const again = await call(url, 'DELETE', p);
      expect(again.status).toBe(404);
      expect(again.body).toMatchObject({ error: 'NOT_FOUND' });
      expect((await call(url, 'GET', p)).status).toBe(404);
      const r = await call(url, 'POST', p + '/mentions', {});
      expect(r.body).toMatchObject({ mention_count: 1 });
      // a new read state: its version is a change's, above what it had before the delete
      expect((r.body as RS).version).toBeGreaterThan((first.body as RS).version);
    });

    it('lists a user ordered by channel id as unsigned 64-bit, and [] for an unknown user', async () => {
      const channels = ['9223372036854775808', '5', MAX_ID, '4294967296', '4294967295', '1'];
      for (const c of channels) await call(url, 'POST', `/v1/users/103/read-states/${c}/ack`, { message_id: MAX_ID });
      const r = await call(url, 'GET', '/v1/users/103/read-states');
      expect(r.status).toBe(200);
      const body = r.body as { user_id: string; read_states: RS[] };
      expect(body.user_id).toBe('103');
      expect(body.read_states.map((s) => s.channel_id)).toEqual(['1', '5', '4294967295', '4294967296', '9223372036854775808', MAX_ID]);
      expect(body.read_states.every((s) => s.last_message_id === MAX_ID)).toBe(true);
      expect(listOf((await call(url, 'GET', '/v1/users/999999/read-states')).body)).toEqual({ user_id: '999999', read_states: [] });
    });

    it('acks in bulk in request order', async () => {
      await call(url, 'POST', '/v1/users/104/read-states/2/mentions', { count: 9 });
      await call(url, 'POST', '/v1/users/104/read-states/3/ack', { message_id: '100' });
      const r = await call(url, 'POST', '/v1/users/104/read-states/ack-bulk', {
        read_states: [
          { channel_id: '3', message_id: '50' },
          { channel_id: '2', message_id: '10' },
          { channel_id: '1', message_id: '0' },
        ],
      });
      expect(r.status).toBe(200);
      const list = (r.body as { read_states: RS[] }).read_states;
      expect(list.map((s) => [s.channel_id, s.last_message_id, s.mention_count])).toEqual([
        ['3', '100', 0],
        ['2', '10', 0],
        ['1', '0', 0],
      ]);
    });

    it('fans a mention out to many users, counting duplicates once', async () => {
      await call(url, 'POST', '/v1/users/301/read-states/77/ack', { message_id: '500' });
      const r = await call(url, 'POST', '/v1/channels/77/mentions', { message_id: '400', user_ids: ['300', '301', '302', '300', '302'], count: 2 });
      expect(r.status).toBe(200);
      // 301 already read past message 400: it does not change
      expect(r.body).toEqual({ updated: 2 });
      expect((await call(url, 'GET', '/v1/users/300/read-states/77')).body).toMatchObject({ mention_count: 2 });
      expect((await call(url, 'GET', '/v1/users/301/read-states/77')).body).toMatchObject({ mention_count: 0 });
      expect((await call(url, 'GET', '/v1/users/302/read-states/77')).body).toMatchObject({ mention_count: 2 });
    });

    it('runs a batch in request order with per-op statuses', async () => {
      const r = await call(url, 'POST', '/v1/batch', {
        ops: [
          { op: 'mention', user_id: '400', channel_id: '1' },
          { op: 'get', user_id: '401', channel_id: '1' },
          { op: 'ack', user_id: '400', channel_id: '1', message_id: '9', mention_count: 2 },
          { op: 'patch', user_id: '402', channel_id: '5', flags: 3 },
          { op: 'delete', user_id: '400', channel_id: '1' },
          { op: 'delete', user_id: '400', channel_id: '1' },
          { op: 'mention', user_id: '400', channel_id: '1', message_id: '3', count: 5 },
        ],
      });
      expect(r.status).toBe(200);
      const results = (r.body as { results: { status: number; read_state?: RS; error?: string }[] }).results;
      expect(results.map((x) => x.status)).toEqual([200, 404, 200, 200, 204, 404, 200]);
      expect(results[0].read_state).toMatchObject({ user_id: '400', mention_count: 1 });
      expect(results[1].error).toBe('NOT_FOUND');
      expect(results[2].read_state).toMatchObject({ last_message_id: '9', mention_count: 2 });
      expect(results[2].read_state!.version).toBeGreaterThan(results[0].read_state!.version);
      expect(results[3].read_state).toMatchObject({ user_id: '402', channel_id: '5', flags: 3 });
      expect(results[5].error).toBe('NOT_FOUND');
      expect(results[6].read_state).toMatchObject({ last_message_id: '0', mention_count: 5 });
      expect(results[6].read_state!.version).toBeGreaterThan(results[2].read_state!.version);
    });

    it('rejects a whole batch when one op is invalid, naming its index, and applies nothing', async () => {
      const r = await call(url, 'POST', '/v1/batch', {
        ops: [
          { op: 'mention', user_id: '500', channel_id: '1' },
          { op: 'ack', user_id: '500', channel_id: '1' },
        ],
      });
      expect(r.status).toBe(400);
      expect(r.body).toMatchObject({ error: 'INVALID_BODY' });
      expect((r.body as { message: string }).message).toContain('ops[1]');
      const r2 = await call(url, 'POST', '/v1/batch', {
        ops: [
          { op: 'mention', user_id: '500', channel_id: '1' },
          { op: 'get', user_id: '500', channel_id: '1' },
          { op: 'mention', user_id: '18446744073709551616', channel_id: '1' },
        ],
      });
      expect(r2.status).toBe(400);
      expect(r2.body).toMatchObject({ error: 'INVALID_ID' });
      expect(JSON.stringify(r2.body)).toMatch(/ops[[/]2/);
      const r3 = await call(url, 'POST', '/v1/batch', { ops: [{ op: 'get', user_id: '500', channel_id: '1', count: 2 }] });
      expect(r3.status).toBe(400);
      expect((r3.body as { message: string }).message).toBe('ops[0]: get does not take count');
      const r4 = await call(url, 'POST', '/v1/batch', {
        ops: [
          { op: 'patch', user_id: '500', channel_id: '1', flags: 1 },
          { op: 'ack', user_id: '500', channel_id: '1', message_id: '5', manual: true, flags: 1, count: 1 },
        ],
      });
      expect(r4.status).toBe(400);
      expect((r4.body as { message: string }).message).toBe('ops[1]: ack does not take count');
      expect(listOf((await call(url, 'GET', '/v1/users/500/read-states')).body)).toEqual({ user_id: '500', read_states: [] });
    });

    describe('errors', () => {
      const p = '/v1/users/600/read-states/700';
      it.each([
        ['user id 0', 'POST', '/v1/users/0/read-states/1/mentions', {}, 'INVALID_ID'],
        ['channel id 2^64', 'GET', '/v1/users/1/read-states/18446744073709551616', undefined, 'INVALID_ID'],
        ['leading zero', 'GET', '/v1/users/01/read-states', undefined, 'INVALID_ID'],
        ['21 digits', 'GET', '/v1/users/123456789012345678901/read-states', undefined, 'INVALID_ID'],
        ['sign', 'GET', '/v1/users/-1/read-states', undefined, 'INVALID_ID'],
        ['message id as a number', 'POST', p + '/ack', { message_id: 5 }, 'INVALID_BODY'],
        ['message id over 2^64-1', 'POST', p + '/ack', { message_id: '18446744073709551616' }, 'INVALID_ID'],
        ['count as a string', 'POST', p + '/mentions', { count: '5' }, 'INVALID_BODY'],
        ['count 0', 'POST', p + '/mentions', { count: 0 }, 'INVALID_BODY'],
        ['count 1001', 'POST', p + '/mentions', { count: 1001 }, 'INVALID_BODY'],
        ['mention message id 0', 'POST', p + '/mentions', { message_id: '0' }, 'INVALID_ID'],
        ['unknown field', 'POST', p + '/ack', { message_id: '1', extra: true }, 'INVALID_BODY'],
        ['negative mention count', 'POST', p + '/ack', { message_id: '1', mention_count: -1 }, 'INVALID_BODY'],
        ['mention count 2^31', 'POST', p + '/ack', { message_id: '1', mention_count: 2147483648 }, 'INVALID_BODY'],
        ['manual as a string', 'POST', p + '/ack', { message_id: '1', manual: 'true' }, 'INVALID_BODY'],
        ['pin 2^53', 'PATCH', p, { last_pin_timestamp: 9007199254740992 }, 'INVALID_BODY'],
        ['flags 2^32', 'PATCH', p, { flags: 4294967296 }, 'INVALID_BODY'],
        ['fractional flags', 'PATCH', p, { flags: 1.5 }, 'INVALID_BODY'],
        ['body is an array', 'POST', p + '/ack', [], 'INVALID_BODY'],
        ['missing body', 'POST', p + '/ack', undefined, 'INVALID_BODY'],
        ['empty ack-bulk', 'POST', '/v1/users/600/read-states/ack-bulk', { read_states: [] }, 'INVALID_BODY'],
        ['empty fan-out', 'POST', '/v1/channels/700/mentions', { message_id: '1', user_ids: [] }, 'INVALID_BODY'],
        ['unknown batch op', 'POST', '/v1/batch', { ops: [{ op: 'nuke', user_id: '1', channel_id: '1' }] }, 'INVALID_BODY'],
        ['empty batch', 'POST', '/v1/batch', { ops: [] }, 'INVALID_BODY'],
        ['malformed JSON', 'POST', p + '/ack', '{"message_id": ', 'INVALID_JSON'],
      ])('%s -> %s', async (_label, method, path, body, code) => {
        const r = await call(url, method, path, body);
        expect(r.status).toBe(400);
        expect(r.body).toMatchObject({ error: code });
        expect(typeof (r.body as { message: unknown }).message).toBe('string');
        expect((await call(url, 'GET', p)).status).toBe(404);
      });

      it('404 ROUTE_NOT_FOUND for unknown routes and methods', async () => {
        for (const [m, path] of [['GET', '/nope'], ['PUT', p], ['GET', '/v1/users/1/read-states/2/ack']]) {
          const r = await call(url, m, path, m === 'PUT' ? {} : undefined);
          expect(r.status).toBe(404);
          expect(r.body).toMatchObject({ error: 'ROUTE_NOT_FOUND' });
        }
      });

      it('413 BODY_TOO_LARGE over 1 MiB', async () => {
        const r = await call(url, 'POST', p + '/ack', JSON.stringify({ message_id: '1', pad: 'x'.repeat(1024 * 1024) }));
        expect(r.status).toBe(413);
        expect(r.body).toMatchObject({ error: 'BODY_TOO_LARGE' });
      });

      it('415 UNSUPPORTED_MEDIA_TYPE for a body that is not JSON', async () => {
        const r = await call(url, 'POST', p + '/ack', 'message_id=1', { 'content-type': 'application/x-www-form-urlencoded' });
        expect(r.status).toBe(415);
        expect(r.body).toMatchObject({ error: 'UNSUPPORTED_MEDIA_TYPE' });
        expect((await call(url, 'GET', p)).status).toBe(404);
      });
    });

    it('1000 concurrent mention increments on one read state give exactly 1000', async () => {
      const p = '/v1/users/800/read-states/900';
      const all = await Promise.all(Array.from({ length: 1000 }, () => call(url, 'POST', p + '/mentions', {})));
      expect(all.every((r) => r.status === 200)).toBe(true);
      const versions = new Set(all.map((r) => (r.body as RS).version));
      expect(versions.size).toBe(1000); // every response shows the state right after its own op
      const last = Math.max(...all.map((r) => (r.body as RS).version));
      expect((await call(url, 'GET', p)).body).toMatchObject({ mention_count: 1000, version: last });
    });

    it('200 concurrent clients over many users match the reference model', async () => {
      const model = new ReferenceModel();
      const clients = 200;
      const opsPerClient = 25;
      // Each client owns its users (its ops apply in its order); all share the channels.
      await Promise.all(
        Array.from({ length: clients }, async (_, c) => {
          const r = rng(1000 + c);
          const users = [BigInt(10_000 + c * 3), BigInt(10_000 + c * 3 + 1), BigInt(10_000 + c * 3 + 2)];
          const channels = [1n, 2n, 3n, 4294967296n];
          for (let i = 0; i < opsPerClient; i++) {
            const o = randomOp(r, users, channels);
            const expected = model.apply(o);
            const res = await sendOp(url, o);
            expectMatches(res, o.user, expected, model);
          }
        }),
      );
      for (const [user] of model.users) {
        const res = await call(url, 'GET', `/v1/users/${user}/read-states`);
        expect((res.body as { read_states: RS[] }).read_states).toEqual(model.all(user).map((s) => toWire(user, s)));
      }
    });

    it('a malformed-request fuzz run changes nothing and leaves the service answering', async () => {
      const watched = '/v1/users/850/read-states/950';
      await call(url, 'POST', watched + '/ack', { message_id: '77', mention_count: 3 });
      const before = (await call(url, 'GET', watched)).body;
      const r = rng(42);
      const garbage = (): unknown => {
        const k = Math.floor(r() * 10);
        switch (k) {
          case 0: return '{"message_id": "1"';
          case 1: return { message_id: 77 };
          case 2: return { message_id: '1'.repeat(21) };
          case 3: return { count: r() * 1e12 };
          case 4: return { message_id: '78', mention_count: -1 };
          case 5: return '{"a":' + '['.repeat(2000) + ']'.repeat(2000) + '}';
          case 6: return 'null';
          case 7: return { last_pin_timestamp: -1 };
          case 8: return { ops: [{ op: 'ack', user_id: '850', channel_id: '950', message_id: '99' }, { op: 'ack' }] };
          default: return '\u0000\uffff';
        }
      };
      const paths = [watched + '/ack', watched + '/mentions', watched, '/v1/batch', '/v1/channels/950/mentions', '/v1/users/850/read-states/ack-bulk'];
      for (let i = 0; i < 400; i++) {
        const path = paths[Math.floor(r() * paths.length)];
        const method = path === watched ? 'PATCH' : 'POST';
        const res = await call(url, method, path, garbage());
        expect(res.status).toBeGreaterThanOrEqual(400);
        expect(res.status).toBeLessThan(500);
        expect(typeof (res.body as { error: unknown }).error).toBe('string');
      }
      expect((await call(url, 'GET', watched)).body).toEqual(before);
      expect((await call(url, 'GET', '/health')).status).toBe(200);
    });
  });

  describe(`${name}: limits`, () => {
    it('evicts least recently used users and brings them back intact', async () => {
      const t = await start({ capacity: 64, maxUsers: 16, shards: 2 });
      try {
        const model = new ReferenceModel();
        const r = rng(7);
        const users = Array.from({ length: 120 }, (_, i) => BigInt(20_000 + i));
        const channels = [1n, 2n, 3n];
        for (let i = 0; i < 1500; i++) {
          const o = randomOp(r, users, channels);
          expectMatches(await sendOp(t.url, o), o.user, model.apply(o), model);
        }
        for (const user of users) {
          const res = await call(t.url, 'GET', `/v1/users/${user}/read-states`);
          expect((res.body as { read_states: RS[] }).read_states).toEqual(model.all(user).map((s) => toWire(user, s)));
        }
      } finally {
        await t.close();
      }
    });

    it('507 USER_TOO_LARGE when one user outgrows their shard; others are unaffected', async () => {
      const t = await start({ capacity: 4, maxUsers: 4, shards: 1 });
      try {
        for (let c = 1; c <= 4; c++) expect((await call(t.url, 'POST', `/v1/users/1/read-states/${c}/mentions`, {})).status).toBe(200);
        const r = await call(t.url, 'POST', '/v1/users/1/read-states/5/mentions', {});
        expect(r.status).toBe(507);
        expect(r.body).toMatchObject({ error: 'USER_TOO_LARGE' });
        // existing read states of that user still work, and other users evict it when they need room
        expect((await call(t.url, 'POST', '/v1/users/1/read-states/4/mentions', {})).body).toMatchObject({ mention_count: 2 });
        expect((await call(t.url, 'POST', '/v1/users/2/read-states/1/mentions', {})).status).toBe(200);
        expect((await call(t.url, 'GET', '/v1/users/1/read-states/4')).body).toMatchObject({ mention_count: 2 });
      } finally {
        await t.close();
      }
    });

    it('503 SHARD_OVERLOADED with Retry-After when a shard queue is over its bound', async () => {
      const t = await start({ maxQueue: 4, shards: 1 });
      try {
        const ops = Array.from({ length: 5 }, (_, i) => ({ op: 'mention', user_id: '1', channel_id: String(i + 1) }));
        const r = await call(t.url, 'POST', '/v1/batch', { ops });
        expect(r.status).toBe(503);
        expect(r.body).toMatchObject({ error: 'SHARD_OVERLOADED' });
        expect(Number(r.headers.get('retry-after'))).toBeGreaterThan(0);
        expect(listOf((await call(t.url, 'GET', '/v1/users/1/read-states')).body)).toEqual({ user_id: '1', read_states: [] });
        // many concurrent single ops: some are refused, none is half-applied
        const all = await Promise.all(Array.from({ length: 50 }, () => call(t.url, 'POST', '/v1/users/2/read-states/1/mentions', {})));
        const ok = all.filter((x) => x.status === 200).length;
        expect(ok + all.filter((x) => x.status === 503).length).toBe(50);
        expect((await call(t.url, 'GET', '/v1/users/2/read-states/1')).body).toMatchObject({ mention_count: ok });
      } finally {
        await t.close();
      }
    });
  });
}
