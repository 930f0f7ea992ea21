/** Starts the real service (fastify + shard workers) on an ephemeral port for a test file. */
import { loadConfig, type Config } from '../../src/config.js';
import { buildService, type Service, type ServiceOptions } from '../../src/server.js';
import type { ReadStateStore } from '../../workers/store/store.js';

export interface RunningService {
  url: string;
  service: Service;
  close(): Promise<void>;
}

export async function startService(overrides: Partial<Config> = {}, store?: ReadStateStore, options: Omit<ServiceOptions, 'store'> = {}): Promise<RunningService> {
  const config: Config = { ...loadConfig(['--port', '0', '--shards', '2', '--store', 'memory'], {}), ...overrides };
  const service = await buildService(config, { ...options, store });
  await service.app.listen({ host: '127.0.0.1', port: 0 });
  const address = service.app.server.address();
  if (address === null || typeof address === 'string') throw new Error('no port');
  return { url: `http://127.0.0.1:${address.port}`, service, close: () => service.close() };
}
