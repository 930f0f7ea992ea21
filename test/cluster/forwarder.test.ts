/**
 * The Forwarder alone: what a failure says about whether the request reached the owner.
 */
import type { IncomingHttpHeaders } from 'node:http';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Forwarder, type ForwardFailure, type ForwardSink } from '../../src/cluster/forward.js';
import { startStub, type Stub } from '../support/stub-server.js';
import { until } from '../support/until.js';

type Outcome = { answered: number; body: string } | { failed: ForwardFailure };

/** A sink that resolves with what it heard (tests only: a closure per request is fine here). */
function outcome(): { sink: ForwardSink; done: Promise<Outcome> } {
  let resolve: (o: Outcome) => void = () => {};
  const done = new Promise<Outcome>((r) => (resolve = r));
  return {
    done,
    sink: {
      onForwarded: (status: number, _h: IncomingHttpHeaders, body: Buffer) => resolve({ answered: status, body: body.toString() }),
      onForwardFailed: (code: ForwardFailure) => resolve({ failed: code }),
    },
  };
}

let silent: Stub;
beforeAll(async () => {
  silent = await startStub(() => {
    // takes every request, answers none
  });
});
afterAll(async () => {
  await silent.close();
});

describe('Forwarder', () => {
  it('a request still waiting for a connection at the deadline is not applied, and never goes out', async () => {
    // One connection to an owner that takes requests and answers none: the first request holds
    // it; when it is given up the next one takes the connection, and the ones behind that are
    // still waiting at their deadline.
    const f = new Forwarder('me', { timeoutMs: 300, connections: 1 });
    try {
      const paths = ['/r0', '/r1', '/r2', '/r3'];
      const outcomes = paths.map(() => outcome());
      for (let i = 0; i < paths.length; i++) f.forward(silent.url, 'POST', paths[i], { 'content-type': 'application/json' }, '{}', outcomes[i].sink);
      const ends = await Promise.all(outcomes.map((o) => o.done));
      expect(ends[0]).toEqual({ failed: 'FORWARD_FAILED' });
      expect(ends.filter((e) => 'failed' in e && e.failed === 'PARTITION_UNAVAILABLE').length).toBeGreaterThan(0);
      // Requests use the connection in order: once a later request has arrived, every earlier
      // one that went out has arrived too.
      const marker = outcome();
      f.forward(silent.url, 'GET', '/marker', {}, null, marker.sink);
      await until('the marker request at the owner', () => silent.requests.some((r) => r.path === '/marker'), 5000);
      const arrived = new Set(silent.requests.map((r) => r.path));
      for (let i = 0; i < paths.length; i++) {
        const end = ends[i];
        expect(end, paths[i]).toEqual({ failed: arrived.has(paths[i]) ? 'FORWARD_FAILED' : 'PARTITION_UNAVAILABLE' });
      }
      expect(silent.requests[0].headers['read-states-forwarded-by']).toBe('me');
      await marker.done;
    } finally {
      await f.close();
    }
  });

  it('once closed, refuses as not applied', async () => {
    const f = new Forwarder('me', { timeoutMs: 1000 });
    await f.close();
    const o = outcome();
    f.forward(silent.url, 'GET', '/x', {}, null, o.sink);
    expect(await o.done).toEqual({ failed: 'PARTITION_UNAVAILABLE' });
  });
});
