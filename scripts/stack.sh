#!/usr/bin/env bash
# Local Kafka broker + Confluent-compatible schema registry for tests and demos, without Docker.
#
#   scripts/stack.sh up       start both (downloads from Maven Central on first use), print client env
#   scripts/stack.sh down     stop what `up` started (by recorded pid) and delete the broker's data
#   scripts/stack.sh status   running/stopped per service; exit 0 if both run, 3 otherwise
#
# Needs only `java` (17+) and, for the first `up`, `mvn` with access to Maven Central.
#   Kafka     org.apache.kafka:kafka_2.13 (KRaft, one combined broker+controller on 127.0.0.1)
#   Registry  io.apicurio:apicurio-registry-app:<ver>:tar.gz:all (in-memory H2, ccompat API)
#
# Environment:
#   KAFKA_PORT (9092)  KAFKA_CONTROLLER_PORT (9093)  REGISTRY_PORT (8081)
#   STREAMSCORE_CACHE (~/.cache/streamscore)  jars, unpacked registry, run/ state (pids, logs, data)
#   STREAMSCORE_STACK_TIMEOUT (180)           seconds to wait for each service to answer
#   KAFKA_HEAP_OPTS / REGISTRY_HEAP_OPTS      JVM heap flags; JAVA_HOME selects the java binary
#   STREAMSCORE_KAFKA_VERSION / STREAMSCORE_APICURIO_VERSION  override the pinned versions
#   STREAMSCORE_STACK_SERVICES ("kafka registry")  which services up/down/status handle; "kafka"
#                                             alone gives a private broker (the fault tests' own)
#   STREAMSCORE_STACK_SECURE=1                the secured variant, on its own ports (9192, 9193,
#                                             8444) and run folder: Kafka on a SASL_SSL listener
#                                             with SCRAM-SHA-256/512 users, the registry over
#                                             https behind basic auth, both with a certificate
#                                             from a throw-away CA made at `up`. The client
#                                             settings it prints name files (CA, passwords),
#                                             never a secret itself.
set -euo pipefail

KAFKA_VERSION="${STREAMSCORE_KAFKA_VERSION:-4.4.0}"
# Kafka's published poms carry no logging backend; its own distribution uses Log4j 2 behind SLF4J 1.7.
LOG4J_VERSION="2.25.5"
# 3.0.9 is the newest Apicurio 3.x that runs on Java 17: the 3.3.x app is compiled for Java 21.
APICURIO_VERSION="${STREAMSCORE_APICURIO_VERSION:-3.0.9}"
DEPENDENCY_PLUGIN="org.apache.maven.plugins:maven-dependency-plugin:3.8.1"
# dependency:copy of 2.8 fetches just the file; 3.x also reads the artifact's parent pom, and
# io.apicurio:apicurio-registry:3.0.9.pom answers 404 on the Maven Central we reach.
COPY_PLUGIN="org.apache.maven.plugins:maven-dependency-plugin:2.8"

SECURE="${STREAMSCORE_STACK_SECURE:-0}"
secure() { [[ "$SECURE" == "1" ]]; }
if secure; then
  KAFKA_PORT="${KAFKA_PORT:-9192}"
  KAFKA_CONTROLLER_PORT="${KAFKA_CONTROLLER_PORT:-9193}"
  REGISTRY_PORT="${REGISTRY_PORT:-8444}"
else
  KAFKA_PORT="${KAFKA_PORT:-9092}"
  KAFKA_CONTROLLER_PORT="${KAFKA_CONTROLLER_PORT:-9093}"
  REGISTRY_PORT="${REGISTRY_PORT:-8081}"
fi
SERVICES="${STREAMSCORE_STACK_SERVICES:-kafka registry}"
with_registry() { [[ " ${SERVICES} " == *" registry "* ]]; }
CACHE="${STREAMSCORE_CACHE:-${HOME}/.cache/streamscore}"
TIMEOUT="${STREAMSCORE_STACK_TIMEOUT:-180}"
STOP_TIMEOUT=30
HOST="127.0.0.1"

KAFKA_HOME="${CACHE}/kafka-${KAFKA_VERSION}"
REGISTRY_HOME="${CACHE}/apicurio-registry-${APICURIO_VERSION}"
RUN_DIR="${CACHE}/run/kafka-${KAFKA_PORT}-${KAFKA_CONTROLLER_PORT}-registry-${REGISTRY_PORT}"
if secure; then RUN_DIR="${RUN_DIR}-secure"; fi
TLS_DIR="${RUN_DIR}/tls"
SECRETS_DIR="${RUN_DIR}/secrets"
KAFKA_PID="${RUN_DIR}/kafka.pid"
KAFKA_LOG="${RUN_DIR}/kafka.log"
KAFKA_DATA="${RUN_DIR}/kafka-data"
REGISTRY_PID="${RUN_DIR}/registry.pid"
REGISTRY_LOG="${RUN_DIR}/registry.log"
# Put on each JVM's command line so a recorded pid is only trusted while it is still our process.
KAFKA_MARK="-Dstreamscore.stack=kafka@${RUN_DIR}"
REGISTRY_MARK="-Dstreamscore.stack=registry@${RUN_DIR}"

if [[ -n "${JAVA_HOME:-}" ]]; then JAVA="${JAVA_HOME}/bin/java"; else JAVA="java"; fi
if [[ -n "${JAVA_HOME:-}" ]]; then JAVAC="${JAVA_HOME}/bin/javac"; else JAVAC="javac"; fi

BROKERS="${HOST}:${KAFKA_PORT}"
REGISTRY_URL="http://${HOST}:${REGISTRY_PORT}/apis/ccompat/v7"
if secure; then
  # The certificate names localhost only, so 127.0.0.1 is a host name it does not match.
  BROKERS="localhost:${KAFKA_PORT}"
  REGISTRY_URL="https://localhost:${REGISTRY_PORT}/apis/ccompat/v7"
fi

log() { printf '[stack] %s\n' "$*" >&2; }
die() {
  log "error: $*"
  exit 1
}

usage() {
  echo "usage: $0 up|down|status" >&2
  exit 2
}

# ---------------------------------------------------------------------------------------------
# process and port helpers

read_pid() { [[ -f "$1" ]] && tr -dc '0-9' <"$1" || true; }

# owned PIDFILE MARK: the recorded pid is alive and is still the JVM we started.
owned() {
  local pid
  pid="$(read_pid "$1")"
  [[ -n "$pid" ]] || return 1
  kill -0 "$pid" 2>/dev/null || return 1
  ps -p "$pid" -o args= 2>/dev/null | grep -qF -- "$2"
}

port_open() { (exec 3<>"/dev/tcp/${HOST}/$1") 2>/dev/null; }

registry_answers() {
  if secure; then
    # Credentials from a file (-K), never on curl's command line.
    curl -sf -o /dev/null -m 5 --cacert "${TLS_DIR}/ca.pem" -K "${SECRETS_DIR}/registry.curl" "${REGISTRY_URL}/subjects"
  elif command -v curl >/dev/null 2>&1; then
    curl -sf -o /dev/null -m 5 "${REGISTRY_URL}/subjects"
  else
    port_open "$REGISTRY_PORT" || return 1
    (
      exec 3<>"/dev/tcp/${HOST}/${REGISTRY_PORT}"
      printf 'GET /apis/ccompat/v7/subjects HTTP/1.0\r\nHost: %s\r\n\r\n' "$HOST" >&3
      IFS= read -r -t 5 line <&3
      [[ "$line" == *" 200"* ]]
    ) 2>/dev/null
  fi
}

# Metadata round trip with Kafka's AdminClient (a tiny class compiled at download time).
kafka_answers() {
  port_open "$KAFKA_PORT" || return 1
  if secure; then
    # The probe speaks plaintext; the secured broker is ready once it says it started.
    grep -q 'Kafka Server started' "$KAFKA_LOG" 2>/dev/null
  elif [[ -f "${KAFKA_HOME}/probe/StackProbe.class" ]]; then
    "$JAVA" -Xmx64m -XX:TieredStopAtLevel=1 -Dlog4j2.level=ERROR \
      -cp "${KAFKA_HOME}/probe:${KAFKA_HOME}/libs/*" StackProbe "$BROKERS" >/dev/null 2>&1
  else
    grep -q 'Kafka Server started' "$KAFKA_LOG" 2>/dev/null
  fi
}

# stop_pid NAME PIDFILE MARK: TERM, wait, KILL after STOP_TIMEOUT seconds.
stop_pid() {
  local name="$1" pidfile="$2" mark="$3" pid i
  if ! owned "$pidfile" "$mark"; then
    [[ -f "$pidfile" ]] && log "$name: not running (removing stale pid file)"
    rm -f "$pidfile"
    return 0
  fi
  pid="$(read_pid "$pidfile")"
  log "$name: stopping pid $pid"
  kill -TERM "$pid" 2>/dev/null || true
  for ((i = 0; i < STOP_TIMEOUT * 4; i++)); do
    kill -0 "$pid" 2>/dev/null || break
    sleep 0.25
  done
  if kill -0 "$pid" 2>/dev/null; then
    log "$name: still alive after ${STOP_TIMEOUT}s, sending KILL"
    kill -KILL "$pid" 2>/dev/null || true
    for ((i = 0; i < 40; i++)); do
      kill -0 "$pid" 2>/dev/null || break
      sleep 0.25
    done
  fi
  rm -f "$pidfile"
}

# A lock directory so that concurrent `up`/`down` calls (parallel test runners) do not race.
LOCK_DIR="${RUN_DIR}/.lock"
release_lock() { rm -rf "$LOCK_DIR"; }
acquire_lock() {
  local i owner
  mkdir -p "$RUN_DIR"
  for ((i = 0; i < TIMEOUT * 2; i++)); do
    if mkdir "$LOCK_DIR" 2>/dev/null; then
      echo "$$" >"${LOCK_DIR}/pid"
      trap release_lock EXIT
      return 0
    fi
    owner="$(read_pid "${LOCK_DIR}/pid")"
    if [[ -n "$owner" ]] && ! kill -0 "$owner" 2>/dev/null; then
      rm -rf "$LOCK_DIR"
      continue
    fi
    ((i % 10 == 0)) && log "waiting for another stack.sh (pid ${owner:-?}) to finish"
    sleep 0.5
  done
  die "could not take the lock ${LOCK_DIR}"
}

check_java() {
  command -v "$JAVA" >/dev/null 2>&1 || die "java not found (need Java 17+; set JAVA_HOME or PATH)"
  local spec
  spec="$("$JAVA" -XshowSettings:properties -version 2>&1 | awk -F'= ' '/java.specification.version/ {print $2}')"
  local major="${spec%%.*}"
  if [[ ! "$major" =~ ^[0-9]+$ ]] || ((major < 17)); then
    die "Java ${spec:-?} found; Kafka ${KAFKA_VERSION} needs Java 17+"
  fi
}

need_mvn() {
  command -v mvn >/dev/null 2>&1 || die "mvn not found; it is needed once to fetch $1 from Maven Central"
}

# ---------------------------------------------------------------------------------------------
# downloads (each into a temp dir, moved into place when complete)

ensure_kafka() {
  [[ -f "${KAFKA_HOME}/.complete" ]] && return 0
  need_mvn "Kafka ${KAFKA_VERSION}"
  log "fetching Kafka ${KAFKA_VERSION} jars from Maven Central into ${KAFKA_HOME} (first run only)"
  mkdir -p "$KAFKA_HOME"
  local tmp
  tmp="$(mktemp -d "${KAFKA_HOME}/.tmp.XXXXXX")"
  cat >"${tmp}/pom.xml" <<EOF
<project xmlns="http://maven.apache.org/POM/4.0.0">
  <modelVersion>4.0.0</modelVersion>
  <groupId>local.streamscore</groupId>
  <artifactId>kafka-runtime</artifactId>
  <version>1</version>
  <packaging>pom</packaging>
  <dependencies>
    <dependency><groupId>org.apache.kafka</groupId><artifactId>kafka_2.13</artifactId><version>${KAFKA_VERSION}</version></dependency>
    <dependency><groupId>org.apache.logging.log4j</groupId><artifactId>log4j-core</artifactId><version>${LOG4J_VERSION}</version></dependency>
    <dependency><groupId>org.apache.logging.log4j</groupId><artifactId>log4j-slf4j-impl</artifactId><version>${LOG4J_VERSION}</version></dependency>
  </dependencies>
</project>
EOF
  (cd "$tmp" && mvn -B -q -Dstyle.color=never -f pom.xml "${DEPENDENCY_PLUGIN}:copy-dependencies" \
    -DincludeScope=runtime -DoutputDirectory="${tmp}/libs") >"${tmp}/mvn.log" 2>&1 || {
    tail -n 30 "${tmp}/mvn.log" >&2
    die "mvn could not resolve org.apache.kafka:kafka_2.13:${KAFKA_VERSION} (log: ${tmp}/mvn.log)"
  }
  cat >"${tmp}/StackProbe.java" <<'EOF'
import java.util.Properties;
import org.apache.kafka.clients.admin.Admin;
import org.apache.kafka.clients.admin.AdminClientConfig;
import org.apache.kafka.clients.admin.DescribeClusterResult;

/** Exit 0 once the broker answers a metadata request and reports at least one node. */
public final class StackProbe {
  public static void main(String[] args) throws Exception {
    Properties props = new Properties();
    props.put(AdminClientConfig.BOOTSTRAP_SERVERS_CONFIG, args[0]);
    props.put(AdminClientConfig.REQUEST_TIMEOUT_MS_CONFIG, 3000);
    props.put(AdminClientConfig.DEFAULT_API_TIMEOUT_MS_CONFIG, 5000);
    try (Admin admin = Admin.create(props)) {
      DescribeClusterResult cluster = admin.describeCluster();
      int nodes = cluster.nodes().get().size();
      System.out.println("cluster " + cluster.clusterId().get() + ": " + nodes + " node(s)");
      System.exit(nodes > 0 ? 0 : 1);
    }
  }
}
EOF
  if command -v "$JAVAC" >/dev/null 2>&1; then
    "$JAVAC" -nowarn -d "${tmp}/probe" -cp "${tmp}/libs/*" "${tmp}/StackProbe.java" >&2 ||
      die "could not compile the readiness probe"
  else
    log "javac not found: readiness falls back to the port plus the broker's 'started' log line"
  fi
  rm -rf "${KAFKA_HOME}/libs" "${KAFKA_HOME}/probe"
  mv "${tmp}/libs" "${KAFKA_HOME}/libs"
  [[ -d "${tmp}/probe" ]] && mv "${tmp}/probe" "${KAFKA_HOME}/probe"
  mv "${tmp}/pom.xml" "${tmp}/StackProbe.java" "${KAFKA_HOME}/"
  rm -rf "$tmp"
  touch "${KAFKA_HOME}/.complete"
}

registry_jar() {
  local jar
  for jar in "${REGISTRY_HOME}/app/quarkus-run.jar" "${REGISTRY_HOME}"/app/*-runner.jar; do
    [[ -f "$jar" ]] && {
      echo "$jar"
      return 0
    }
  done
  return 1
}

ensure_registry() {
  [[ -f "${REGISTRY_HOME}/.complete" ]] && registry_jar >/dev/null && return 0
  need_mvn "Apicurio Registry ${APICURIO_VERSION}"
  log "fetching Apicurio Registry ${APICURIO_VERSION} from Maven Central into ${REGISTRY_HOME} (first run only)"
  mkdir -p "$REGISTRY_HOME"
  local tmp archive
  tmp="$(mktemp -d "${REGISTRY_HOME}/.tmp.XXXXXX")"
  (cd "$tmp" && mvn -B -q -Dstyle.color=never "${COPY_PLUGIN}:copy" \
    -Dartifact="io.apicurio:apicurio-registry-app:${APICURIO_VERSION}:tar.gz:all" \
    -DoutputDirectory="$tmp") >"${tmp}/mvn.log" 2>&1 || {
    tail -n 30 "${tmp}/mvn.log" >&2
    die "mvn could not fetch io.apicurio:apicurio-registry-app:${APICURIO_VERSION}:tar.gz:all (log: ${tmp}/mvn.log)"
  }
  archive="${tmp}/apicurio-registry-app-${APICURIO_VERSION}-all.tar.gz"
  mkdir -p "${tmp}/app"
  tar -xzf "$archive" -C "${tmp}/app"
  rm -f "$archive" # a copy stays in ~/.m2
  rm -rf "${REGISTRY_HOME}/app"
  mv "${tmp}/app" "${REGISTRY_HOME}/app"
  rm -rf "$tmp"
  registry_jar >/dev/null || die "no quarkus-run.jar or *-runner.jar in the Apicurio archive"
  touch "${REGISTRY_HOME}/.complete"
}

# ---------------------------------------------------------------------------------------------
# starting

# spawn PIDFILE LOG CMD...: detach CMD from this shell (own session, stdin closed), record its pid.
spawn() {
  local pidfile="$1" logfile="$2"
  shift 2
  [[ -f "$logfile" ]] && mv -f "$logfile" "${logfile}.prev"
  local launcher=(nohup)
  command -v setsid >/dev/null 2>&1 && launcher=(setsid nohup)
  # The inner shell writes its own pid, then execs the JVM, so the pid file names the JVM.
  # shellcheck disable=SC2016 # $$ and $@ are meant for the inner shell
  "${launcher[@]}" bash -c 'echo $$ >"$1"; shift; exec "$@"' _ "$pidfile" "$@" \
    >>"$logfile" 2>&1 </dev/null &
  local i
  for ((i = 0; i < 40; i++)); do
    [[ -s "$pidfile" ]] && return 0
    sleep 0.05
  done
}

# A throw-away CA, a certificate for localhost (broker and registry), a client certificate for
# mutual TLS, a second CA that signed nothing here (an untrusted one, for tests), and random
# passwords, each in a file only the owner can read.
make_secrets() {
  rm -rf "$TLS_DIR" "$SECRETS_DIR"
  mkdir -p "$TLS_DIR" "$SECRETS_DIR"
  chmod 700 "$SECRETS_DIR"
  command -v openssl >/dev/null 2>&1 || die "openssl not found (the secured stack makes its certificates with it)"
  (
    set -e
    cd "$TLS_DIR"
    local days=7 ca name
    for ca in ca other-ca; do
      openssl req -x509 -newkey rsa:2048 -nodes -sha256 -days "$days" -keyout "${ca}.key" -out "${ca}.pem" \
        -subj "/CN=streamscore ${ca} $(date +%s)" \
        -addext basicConstraints=critical,CA:TRUE -addext keyUsage=critical,keyCertSign,cRLSign
    done
    printf 'subjectAltName=DNS:localhost\nextendedKeyUsage=serverAuth,clientAuth\n' >server.ext
    printf 'extendedKeyUsage=clientAuth\n' >client.ext
    for name in server client; do
      openssl req -newkey rsa:2048 -nodes -sha256 -keyout "${name}.key" -out "${name}.csr" -subj "/CN=streamscore-${name}"
      openssl x509 -req -sha256 -days "$days" -in "${name}.csr" -CA ca.pem -CAkey ca.key -CAcreateserial \
        -out "${name}.pem" -extfile "${name}.ext"
    done
    # Kafka's PEM key store: the private key (PKCS#8) followed by the certificate chain.
    cat server.key server.pem ca.pem >broker-keystore.pem
    rm -f ./*.csr ./*.ext ./*.srl ca.key other-ca.key
  ) >"${RUN_DIR}/openssl.log" 2>&1 || {
    cat "${RUN_DIR}/openssl.log" >&2
    die "making the throw-away certificates failed"
  }
  [[ -s "${TLS_DIR}/broker-keystore.pem" && -s "${TLS_DIR}/client.pem" && -s "${TLS_DIR}/other-ca.pem" ]] || {
    cat "${RUN_DIR}/openssl.log" >&2
    die "making the throw-away certificates failed (see ${RUN_DIR}/openssl.log)"
  }
  local name
  for name in admin scorer registry; do
    head -c 24 /dev/urandom | base64 | tr -d '/+=\n' >"${SECRETS_DIR}/${name}"
  done
  printf 'user = "streamscore:%s"\n' "$(cat "${SECRETS_DIR}/registry")" >"${SECRETS_DIR}/registry.curl"
  chmod 600 "${SECRETS_DIR}"/* "${TLS_DIR}"/*.key "${TLS_DIR}/broker-keystore.pem"
}

write_kafka_config() {
  if secure; then
    write_secure_kafka_config
    write_kafka_log_config
    return
  fi
  cat >"${RUN_DIR}/server.properties" <<EOF
# Generated by scripts/stack.sh: one combined KRaft broker+controller.
process.roles=broker,controller
node.id=1
controller.quorum.voters=1@${HOST}:${KAFKA_CONTROLLER_PORT}
listeners=PLAINTEXT://${HOST}:${KAFKA_PORT},CONTROLLER://${HOST}:${KAFKA_CONTROLLER_PORT}
advertised.listeners=PLAINTEXT://${HOST}:${KAFKA_PORT}
controller.listener.names=CONTROLLER
inter.broker.listener.name=PLAINTEXT
listener.security.protocol.map=CONTROLLER:PLAINTEXT,PLAINTEXT:PLAINTEXT
EOF
  single_node_properties >>"${RUN_DIR}/server.properties"
  write_kafka_log_config
}

# Broker settings both variants share: one node, its data folder, no waiting on a lone member.
single_node_properties() {
  cat <<EOF
log.dirs=${KAFKA_DATA}
num.partitions=1
auto.create.topics.enable=true
offsets.topic.replication.factor=1
transaction.state.log.replication.factor=1
transaction.state.log.min.isr=1
share.coordinator.state.topic.replication.factor=1
share.coordinator.state.topic.min.isr=1
group.initial.rebalance.delay.ms=0
# A broker restarted after a crash registers again only once its old registration is fenced
# (after broker.session.timeout.ms, 9 s by default): on one local node, seconds of waiting for nothing.
broker.heartbeat.interval.ms=500
broker.session.timeout.ms=2500
EOF
}

write_secure_kafka_config() {
  local admin
  admin="$(cat "${SECRETS_DIR}/admin")"
  cat >"${RUN_DIR}/server.properties" <<EOF
# Generated by scripts/stack.sh (secured): SASL_SSL for clients and between brokers, SCRAM users.
process.roles=broker,controller
node.id=1
controller.quorum.voters=1@${HOST}:${KAFKA_CONTROLLER_PORT}
listeners=SASL_SSL://${HOST}:${KAFKA_PORT},CONTROLLER://${HOST}:${KAFKA_CONTROLLER_PORT}
advertised.listeners=SASL_SSL://${BROKERS}
controller.listener.names=CONTROLLER
inter.broker.listener.name=SASL_SSL
listener.security.protocol.map=CONTROLLER:PLAINTEXT,SASL_SSL:SASL_SSL
sasl.enabled.mechanisms=SCRAM-SHA-256,SCRAM-SHA-512
sasl.mechanism.inter.broker.protocol=SCRAM-SHA-512
listener.name.sasl_ssl.scram-sha-256.sasl.jaas.config=org.apache.kafka.common.security.scram.ScramLoginModule required;
listener.name.sasl_ssl.scram-sha-512.sasl.jaas.config=org.apache.kafka.common.security.scram.ScramLoginModule required username="admin" password="${admin}";
ssl.keystore.type=PEM
ssl.keystore.location=${TLS_DIR}/broker-keystore.pem
ssl.truststore.type=PEM
ssl.truststore.location=${TLS_DIR}/ca.pem
ssl.client.auth=requested
ssl.endpoint.identification.algorithm=https
EOF
  single_node_properties >>"${RUN_DIR}/server.properties"
  chmod 600 "${RUN_DIR}/server.properties"
}

write_kafka_log_config() {
  cat >"${RUN_DIR}/log4j2.properties" <<'EOF'
# Generated by scripts/stack.sh: everything to stdout, which `up` redirects to kafka.log.
status = warn
appender.out.type = Console
appender.out.name = STDOUT
appender.out.layout.type = PatternLayout
appender.out.layout.pattern = [%d] %p %m (%c)%n
rootLogger.level = INFO
rootLogger.appenderRef.out.ref = STDOUT
logger.statechange.name = state.change.logger
logger.statechange.level = WARN
logger.request.name = kafka.request.logger
logger.request.level = WARN
logger.clients.name = org.apache.kafka.clients
logger.clients.level = WARN
EOF
}

start_kafka() {
  if secure; then
    # Fresh certificates, passwords and storage (SCRAM users are written at format time).
    make_secrets
    rm -rf "$KAFKA_DATA"
  fi
  write_kafka_config
  local logcfg="-Dlog4j2.configurationFile=${RUN_DIR}/log4j2.properties"
  if [[ ! -f "${KAFKA_DATA}/meta.properties" ]]; then
    rm -rf "$KAFKA_DATA"
    local cluster_id
    # A KRaft cluster id is 16 random bytes in URL-safe base64 without padding. One that starts
    # with "-" (1 in 64) would be read as an option by the format command: Kafka's own
    # Uuid.randomUuid() draws again in that case, and so does this.
    cluster_id="-"
    while [[ "$cluster_id" == -* ]]; do
      cluster_id="$(head -c 16 /dev/urandom | base64 | tr '+/' '-_' | tr -d '=\n')"
    done
    local scram=() mechanism
    if secure; then
      for mechanism in SCRAM-SHA-256 SCRAM-SHA-512; do
        scram+=(--add-scram "${mechanism}=[name=admin,password=$(cat "${SECRETS_DIR}/admin")]")
        scram+=(--add-scram "${mechanism}=[name=scorer,password=$(cat "${SECRETS_DIR}/scorer")]")
      done
    fi
    "$JAVA" -Xmx256m "$logcfg" -cp "${KAFKA_HOME}/libs/*" kafka.tools.StorageTool format \
      -t "$cluster_id" -c "${RUN_DIR}/server.properties" "${scram[@]}" >"${RUN_DIR}/kafka-format.log" 2>&1 ||
      {
        cat "${RUN_DIR}/kafka-format.log" >&2
        die "formatting the KRaft storage in ${KAFKA_DATA} failed"
      }
  fi
  local heap
  read -r -a heap <<<"${KAFKA_HEAP_OPTS:--Xms256m -Xmx768m}"
  log "kafka: starting ${KAFKA_VERSION} on ${BROKERS} (controller ${HOST}:${KAFKA_CONTROLLER_PORT})"
  spawn "$KAFKA_PID" "$KAFKA_LOG" "$JAVA" "${heap[@]}" -XX:+UseG1GC -XX:MaxGCPauseMillis=20 \
    -Djava.awt.headless=true "$logcfg" "$KAFKA_MARK" \
    -cp "${KAFKA_HOME}/libs/*" kafka.Kafka "${RUN_DIR}/server.properties"
}

start_registry() {
  local jar heap
  jar="$(registry_jar)"
  read -r -a heap <<<"${REGISTRY_HEAP_OPTS:--Xms128m -Xmx512m}"
  local listen=(-Dquarkus.http.port="$REGISTRY_PORT")
  if secure; then
    # https only, and Quarkus's own basic auth with one user (the properties-file realm that
    # Apicurio's build includes) in front of every API path.
    listen=(
      -Dquarkus.http.port=0 -Dquarkus.http.insecure-requests=disabled
      -Dquarkus.http.ssl-port="$REGISTRY_PORT"
      -Dquarkus.http.ssl.certificate.files="${TLS_DIR}/server.pem"
      -Dquarkus.http.ssl.certificate.key-files="${TLS_DIR}/server.key"
      -Dquarkus.http.auth.basic=true
      -Dquarkus.security.users.embedded.enabled=true
      -Dquarkus.security.users.embedded.plain-text=true
      -Dquarkus.http.auth.permission.apis.paths=/apis/*
      -Dquarkus.http.auth.permission.apis.policy=authenticated
    )
    # The user's password goes in through the environment, not the command line.
    QUARKUS_SECURITY_USERS_EMBEDDED_USERS_STREAMSCORE="$(cat "${SECRETS_DIR}/registry")"
    export QUARKUS_SECURITY_USERS_EMBEDDED_USERS_STREAMSCORE
  fi
  log "registry: starting Apicurio Registry ${APICURIO_VERSION} on ${REGISTRY_URL%/apis/*}"
  # In-memory H2 storage (the 3.x default, spelled out); deletes explicitly allowed so tests can clean
  # up. Two settings make the ccompat API behave like Confluent's registry: BACKWARD enforced for
  # subjects without a level of their own (Apicurio's default is no check at all; note that
  # GET /config still answers NONE), and canonical hashing, so re-registering a subject's schema
  # with other whitespace or key order returns the existing id instead of adding a version.
  spawn "$REGISTRY_PID" "$REGISTRY_LOG" "$JAVA" "${heap[@]}" -XX:+UseSerialGC \
    -Djava.awt.headless=true "$REGISTRY_MARK" \
    -Dquarkus.http.host="$HOST" "${listen[@]}" \
    -Dapicurio.storage.kind=sql -Dapicurio.storage.sql.kind=h2 \
    -Dapicurio.rest.deletion.group.enabled=true \
    -Dapicurio.rest.deletion.artifact.enabled=true \
    -Dapicurio.rest.deletion.artifact-version.enabled=true \
    -Dapicurio.rules.global.compatibility=BACKWARD \
    -Dapicurio.ccompat.use-canonical-hash=true \
    -jar "$jar"
}

# wait_for NAME PIDFILE MARK LOG CHECK_FN
wait_for() {
  local name="$1" pidfile="$2" mark="$3" logfile="$4" check="$5" start=$SECONDS
  while ((SECONDS - start < TIMEOUT)); do
    if ! owned "$pidfile" "$mark"; then
      log "$name exited during startup; last lines of ${logfile}:"
      tail -n 40 "$logfile" >&2 || true
      rm -f "$pidfile"
      exit 1
    fi
    if "$check"; then
      log "$name: ready after $((SECONDS - start))s (pid $(read_pid "$pidfile"))"
      return 0
    fi
    sleep 1
  done
  log "$name did not answer within ${TIMEOUT}s; last lines of ${logfile}:"
  tail -n 40 "$logfile" >&2 || true
  log "it is still running as pid $(read_pid "$pidfile"); '$0 down' stops it"
  exit 1
}

client_env() {
  printf 'KAFKA_BROKERS=%s\nSCHEMA_REGISTRY_URL=%s\n' "$BROKERS" "$REGISTRY_URL"
  if secure; then
    printf '%s\n' \
      KAFKA_SSL=true "KAFKA_SSL_CA_FILE=${TLS_DIR}/ca.pem" \
      KAFKA_SASL_MECHANISM=scram-sha-512 KAFKA_SASL_USERNAME=scorer \
      "KAFKA_SASL_PASSWORD_FILE=${SECRETS_DIR}/scorer" \
      SCHEMA_REGISTRY_USERNAME=streamscore "SCHEMA_REGISTRY_PASSWORD_FILE=${SECRETS_DIR}/registry" \
      "SCHEMA_REGISTRY_SSL_CA_FILE=${TLS_DIR}/ca.pem" "STACK_TLS_DIR=${TLS_DIR}"
  fi
}

print_env() {
  client_env | tee "${RUN_DIR}/stack.env"
}

cmd_up() {
  acquire_lock
  check_java
  local kafka_up=0 registry_up=1
  if owned "$KAFKA_PID" "$KAFKA_MARK"; then
    kafka_up=1
  else
    rm -f "$KAFKA_PID"
    port_open "$KAFKA_PORT" && die "port ${KAFKA_PORT} is in use by a process that this stack did not start (set KAFKA_PORT)"
    port_open "$KAFKA_CONTROLLER_PORT" &&
      die "port ${KAFKA_CONTROLLER_PORT} is in use by a process that this stack did not start (set KAFKA_CONTROLLER_PORT)"
  fi
  if with_registry; then
    registry_up=0
    if owned "$REGISTRY_PID" "$REGISTRY_MARK"; then
      registry_up=1
    else
      rm -f "$REGISTRY_PID"
      port_open "$REGISTRY_PORT" && die "port ${REGISTRY_PORT} is in use by a process that this stack did not start (set REGISTRY_PORT)"
    fi
  fi

  if ((kafka_up && registry_up)) && port_open "$KAFKA_PORT" && { ! with_registry || registry_answers; }; then
    log "already running (kafka pid $(read_pid "$KAFKA_PID"))"
    print_env
    return 0
  fi

  ((kafka_up)) || ensure_kafka
  ((registry_up)) || ensure_registry
  # Both JVMs boot in parallel; a service whose pid is alive but not yet answering is just awaited.
  ((kafka_up)) || start_kafka
  ((registry_up)) || start_registry
  wait_for kafka "$KAFKA_PID" "$KAFKA_MARK" "$KAFKA_LOG" kafka_answers
  if with_registry; then
    wait_for registry "$REGISTRY_PID" "$REGISTRY_MARK" "$REGISTRY_LOG" registry_answers
    log "logs: ${KAFKA_LOG} ${REGISTRY_LOG}"
  else
    log "log: ${KAFKA_LOG}"
  fi
  print_env
}

cmd_down() {
  acquire_lock
  if with_registry; then stop_pid registry "$REGISTRY_PID" "$REGISTRY_MARK"; fi
  stop_pid kafka "$KAFKA_PID" "$KAFKA_MARK"
  # Next `up` formats a fresh, empty broker (the registry is in-memory anyway).
  rm -rf "$KAFKA_DATA"
  if secure; then rm -rf "$TLS_DIR" "$SECRETS_DIR"; fi
  rm -f "${RUN_DIR}/stack.env"
  log "stopped; kafka data removed (${KAFKA_DATA})"
}

cmd_status() {
  local rc=0 pid
  if owned "$KAFKA_PID" "$KAFKA_MARK" && port_open "$KAFKA_PORT"; then
    pid="$(read_pid "$KAFKA_PID")"
    printf '%-9s running  pid %-8s %-22s log %s\n' kafka "$pid" "$BROKERS" "$KAFKA_LOG"
  else
    printf '%-9s stopped  %-12s %-22s log %s\n' kafka "" "$BROKERS" "$KAFKA_LOG"
    rc=3
  fi
  if owned "$REGISTRY_PID" "$REGISTRY_MARK" && registry_answers; then
    pid="$(read_pid "$REGISTRY_PID")"
    printf '%-9s running  pid %-8s %-22s log %s\n' registry "$pid" "${HOST}:${REGISTRY_PORT}" "$REGISTRY_LOG"
  else
    printf '%-9s stopped  %-12s %-22s log %s\n' registry "" "${HOST}:${REGISTRY_PORT}" "$REGISTRY_LOG"
    rc=3
  fi
  if ((rc == 0)); then client_env; fi
  return "$rc"
}

case "${1:-}" in
  up) cmd_up ;;
  down) cmd_down ;;
  status) cmd_status ;;
  *) usage ;;
esac
