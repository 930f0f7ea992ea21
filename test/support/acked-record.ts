/**
 * A load client that keeps its own record of what the service acknowledged, for fault tests: the
 * service is killed, restarted, and every acknowledged read state is compared with the record.
 *
 * Each worker owns its users (u % workers), and sends one request at a time, so the answers of one
 * read state arrive in the order they were applied: the last answer is the state to expect. A read
 * state whose request got no clear answer (a 503, a dropped connection, killed in flight) is
 * uncertain until a later answer shows its state again; uncertain ones are not compared.
 */
import { Agent, request } from 'node:http';

export interface Expected {
  deleted: boolean;
  lastMessageId: string;
  mentionCount: number;
  version: number;
}

interface WireState {
  channel_id: string;
  last_message_id: string;
  mention_count: number;
  version: number;
}

export interface LoadOptions {
  workers: number;
  users: number;
  channels: number;
  /** first user id (so that rounds can use fresh users or the same ones) */
  userBase: number;
}

function post(agent: Agent, base: URL, method: string, path: string, body: unknown): Promise<{ status: number; body: unknown }> {
  return new Promise((resolve, reject) => {
    const data = body === undefined ? undefined : JSON.stringify(body);
    const req = request(
      { host: base.hostname, port: base.port, method, path, agent, headers: data === undefined ? {} : { 'content-type': 'application/json', 'content-length': Buffer.byteLength(data) } },
      (res) => {
        let text = '';
        res.setEncoding('utf8');
        res.on('data', (d: string) => (text += d));
        res.on('end', () => resolve({ status: res.statusCode ?? 0, body: text.length > 0 ? (JSON.parse(text) as unknown) : null }));
        res.on('error', reject);
      },
    );
    req.on('error', reject);
    req.end(data);
  });
}

export class AckedRecord {
  readonly expected = new Map<string, Expected>();
  readonly uncertain = new Set<string>();
  acked = 0;
  unclear = 0;
  /** answers that said the op was not applied */
  notApplied = 0;
  private messageSeq = 1000;

  private key(u: number, c: number): string {
    return `${u}/${c}`;
  }

  private seen(u: number, rs: WireState): void {
    const k = this.key(u, Number(rs.channel_id));
    this.expected.set(k, { deleted: false, lastMessageId: rs.last_message_id, mentionCount: rs.mention_count, version: rs.version });
    this.uncertain.delete(k);
    this.acked++;
  }

  private gone(u: number, c: number): void {
    const k = this.key(u, c);
    this.expected.set(k, { deleted: true, lastMessageId: '0', mentionCount: 0, version: 0 });
    this.uncertain.delete(k);
    this.acked++;
  }

  /** An answer that says "not applied" leaves the record as it was: the comparison checks that claim. */
  private refused(u: number, c: number, body: unknown): void {
    if (typeof body === 'object' && body !== null && (body as { applied?: unknown }).applied === false) {
      this.notApplied++;
      return;
    }
    this.unknown(u, c);
  }

  private unknown(u: number, c: number): void {
    this.uncertain.add(this.key(u, c));
    this.unclear++;
  }

  /** Runs `o.workers` sequential clients until `stop()` returns true; resolves when all have ended. */
  async run(url: string, o: LoadOptions, stop: () => boolean): Promise<void> {
    const base = new URL(url);
    const agent = new Agent({ keepAlive: true, maxSockets: o.workers });
    const worker = async (w: number): Promise<void> => {
      let seed = (w + 1) * 2654435761;
      const rnd = (n: number): number => {
        seed = (seed * 1103515245 + 12345) >>> 0;
        return seed % n;
      };
      const pickUser = (): number => o.userBase + w + o.workers * rnd(Math.max(1, Math.floor(o.users / o.workers)));
      while (!stop()) {
        const kind = rnd(100);
        if (kind < 30) await this.batch(agent, base, pickUser, rnd, o.channels);
        else await this.single(agent, base, pickUser(), 1 + rnd(o.channels), kind);
      }
    };
    await Promise.all(Array.from({ length: o.workers }, (_, w) => worker(w)));
    agent.destroy();
  }

  private async single(agent: Agent, base: URL, u: number, c: number, kind: number): Promise<void> {
    const path = `/v1/users/${u}/read-states/${c}`;
    try {
      if (kind < 65) {
        const r = await post(agent, base, 'POST', `${path}/mentions`, {});
        if (r.status === 200) this.seen(u, r.body as WireState);
        else this.refused(u, c, r.body);
      } else if (kind < 93) {
        const r = await post(agent, base, 'POST', `${path}/ack`, { message_id: String(this.messageSeq++) });
        if (r.status === 200) this.seen(u, r.body as WireState);
        else this.refused(u, c, r.body);
      } else {
        const r = await post(agent, base, 'DELETE', path, undefined);
        if (r.status === 204 || r.status === 404) this.gone(u, c);
        else this.refused(u, c, r.body);
      }
    } catch {
      this.unknown(u, c);
    }
  }

  private async batch(agent: Agent, base: URL, pickUser: () => number, rnd: (n: number) => number, channels: number): Promise<void> {
    const ops: { op: string; user_id: string; channel_id: string; message_id?: string }[] = [];
    const keys: [number, number][] = [];
    for (let i = 0; i < 20; i++) {
      const u = pickUser();
      const c = 1 + rnd(channels);
      const ack = rnd(3) === 0;
      ops.push(ack ? { op: 'ack', user_id: String(u), channel_id: String(c), message_id: String(this.messageSeq++) } : { op: 'mention', user_id: String(u), channel_id: String(c) });
      keys.push([u, c]);
    }
    try {
      const r = await post(agent, base, 'POST', '/v1/batch', { ops });
      if (r.status !== 200) {
        for (const [u, c] of keys) this.refused(u, c, r.body);
        return;
      }
      const results = (r.body as { results: { status: number; read_state?: WireState; applied?: boolean | null }[] }).results;
      results.forEach((res, i) => {
        const [u, c] = keys[i];
        if (res.status === 200 && res.read_state !== undefined) this.seen(u, res.read_state);
        else this.refused(u, c, res);
      });
    } catch {
      for (const [u, c] of keys) this.unknown(u, c);
    }
  }

  /** Compares every certain read state with the service; returns the differences (empty = none lost). */
  async verify(url: string): Promise<string[]> {
    const base = new URL(url);
    const agent = new Agent({ keepAlive: true, maxSockets: 8 });
    const diffs: string[] = [];
    const entries = [...this.expected].filter(([k]) => !this.uncertain.has(k));
    for (let i = 0; i < entries.length; i += 8) {
      await Promise.all(
        entries.slice(i, i + 8).map(async ([k, e]) => {
          const r = await post(agent, base, 'GET', `/v1/users/${k.replace('/', '/read-states/')}`, undefined);
          if (e.deleted) {
            if (r.status !== 404) diffs.push(`${k}: expected deleted, got ${r.status} ${JSON.stringify(r.body)}`);
            return;
          }
          const got = r.body as WireState;
          if (r.status !== 200 || got.last_message_id !== e.lastMessageId || got.mention_count !== e.mentionCount || got.version !== e.version) {
            diffs.push(`${k}: expected ${JSON.stringify(e)}, got ${r.status} ${JSON.stringify(r.body)}`);
          }
        }),
      );
    }
    agent.destroy();
    return diffs;
  }
}
