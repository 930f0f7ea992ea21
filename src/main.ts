/**
 * Process entry point: read the config, take the data dir's lock, start the service, stop
 * cleanly on SIGTERM/SIGINT.
 */
import './v8-flags.js';
import { ConfigError, loadConfig, loggableConfig, usage, type Config } from './config.js';
import { acquireDataDirLock, DataDirLockedError, type AcquiredLock } from './data-dir-lock.js';
import { buildService } from './server.js';
import { mallocTrimAvailable } from '../workers/malloc-trim.js';

/** Past the shutdown timeout, what stopping workers and store may take before the process exits anyway. */
const SHUTDOWN_WATCHDOG_MARGIN_MS = 3_000;

/** Durable stores keep their files (and soon their journal) in the data dir; the memory store has none. */
function lockDataDir(config: Config): AcquiredLock | undefined {
  if (config.store === 'memory') return undefined;
  let lock: AcquiredLock;
  try {
    lock = acquireDataDirLock(config.dataDir);
  } catch (err) {
    if (err instanceof DataDirLockedError) {
      process.stderr.write(`read-states: ${err.message}\n`);
      process.exit(1);
    }
    throw err;
  }
  // 'exit' runs on every process.exit() and on a normal end, so every path out releases it.
  process.on('exit', () => lock.release());
  return lock;
}

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
  const lock = lockDataDir(config);
  const service = await buildService(config, { logger: { level: config.logLevel } });
  const log = service.app.log;
  if (lock?.tookOverFrom !== undefined) {
    log.warn({ lock: lock.path, staleHolder: lock.tookOverFrom }, 'took over a stale data-dir lock: its process no longer runs');
  }
  // npm start sets glibc's mmap threshold (package.json): said here so an operator sees which one runs.
  log.info({ config: loggableConfig(config), store: service.store.name, lock: lock?.path, mallocMmapThreshold: process.env.MALLOC_MMAP_THRESHOLD_ ?? null, mallocTrim: mallocTrimAvailable() }, 'starting');
  if (!mallocTrimAvailable()) log.warn('workers/native is not built (npm install builds it): idle threads will not give freed malloc memory back to the OS');
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
    log.info({ signal, timeoutMs: config.shutdownTimeoutMs }, 'shutting down');
    // close() keeps to its deadline; this catches a worker or store that does not stop at all.
    setTimeout(() => {
      const unflushed = service.router.dirty + service.writeBehind.pendingRecords;
      log.error({ unflushed }, `shutdown did not end in time: exiting with ${unflushed} read states unflushed`);
      process.exit(1);
    }, config.shutdownTimeoutMs + SHUTDOWN_WATCHDOG_MARGIN_MS).unref();
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
