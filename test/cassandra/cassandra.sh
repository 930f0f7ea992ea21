#!/usr/bin/env bash
# Run a real single-node Apache Cassandra 5.0 for tests, straight from the Maven Central
# artifact org.apache.cassandra:cassandra-all (no tarball, no Docker), on the machine's Java 17.
#
#   bash test/cassandra/cassandra.sh start    fetch jars (cached), start in the background, wait for CQL
#   bash test/cassandra/cassandra.sh stop     SIGTERM the pid we started, SIGKILL after 60 s
#   bash test/cassandra/cassandra.sh status   exit 0 if up (pid alive and CQL answers), 3 if not
#
# Needs only java (17), mvn, node and npm. Everything it makes lives under <repo>/.cassandra
# (git-ignored): lib/ (jars), cassandra.yaml, cassandra.pid, cassandra.log, data/.
#
# Environment:
#   CASSANDRA_PORT           native (CQL) port, default 9042
#   CASSANDRA_STORAGE_PORT   internode port, default 7000
#   CASSANDRA_DATA_DIR       data root, default <repo>/.cassandra/data
#   CASSANDRA_VERSION        cassandra-all version, default 5.0.6
#   CASSANDRA_START_TIMEOUT  seconds to wait for CQL on start, default 180
#   CASSANDRA_STOP_TIMEOUT   seconds to wait after SIGTERM before SIGKILL, default 60
#   CASSANDRA_JAVA           java binary to use (default $JAVA_HOME/bin/java, else java on PATH)
set -euo pipefail

SCRIPT_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
ROOT="$(cd "$SCRIPT_DIR/../.." && pwd)"
CASS_DIR="$ROOT/.cassandra"
LIB_DIR="$CASS_DIR/lib"
PID_FILE="$CASS_DIR/cassandra.pid"
PORT_FILE="$CASS_DIR/cassandra.port"   # native port of the instance in PID_FILE
LOG_FILE="$CASS_DIR/cassandra.log"
YAML_FILE="$CASS_DIR/cassandra.yaml"
LOGBACK_FILE="$SCRIPT_DIR/logback.xml"
POM_FILE="$SCRIPT_DIR/pom.xml"
PING="$SCRIPT_DIR/cql-ping.mjs"

HOST=127.0.0.1
PORT="${CASSANDRA_PORT:-9042}"
STORAGE_PORT="${CASSANDRA_STORAGE_PORT:-7000}"
VERSION="${CASSANDRA_VERSION:-5.0.6}"
START_TIMEOUT="${CASSANDRA_START_TIMEOUT:-180}"
STOP_TIMEOUT="${CASSANDRA_STOP_TIMEOUT:-60}"
DATA_DIR="${CASSANDRA_DATA_DIR:-$CASS_DIR/data}"
DEP_PLUGIN=org.apache.maven.plugins:maven-dependency-plugin:3.8.1
FETCHED=""

log() { echo "cassandra.sh: $*"; }
err() { echo "cassandra.sh: $*" >&2; }

# ---------------------------------------------------------------------------------------------
# helpers

# pid from the pid file if that process is alive and is a Cassandra we started; empty otherwise.
our_pid() {
  [[ -f "$PID_FILE" ]] || return 0
  local pid
  pid="$(tr -dc '0-9' <"$PID_FILE" 2>/dev/null || true)"
  [[ -n "$pid" ]] || return 0
  kill -0 "$pid" 2>/dev/null || return 0
  # Guard against pid reuse: the process must be our CassandraDaemon.
  if [[ -r "/proc/$pid/cmdline" ]]; then
    tr '\0' ' ' <"/proc/$pid/cmdline" | grep -q 'org.apache.cassandra.service.CassandraDaemon' || return 0
  fi
  echo "$pid"
}

ensure_driver() {
  if [[ ! -f "$ROOT/node_modules/cassandra-driver/package.json" ]]; then
    log "node_modules/cassandra-driver missing; running npm ci"
    (cd "$ROOT" && npm ci --no-audit --no-fund --loglevel=error)
  fi
}

# Prints the release_version and returns 0 if a CQL query answers on HOST:PORT.
cql_ping() {
  CASSANDRA_HOST="$HOST" CASSANDRA_PORT="$PORT" CQL_PING_TIMEOUT_MS="${1:-5000}" \
    node "$PING" 2>/dev/null
}

java_bin() {
  if [[ -n "${CASSANDRA_JAVA:-}" ]]; then
    [[ -x "$CASSANDRA_JAVA" ]] || { err "CASSANDRA_JAVA=$CASSANDRA_JAVA is not an executable file"; exit 1; }
    echo "$CASSANDRA_JAVA"
  elif [[ -n "${JAVA_HOME:-}" && -x "$JAVA_HOME/bin/java" ]]; then echo "$JAVA_HOME/bin/java"
  else command -v java || { err "java not found"; exit 1; }
  fi
}

fetch_jars() {
  local marker="$LIB_DIR/.fetched-cassandra-all-$VERSION"
  if [[ -f "$marker" ]]; then
    return 0
  fi
  command -v mvn >/dev/null || { err "mvn not found"; exit 1; }
  log "fetching org.apache.cassandra:cassandra-all:$VERSION and its dependencies (first run only)..."
  local t0=$SECONDS tmp="$CASS_DIR/lib.tmp"
  rm -rf "$tmp"
  mkdir -p "$tmp"
  # Output goes to a file (Debian's mvn prints stray ANSI resets even with -q); shown on failure.
  if ! mvn -q -B -Dstyle.color=never -f "$POM_FILE" "$DEP_PLUGIN:copy-dependencies" \
      -Dcassandra.version="$VERSION" -DincludeScope=runtime -DoutputDirectory="$tmp" \
      >"$CASS_DIR/mvn-fetch.log" 2>&1; then
    err "mvn could not fetch cassandra-all $VERSION; its output:"
    sed 's/\x1b\[[0-9;]*m//g' "$CASS_DIR/mvn-fetch.log" | tail -n 40 >&2
    rm -rf "$tmp"
    exit 1
  fi
  ls "$tmp"/cassandra-all-"$VERSION".jar >/dev/null
  ls "$tmp"/jamm-*.jar >/dev/null
  touch "$tmp/.fetched-cassandra-all-$VERSION"
  FETCHED=1
  rm -rf "$LIB_DIR"
  mv "$tmp" "$LIB_DIR"
  log "fetched $(ls "$LIB_DIR"/*.jar | wc -l) jars into $LIB_DIR in $((SECONDS - t0)) s"
}

write_yaml() {
  cat >"$YAML_FILE" <<EOF
# Written by test/cassandra/cassandra.sh on every start; edit the script, not this file.
cluster_name: read-states-test
num_tokens: 1
initial_token: 0
partitioner: org.apache.cassandra.dht.Murmur3Partitioner
seed_provider:
  - class_name: org.apache.cassandra.locator.SimpleSeedProvider
    parameters:
      - seeds: "$HOST:$STORAGE_PORT"
listen_address: $HOST
rpc_address: $HOST
storage_port: $STORAGE_PORT
native_transport_port: $PORT
start_native_transport: true
endpoint_snitch: SimpleSnitch

data_file_directories:
  - $DATA_DIR/data
commitlog_directory: $DATA_DIR/commitlog
saved_caches_directory: $DATA_DIR/saved_caches
hints_directory: $DATA_DIR/hints
cdc_raw_directory: $DATA_DIR/cdc_raw
commitlog_sync: periodic
commitlog_sync_period: 10000ms

# Light settings for a small (2-core) test box.
auto_snapshot: false
hinted_handoff_enabled: false
memtable_heap_space: 128MiB
memtable_offheap_space: 64MiB
file_cache_size: 64MiB
key_cache_size: 16MiB
counter_cache_size: 0MiB
concurrent_reads: 8
concurrent_writes: 8
concurrent_counter_writes: 8
concurrent_compactors: 1
memtable_flush_writers: 1
commitlog_total_space: 512MiB
EOF
}

java_opts() {
  local jamm
  jamm="$(ls "$LIB_DIR"/jamm-*.jar | head -n1)"
  JAVA_OPTS=(
    -Xms1g -Xmx1g -Xss256k -XX:MaxDirectMemorySize=384m
    -XX:+UseG1GC -XX:+ExitOnOutOfMemoryError
    -Djava.net.preferIPv4Stack=true
    "-javaagent:$jamm"
    # From Cassandra's conf/jvm17-server.options
    -Djdk.attach.allowAttachSelf=true
    -Dio.netty.tryReflectionSetAccessible=true
    --add-exports=java.base/jdk.internal.misc=ALL-UNNAMED
    --add-exports=java.management.rmi/com.sun.jmx.remote.internal.rmi=ALL-UNNAMED
    --add-exports=java.management/com.sun.jmx.remote.security=ALL-UNNAMED
    --add-exports=java.rmi/sun.rmi.registry=ALL-UNNAMED
    --add-exports=java.rmi/sun.rmi.server=ALL-UNNAMED
    --add-exports=java.sql/java.sql=ALL-UNNAMED
    --add-exports=java.base/java.lang.ref=ALL-UNNAMED
    --add-exports=jdk.unsupported/sun.misc=ALL-UNNAMED
    --add-opens=java.base/java.lang.module=ALL-UNNAMED
    --add-opens=java.base/jdk.internal.loader=ALL-UNNAMED
    --add-opens=java.base/jdk.internal.ref=ALL-UNNAMED
    --add-opens=java.base/jdk.internal.reflect=ALL-UNNAMED
    --add-opens=java.base/jdk.internal.math=ALL-UNNAMED
    --add-opens=java.base/jdk.internal.module=ALL-UNNAMED
    --add-opens=java.base/jdk.internal.util.jar=ALL-UNNAMED
    --add-opens=java.base/sun.nio.ch=ALL-UNNAMED
    --add-opens=java.base/java.io=ALL-UNNAMED
    --add-opens=java.base/java.lang.reflect=ALL-UNNAMED
    --add-opens=java.base/java.lang=ALL-UNNAMED
    --add-opens=java.base/java.util=ALL-UNNAMED
    --add-opens=java.base/java.nio=ALL-UNNAMED
    --add-opens=jdk.management/com.sun.management.internal=ALL-UNNAMED
    # Cassandra itself
    "-Dcassandra.config=file://$YAML_FILE"
    -Dcassandra-foreground=yes
    "-Dcassandra.storagedir=$DATA_DIR"
    "-Dcassandra.logdir=$CASS_DIR"
    "-Dlogback.configurationFile=$LOGBACK_FILE"
    # Single node: no peers to tell about a shutdown, so skip the 2 s gossip announce pause.
    -Dcassandra.shutdown_announce_in_ms=0
    -cp "$LIB_DIR/*"
    org.apache.cassandra.service.CassandraDaemon
  )
}

# True if something accepts TCP connections on HOST:$1 (bash's /dev/tcp, no extra tools).
port_busy() {
  (exec 3<>"/dev/tcp/$HOST/$1") 2>/dev/null
}

# Wait for CQL on the given pid; on death print the log tail and exit non-zero.
wait_ready() {
  local pid="$1" t0="$2" deadline=$(( $2 + START_TIMEOUT )) version
  while :; do
    if ! kill -0 "$pid" 2>/dev/null; then
      err "Cassandra (pid $pid) died during startup; last lines of $LOG_FILE:"
      tail -n 40 "$LOG_FILE" >&2 || true
      # The shutdown hook's drain logs after the fatal error, so repeat the error lines.
      err "errors in $LOG_FILE:"
      grep -m 10 -E '^ERROR|Exception|Caused by|[Ff]atal|in use' "$LOG_FILE" >&2 || true
      rm -f "$PID_FILE" "$PORT_FILE"
      exit 1
    fi
    # Only spend a node process on a CQL probe once the log says the port is open.
    if grep -q 'Starting listening for CQL clients' "$LOG_FILE" 2>/dev/null; then
      if version="$(cql_ping 3000)"; then
        log "Cassandra $version is up on $HOST:$PORT (pid $pid) after $((SECONDS - t0)) s"
        return 0
      fi
    fi
    if (( SECONDS >= deadline )); then
      err "Cassandra (pid $pid) did not answer CQL on $HOST:$PORT within $START_TIMEOUT s; last lines of $LOG_FILE:"
      tail -n 40 "$LOG_FILE" >&2 || true
      err "it is still running; 'bash test/cassandra/cassandra.sh stop' ends it"
      exit 1
    fi
    sleep 1
  done
}

# ---------------------------------------------------------------------------------------------
# subcommands

# Native port of the running instance we started (falls back to PORT).
running_port() {
  local p=""
  [[ -f "$PORT_FILE" ]] && p="$(tr -dc '0-9' <"$PORT_FILE" 2>/dev/null || true)"
  echo "${p:-$PORT}"
}

cmd_start() {
  mkdir -p "$CASS_DIR"
  ensure_driver
  local pid version
  pid="$(our_pid)"
  if [[ -n "$pid" && "$(running_port)" != "$PORT" ]]; then
    err "a Cassandra started by this script is already running (pid $pid) with CQL on port $(running_port), not $PORT; stop it first"
    exit 1
  fi
  if [[ -n "$pid" ]]; then
    if version="$(cql_ping)"; then
      log "Cassandra $version is already running on $HOST:$PORT (pid $pid)"
      return 0
    fi
    log "Cassandra (pid $pid) is already starting; waiting for CQL on $HOST:$PORT"
    wait_ready "$pid" "$SECONDS"
    return 0
  fi
  if version="$(cql_ping)"; then
    log "a Cassandra ($version) is already answering CQL on $HOST:$PORT (not started by this script); using it"
    return 0
  fi
  rm -f "$PID_FILE" "$PORT_FILE"
  local p
  for p in "$PORT" "$STORAGE_PORT"; do
    if port_busy "$p"; then
      err "$HOST:$p is already in use by another process (and no CQL answers on $HOST:$PORT);"
      err "free it, or pick other ports with CASSANDRA_PORT / CASSANDRA_STORAGE_PORT"
      exit 1
    fi
  done

  local java
  java="$(java_bin)"
  local jv
  if ! jv="$("$java" -version 2>&1 | head -n1)"; then
    err "'$java -version' failed: $jv"
    exit 1
  fi
  if [[ "$jv" != *'"17'* ]]; then
    err "warning: Cassandra 5.0 is run here on Java 17, found: $jv"
  fi

  local t_all=$SECONDS
  fetch_jars
  case "$DATA_DIR" in /*) ;; *) DATA_DIR="$ROOT/$DATA_DIR" ;; esac
  mkdir -p "$DATA_DIR"
  write_yaml
  java_opts

  [[ -f "$LOG_FILE" ]] && mv -f "$LOG_FILE" "$LOG_FILE.prev"
  local t0=$SECONDS
  # Background, detached from the terminal (nohup; non-interactive bash already ignores
  # SIGINT for background jobs, and the JVM keeps ignored signals ignored), so Ctrl-C on the
  # caller or the end of `npm run` does not take it down. stop sends SIGTERM to this pid.
  cd "$CASS_DIR"
  nohup "$java" "${JAVA_OPTS[@]}" </dev/null >"$LOG_FILE" 2>&1 &
  pid=$!
  cd "$ROOT"
  echo "$pid" >"$PID_FILE"
  echo "$PORT" >"$PORT_FILE"
  log "started Cassandra $VERSION (pid $pid), log $LOG_FILE, data $DATA_DIR; waiting for CQL on $HOST:$PORT (up to $START_TIMEOUT s)"
  wait_ready "$pid" "$t0"
  if [[ -n "$FETCHED" ]]; then log "total including the jar fetch: $((SECONDS - t_all)) s"; fi
  return 0
}

cmd_stop() {
  local pid
  pid="$(our_pid)"
  if [[ -z "$pid" ]]; then
    rm -f "$PID_FILE" "$PORT_FILE"
    log "no Cassandra started by this script is running"
    return 0
  fi
  log "stopping Cassandra (pid $pid) with SIGTERM"
  kill -TERM "$pid" 2>/dev/null || true
  local t0=$SECONDS
  while kill -0 "$pid" 2>/dev/null; do
    if (( SECONDS - t0 >= STOP_TIMEOUT )); then
      err "pid $pid still alive after $STOP_TIMEOUT s; sending SIGKILL"
      kill -KILL "$pid" 2>/dev/null || true
      local t1=$SECONDS
      while kill -0 "$pid" 2>/dev/null && (( SECONDS - t1 < 10 )); do sleep 0.2; done
      break
    fi
    sleep 0.5
  done
  if kill -0 "$pid" 2>/dev/null; then
    err "pid $pid did not go away"
    exit 1
  fi
  rm -f "$PID_FILE" "$PORT_FILE"
  log "stopped (after $((SECONDS - t0)) s)"
}

cmd_status() {
  local pid version
  pid="$(our_pid)"
  if [[ -n "$pid" ]]; then
    PORT="$(running_port)"
    if version="$(cql_ping)"; then
      log "running: Cassandra $version, pid $pid, CQL on $HOST:$PORT"
      return 0
    fi
    log "not ready: pid $pid is alive but CQL on $HOST:$PORT does not answer (starting, or unhealthy; see $LOG_FILE)"
    return 3
  fi
  if [[ -f "$ROOT/node_modules/cassandra-driver/package.json" ]] && version="$(cql_ping)"; then
    log "running: a Cassandra ($version) answers CQL on $HOST:$PORT, but it was not started by this script"
    return 0
  fi
  log "not running (no live pid in $PID_FILE, no CQL on $HOST:$PORT)"
  return 3
}

case "${1:-}" in
  start) cmd_start ;;
  stop) cmd_stop ;;
  status) cmd_status ;;
  *)
    echo "usage: bash test/cassandra/cassandra.sh start|stop|status" >&2
    exit 2
    ;;
esac
