/**
 * What the store thread needs to know of the configuration: which store, and how to reach
 * Cassandra. Validated on the main thread (src/config.ts), which re-exports these.
 */
export const STORE_KINDS = ['sqlite', 'cassandra', 'memory'] as const;
export type StoreKind = (typeof STORE_KINDS)[number];
export const CONSISTENCIES = ['one', 'local_one', 'quorum', 'local_quorum', 'all'] as const;
export type Consistency = (typeof CONSISTENCIES)[number];

export interface CassandraConfig {
  contactPoints: string[];
  port: number;
  localDataCenter: string;
  keyspace: string;
  replicationFactor: number;
  consistency: Consistency;
}
