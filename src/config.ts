/**
 * Service configuration: CLI flags, then READ_STATES_* environment variables, then defaults.
 * Validated once at start-up; every message names the flag and what it must be.
 */
import { randomBytes } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { availableParallelism } from 'node:os';
import { parseArgs } from 'node:util';
import { CONSISTENCIES, STORE_KINDS, type CassandraConfig, type Consistency, type StoreKind } from '../workers/store/store-config.js';

export { CONSISTENCIES, STORE_KINDS, type CassandraConfig, type Consistency, type StoreKind };

export interface Config {
  host: string;
  port: number;
  shards: number;
  /** read states cached by the whole process (split evenly across shards) */
  capacity: number;
  /** users cached by the whole process (split evenly across shards) */
  maxUsers: number;
  /** operations queued or in flight per shard before new ones get 503 */
  maxQueue: number;
  dataDir: string;
  logLevel: string;
  store: StoreKind;
  /** ms from a read state's first unflushed change to its write (0 = as soon as possible) */
  flushDelayMs: number;
  /** ms a graceful shutdown may take before it exits, reporting what was left unflushed */
  shutdownTimeoutMs: number;
  /** changes waiting for the store beyond which shards hold back (evict only clean users) */
  maxPendingWrites: number;
  /** a user with this many read states gets 507 USER_READ_STATE_LIMIT for a new one */
  maxReadStatesPerUser: number;
  /** write the redo journal (with a durable store) */
  journal: boolean;
  /** redo journal: null = answer once the write reached the OS; 0 = fsync first; N = group commit every N ms */
  journalFsyncMs: number | null;
  /** ms after which a non-empty journal segment is closed (so that it can be retired) */
  journalSegmentMs: number;
  /** file the bearer token was read from; undefined: no authentication */
  authTokenFile: string | undefined;
  /** the bearer token every route but /health requires; never logged (see loggableConfig) */
  authToken: string | undefined;
  cassandra: CassandraConfig;
  /** several instances over one Cassandra keyspace (--cluster); null: a single instance */
  cluster: ClusterConfig | null;
}

export interface ClusterConfig {
  name: string;
  /** how the other instances reach this one: http://host:port, no trailing slash */
  advertiseUrl: string;
  /** partitions of the user space; fixed when the cluster is created */
  partitions: number;
  /** a lease lasts this long (ms) from the start of its last successful renewal */
  leaseMs: number;
  /** unique per process start (a restarted instance is a new member) */
  instanceId: string;
}


interface FlagSpec {
  env: string;
  kind: 'int' | 'string';
  min?: number;
  max?: number;
  help: string;
}

export const FLAGS: Record<string, FlagSpec> = {
  host: { env: 'READ_STATES_HOST', kind: 'string', help: 'address to listen on (default 127.0.0.1)' },
  port: { env: 'READ_STATES_PORT', kind: 'int', min: 0, max: 65535, help: 'TCP port (default 3000)' },
  shards: { env: 'READ_STATES_SHARDS', kind: 'int', min: 1, max: 256, help: 'shard workers (default: cores - 1, at least 1)' },
  capacity: { env: 'READ_STATES_CAPACITY', kind: 'int', min: 1, max: 2_000_000_000, help: 'read states cached, whole process (default 5000000)' },
  'max-users': { env: 'READ_STATES_MAX_USERS', kind: 'int', min: 1, max: 2_000_000_000, help: 'users cached, whole process (default capacity / 4)' },
  'max-queue': { env: 'READ_STATES_MAX_QUEUE', kind: 'int', min: 1, max: 10_000_000, help: 'operations queued per shard before 503 (default 100000)' },
  'data-dir': { env: 'READ_STATES_DATA_DIR', kind: 'string', help: 'directory for a durable store (default ./data)' },
  'log-level': { env: 'READ_STATES_LOG_LEVEL', kind: 'string', help: 'fatal|error|warn|info|debug|trace|silent (default info)' },
  store: { env: 'READ_STATES_STORE', kind: 'string', help: 'sqlite (embedded, in --data-dir) | cassandra | memory (default sqlite)' },
  'flush-delay': { env: 'READ_STATES_FLUSH_DELAY', kind: 'int', min: 0, max: 3_600_000, help: 'ms from first unflushed change to its write (default 30000, with --cluster 1000; 0 = asap)' },
  'shutdown-timeout': { env: 'READ_STATES_SHUTDOWN_TIMEOUT', kind: 'int', min: 0, max: 3_600_000, help: 'ms a graceful shutdown may take (default 30000)' },
  'max-pending-writes': { env: 'READ_STATES_MAX_PENDING_WRITES', kind: 'int', min: 1, max: 100_000_000, help: 'changes waiting for the store before shards hold back (default 1000000)' },
  'max-read-states-per-user': { env: 'READ_STATES_MAX_READ_STATES_PER_USER', kind: 'int', min: 1, max: 10_000_000, help: 'read states one user may have; a new one beyond gets 507 (default 10000)' },
  journal: { env: 'READ_STATES_JOURNAL', kind: 'string', help: 'on|off: the redo journal (default on; off: kill -9 loses what the store has not confirmed)' },
  'journal-segment-ms': { env: 'READ_STATES_JOURNAL_SEGMENT_MS', kind: 'int', min: 10, max: 3_600_000, help: 'ms after which a journal segment is closed and can be retired (default 10000)' },
  'journal-fsync-ms': { env: 'READ_STATES_JOURNAL_FSYNC_MS', kind: 'int', min: 0, max: 10_000, help: 'redo journal fsync: unset = none (survives kill -9), 0 = before each answer, N = group commit every N ms' },
  'auth-token-file': { env: 'READ_STATES_AUTH_TOKEN_FILE', kind: 'string', help: 'file holding the bearer token every route but /health requires (default: none, no auth)' },
  cluster: { env: 'READ_STATES_CLUSTER', kind: 'string', help: 'run as one of several instances over one Cassandra keyspace, under this cluster name (default: off, a single instance); needs --store cassandra' },
  'advertise-url': { env: 'READ_STATES_ADVERTISE_URL', kind: 'string', help: '--cluster: the URL other instances forward to (default http://<host>:<port>)' },
  partitions: { env: 'READ_STATES_PARTITIONS', kind: 'int', min: 1, max: 65536, help: '--cluster: partitions of the user space, fixed when the cluster is created (default 1024)' },
  'lease-ms': { env: 'READ_STATES_LEASE_MS', kind: 'int', min: 1000, max: 600_000, help: '--cluster: partition lease time in ms; renewed every quarter of it (default 10000)' },
  'instance-id': { env: 'READ_STATES_INSTANCE_ID', kind: 'string', help: '--cluster: this process\'s member id (default: random; must differ per process start)' },
  'cassandra-contact-points': { env: 'READ_STATES_CASSANDRA_CONTACT_POINTS', kind: 'string', help: 'comma-separated hosts (default 127.0.0.1)' },
  'cassandra-port': { env: 'READ_STATES_CASSANDRA_PORT', kind: 'int', min: 1, max: 65535, help: 'CQL port (default 9042)' },
  'cassandra-local-dc': { env: 'READ_STATES_CASSANDRA_LOCAL_DC', kind: 'string', help: 'local data center (default datacenter1)' },
  'cassandra-keyspace': { env: 'READ_STATES_CASSANDRA_KEYSPACE', kind: 'string', help: 'keyspace, created if absent (default read_states)' },
  'cassandra-replication-factor': { env: 'READ_STATES_CASSANDRA_REPLICATION_FACTOR', kind: 'int', min: 1, max: 9, help: 'replication factor for a new keyspace (default 1)' },
  'cassandra-consistency': { env: 'READ_STATES_CASSANDRA_CONSISTENCY', kind: 'string', help: 'one|local_one|quorum|local_quorum|all (default local_quorum)' },
};

/** --flush-delay's default with --cluster (ms) */
export const CLUSTER_FLUSH_DELAY_MS = 1000;

const LOG_LEVELS = new Set(['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent']);

export class ConfigError extends Error {}

function readInt(name: string, raw: string, spec: FlagSpec): number {
  if (!/^[0-9]+$/.test(raw)) throw new ConfigError(`--${name} must be a non-negative integer, got "${raw}"`);
  const n = Number(raw);
  if (!Number.isSafeInteger(n) || n < (spec.min ?? 0) || n > (spec.max ?? Number.MAX_SAFE_INTEGER)) {
    throw new ConfigError(`--${name} must be an integer from ${spec.min ?? 0} to ${spec.max}, got ${raw}`);
  }
  return n;
}

/**
 * The token file is read once here so that a missing or empty file stops the start-up with a
 * usage error instead of leaving the service open or locked to everyone.
 */
function readAuthToken(file: string): string {
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch (err) {
    throw new ConfigError(`--auth-token-file ${file} cannot be read: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}`);
  }
  const token = text.trim();
  if (token.length === 0) throw new ConfigError(`--auth-token-file ${file} is empty: it must hold the bearer token`);
  // A header value cannot carry control characters or spaces inside a token; such a file could never match.
  if (!/^[\x21-\x7e]+$/.test(token)) {
    throw new ConfigError(`--auth-token-file ${file} must hold one token of visible ASCII characters (no spaces or line breaks inside)`);
  }
  return token;
}

export function defaultShards(): number {
  return Math.max(1, availableParallelism() - 1);
}

export function loadConfig(argv: string[], env: NodeJS.ProcessEnv = process.env): Config {
  const options: Record<string, { type: 'string' }> = {};
  for (const name of Object.keys(FLAGS)) options[name] = { type: 'string' };
  let values: Record<string, string | undefined>;
  try {
    values = parseArgs({ args: argv, options, strict: true, allowPositionals: false }).values as Record<
      string,
      string | undefined
    >;
  } catch (err) {
    throw new ConfigError((err as Error).message);
  }
  const raw = (name: string): string | undefined => values[name] ?? env[FLAGS[name].env];
  const int = (name: string, fallback: number): number => {
    const v = raw(name);
    return v === undefined ? fallback : readInt(name, v, FLAGS[name]);
  };
  const capacity = int('capacity', 5_000_000);
  const authTokenFile = raw('auth-token-file');
  if (authTokenFile !== undefined && authTokenFile.length === 0) throw new ConfigError('--auth-token-file must not be empty');
  const shards = int('shards', defaultShards());
  const config: Config = {
    host: raw('host') ?? '127.0.0.1',
    port: int('port', 3000),
    shards,
    capacity,
    maxUsers: int('max-users', Math.max(shards, Math.ceil(capacity / 4))),
    maxQueue: int('max-queue', 100_000),
    dataDir: raw('data-dir') ?? './data',
    logLevel: raw('log-level') ?? 'info',
    store: (raw('store') ?? 'sqlite') as StoreKind,
    flushDelayMs: int('flush-delay', 30_000),
    shutdownTimeoutMs: int('shutdown-timeout', 30_000),
    maxPendingWrites: int('max-pending-writes', 1_000_000),
    maxReadStatesPerUser: int('max-read-states-per-user', 10_000),
    journal: (raw('journal') ?? 'on') === 'on',
    journalFsyncMs: raw('journal-fsync-ms') === undefined ? null : int('journal-fsync-ms', 0),
    journalSegmentMs: int('journal-segment-ms', 10_000),
    authTokenFile,
    authToken: authTokenFile === undefined ? undefined : readAuthToken(authTokenFile),
    cassandra: {
      contactPoints: (raw('cassandra-contact-points') ?? '127.0.0.1').split(',').map((h) => h.trim()),
      port: int('cassandra-port', 9042),
      localDataCenter: raw('cassandra-local-dc') ?? 'datacenter1',
      keyspace: raw('cassandra-keyspace') ?? 'read_states',
      replicationFactor: int('cassandra-replication-factor', 1),
      consistency: (raw('cassandra-consistency') ?? 'local_quorum') as Consistency,
    },
    cluster: null,
  };
  if (!(STORE_KINDS as readonly string[]).includes(config.store)) throw new ConfigError(`--store must be one of ${STORE_KINDS.join('|')}`);
  if (!(CONSISTENCIES as readonly string[]).includes(config.cassandra.consistency)) {
    throw new ConfigError(`--cassandra-consistency must be one of ${CONSISTENCIES.join('|')}`);
  }
  if (!/^[a-z][a-z0-9_]{0,47}$/.test(config.cassandra.keyspace)) {
    throw new ConfigError('--cassandra-keyspace must be a lowercase identifier (letters, digits, _; at most 48)');
  }
  if (config.cassandra.contactPoints.some((h) => h.length === 0)) throw new ConfigError('--cassandra-contact-points must not contain empty hosts');
  if (config.host.length === 0) throw new ConfigError('--host must not be empty');
  config.cluster = clusterConfig(raw, int, config);
  if (config.cluster !== null) {
    // The next owner of a partition reads Cassandra: what is not written there yet is what a
    // SIGKILL loses, so changes go out within a second unless asked otherwise.
    if (raw('flush-delay') === undefined) config.flushDelayMs = CLUSTER_FLUSH_DELAY_MS;
    if (raw('journal') === 'on') throw new ConfigError('--journal on is not supported with --cluster: the next owner of a partition could not replay this instance\'s local journal (see README, Running several instances)');
    config.journal = false;
  }
  if (!['on', 'off'].includes(raw('journal') ?? 'on')) throw new ConfigError('--journal must be on or off');
  if (!LOG_LEVELS.has(config.logLevel)) throw new ConfigError(`--log-level must be one of ${[...LOG_LEVELS].join('|')}`);
  if (config.capacity < config.shards) throw new ConfigError('--capacity must be at least --shards (one read state per shard)');
  if (config.maxUsers < config.shards) throw new ConfigError('--max-users must be at least --shards');
  return config;
}

function clusterConfig(raw: (name: string) => string | undefined, int: (name: string, fallback: number) => number, c: Config): ClusterConfig | null {
  const name = raw('cluster');
  if (name === undefined) {
    for (const f of ['advertise-url', 'partitions', 'lease-ms', 'instance-id']) if (raw(f) !== undefined) throw new ConfigError(`--${f} only applies with --cluster`);
    return null;
  }
  if (!/^[A-Za-z0-9_.-]{1,64}$/.test(name)) throw new ConfigError('--cluster must be 1 to 64 letters, digits, _ . or -');
  if (c.store !== 'cassandra') throw new ConfigError('--cluster needs --store cassandra: the instances share it and keep their leases in it');
  let advertiseUrl = raw('advertise-url');
  if (advertiseUrl === undefined) {
    if (c.host === '0.0.0.0' || c.host === '::') throw new ConfigError('--cluster with --host ' + c.host + ' needs --advertise-url: other instances cannot reach a wildcard address');
    advertiseUrl = `http://${c.host.includes(':') ? `[${c.host}]` : c.host}:${c.port}`;
  }
  let url: URL;
  try {
    url = new URL(advertiseUrl);
  } catch {
    throw new ConfigError(`--advertise-url must be an http:// URL, got "${advertiseUrl}"`);
  }
  if (url.protocol !== 'http:' || url.pathname !== '/' || url.search !== '' || url.hash !== '' || url.username !== '') {
    throw new ConfigError(`--advertise-url must be http://host:port with no path, got "${advertiseUrl}"`);
  }
  const instanceId = raw('instance-id') ?? `${url.host}-${randomBytes(4).toString('hex')}`;
  if (!/^[A-Za-z0-9_.:\[\]-]{1,100}$/.test(instanceId)) throw new ConfigError('--instance-id must be 1 to 100 letters, digits or _ . : - [ ]');
  return { name, advertiseUrl: url.origin, partitions: int('partitions', 1024), leaseMs: int('lease-ms', 10_000), instanceId };
}

/** The config as the start-up log shows it: the token itself never reaches a log. */
export function loggableConfig(config: Config): Omit<Config, 'authToken'> & { authToken?: string } {
  return { ...config, authToken: config.authToken === undefined ? undefined : '[redacted]' };
}

export function usage(): string {
  return Object.entries(FLAGS)
    .map(([name, spec]) => `  --${name.padEnd(12)} ${spec.env.padEnd(24)} ${spec.help}`)
    .join('\n');
}
