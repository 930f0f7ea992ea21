/**
 * Process entry point: read the config, start the service, stop cleanly on SIGTERM/SIGINT.
 */
import './v8-flags.js';
import { ConfigError, loadConfig, usage } from './config.js';
import { buildService } from './server.js';

async function main(): Promise<void> {
  let config;
  try {
    config = loadConfig(process.argv.slice(2));
  } catch (err) {
    if (err instanceof ConfigError) {
      process.stderr.write(`read-states: ${err.message}\n\nflags (or environment variables):\n${usage()}\n`);
      process.exit(2);
    }
    throw err;
  }
  const service = await buildService(config, { logger: { level: config.logLevel } });
  const log = service.app.log;
  log.info({ config, store: service.store.name }, 'starting');
  const replay = service.replay;
  if (replay !== null && replay.segments > 0) {
    log.info({ replay }, `journal: ${replay.records} changes from ${replay.segments} segments of an earlier run applied to the store`);
  }
  await service.app.listen({ host: config.host, port: config.port });

  let stopping = false;
  const stop = (signal: string): void => {
    if (stopping) {
      const unflushed = service.router.dirty + service.writeBehind.pendingRecords;
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

main().catch((err: unknown) => {
  process.stderr.write(`read-states: failed to start: ${(err as Error).stack ?? String(err)}\n`);
  process.exit(1);
});
