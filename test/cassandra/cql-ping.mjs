// Readiness probe for the test Cassandra: connects with cassandra-driver and runs
// `SELECT release_version FROM system.local`. Prints the version and exits 0 when
// the node answers CQL, exits 1 (with the reason on stderr) when it does not.
//
// Env: CASSANDRA_HOST (default 127.0.0.1), CASSANDRA_PORT (default 9042),
//      CASSANDRA_DC (default datacenter1), CQL_PING_TIMEOUT_MS (default 5000).
import cassandra from 'cassandra-driver';

const host = process.env.CASSANDRA_HOST || '127.0.0.1';
const port = Number(process.env.CASSANDRA_PORT || 9042);
const localDataCenter = process.env.CASSANDRA_DC || 'datacenter1';
const timeoutMs = Number(process.env.CQL_PING_TIMEOUT_MS || 5000);

const client = new cassandra.Client({
  contactPoints: [host],
  localDataCenter,
  protocolOptions: { port },
  socketOptions: { connectTimeout: timeoutMs, readTimeout: timeoutMs },
  // One quick attempt per probe: the caller loops.
  policies: { reconnection: new cassandra.policies.reconnection.ConstantReconnectionPolicy(60_000) },
  pooling: { warmup: false },
});

// Hard stop in case the driver hangs somewhere we did not anticipate.
const guard = setTimeout(() => {
  console.error(`cql-ping: no answer from ${host}:${port} within ${2 * timeoutMs} ms`);
  process.exit(1);
}, 2 * timeoutMs);
guard.unref();

let code = 1;
try {
  await client.connect();
  const rs = await client.execute('SELECT release_version FROM system.local');
  const row = rs.first();
  if (!row) throw new Error('system.local returned no row');
  console.log(row.release_version);
  code = 0;
} catch (err) {
  const msg = String(err && err.message ? err.message : err).split('\n')[0];
  console.error(`cql-ping: ${host}:${port}: ${msg}`);
} finally {
  try { await client.shutdown(); } catch { /* ignore */ }
}
process.exit(code);
