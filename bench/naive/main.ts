/**
 * Entry point of the naive comparison service: the real service's flags (--shards is accepted
 * and ignored), its log lines, and its clean stop on SIGTERM/SIGINT.
 *
 *   node dist/bench/naive/main.js --port 3001 --store memory --capacity 1000000
 */
import { pathToFileURL } from 'node:url';
import { ConfigError, loadConfig, usage } from '../../src/config.js';
import { buildNaiveService } from './server.js';

export { buildNaiveService, type NaiveService, type NaiveServiceOptions } from './server.js';

async function main(): Promise<void> {
  let config;
  try {
    config = loadConfig(process.argv.slice(2));
  } catch (err) {
    if (err instanceof ConfigError) {
      process.stderr.write(`read-states (naive): ${err.message}\n\nflags (or environment variables):\n${usage()}\n`);
      process.exit(2);
    }
    throw err;
  }
  const service = await buildNaiveService(config, { logger: { level: config.logLevel } });
  const log = service.app.log;
  log.info({ config, store: service.store.name, implementation: 'naive' }, 'starting');
  await service.app.listen({ host: config.host, port: config.port });

  let stopping = false;
  const stop = (signal: string): void => {
    if (stopping) {
      const unflushed = service.unflushed();
      log.error({ signal, unflushed }, `second signal: exiting now with ${unflushed} read states unflushed`);
      process.exit(1);
    }
    stopping = true;
    log.info({ signal }, 'shutting down');
    service.close().then(
      (unflushed) => {
        if (unflushed > 0) {
          log.error({ unflushed }, `shutdown timed out: ${unflushed} read states were left unflushed`);
          process.exit(1);
        }
        log.info('stopped: every change is in the store');
        process.exit(0);
      },
      (err: unknown) => {
        log.error({ err }, 'shutdown failed');
        process.exit(1);
      },
    );
  };
  process.on('SIGTERM', stop);
  process.on('SIGINT', stop);
}

// Run only as the entry point, so that tests and benches can import buildNaiveService from here.
if (process.argv[1] !== undefined && import.meta.url === pathToFileURL(process.argv[1]).href) {
  main().catch((err: unknown) => {
    process.stderr.write(`read-states (naive): failed to start: ${(err as Error).stack ?? String(err)}\n`);
    process.exit(1);
  });
}
