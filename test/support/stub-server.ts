/**
 * A local HTTP server whose answers a test scripts, for client behaviour the real service cannot
 * be made to show on demand (an answer of `applied: null`, a reset connection, a hang).
 */
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo, Socket } from 'node:net';

export interface StubRequest {
  method: string;
  path: string;
  headers: IncomingMessage['headers'];
  body: unknown;
  at: number;
}

export type StubHandler = (req: StubRequest, res: ServerResponse) => void;

export interface Stub {
  url: string;
  requests: StubRequest[];
  /** replaces the handler */
  handle(h: StubHandler): void;
  close(): Promise<void>;
}

/** Answers `status` with a JSON body (and extra headers). */
export function json(res: ServerResponse, status: number, body: unknown, headers: Record<string, string> = {}): void {
  const text = JSON.stringify(body);
  res.writeHead(status, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(text), ...headers });
  res.end(text);
}

export async function startStub(handler: StubHandler): Promise<Stub> {
  let h = handler;
  const requests: StubRequest[] = [];
  const sockets = new Set<Socket>();
  const server: Server = createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      const text = Buffer.concat(chunks).toString();
      const r: StubRequest = { method: req.method ?? '', path: req.url ?? '', headers: req.headers, body: text.length > 0 ? JSON.parse(text) : undefined, at: Date.now() };
      requests.push(r);
      h(r, res);
    });
  });
  server.on('connection', (s: Socket) => {
    sockets.add(s);
    s.on('close', () => sockets.delete(s));
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const port = (server.address() as AddressInfo).port;
  return {
    url: `http://127.0.0.1:${port}`,
    requests,
    handle: (next) => {
      h = next;
    },
    close: () =>
      new Promise<void>((resolve) => {
        for (const s of sockets) s.destroy();
        server.close(() => resolve());
      }),
  };
}

/** A read state as the service renders it, for stub answers. */
export function stubReadState(user: string, channel: string, over: Record<string, unknown> = {}): Record<string, unknown> {
  return { user_id: user, channel_id: channel, last_message_id: '0', mention_count: 0, last_pin_timestamp: 0, flags: 0, version: 1, ...over };
}
