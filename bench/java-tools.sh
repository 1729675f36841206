#!/usr/bin/env bash
# Kafka's own perf tools for the bench's reference numbers: prints a Java class path holding
# org.apache.kafka.tools.ProducerPerformance and ConsumerPerformance (the kafka-tools jar) and
# what they need, fetched from Maven Central on first use the way scripts/stack.sh fetches the
# broker (maven-dependency-plugin copy-dependencies of a generated pom).
#
#   bench/java-tools.sh VERSION    class path on stdout, progress on stderr
#
# The broker's download (scripts/stack.sh) has no kafka-tools jar, so it gets a folder of its own:
# ${STREAMSCORE_CACHE:-~/.cache/streamscore}/kafka-tools-VERSION/libs. connect-runtime (a
# dependency of kafka-tools for the Connect tools, with Jetty and Jersey behind it) is left out:
# the perf tools never load it.
set -euo pipefail

VERSION="${1:?usage: bench/java-tools.sh KAFKA_VERSION}"
# The Log4j 2 backend the broker runs with (scripts/stack.sh), so the tools log as it does.
LOG4J_VERSION="2.25.5"
DEPENDENCY_PLUGIN="org.apache.maven.plugins:maven-dependency-plugin:3.8.1"
CACHE="${STREAMSCORE_CACHE:-${HOME}/.cache/streamscore}"
HOME_DIR="${CACHE}/kafka-tools-${VERSION}"

log() { printf '[java-tools] %s\n' "$*" >&2; }
die() {
  log "error: $*"
  exit 1
}

if [[ ! -f "${HOME_DIR}/.complete" ]]; then
  command -v mvn >/dev/null 2>&1 || die "mvn not found; it is needed once to fetch org.apache.kafka:kafka-tools:${VERSION}"
  log "fetching org.apache.kafka:kafka-tools:${VERSION} from Maven Central into ${HOME_DIR} (first run only)"
  mkdir -p "$HOME_DIR"
  tmp="$(mktemp -d "${HOME_DIR}/.tmp.XXXXXX")"
  cat >"${tmp}/pom.xml" <<EOF
<project xmlns="http://maven.apache.org/POM/4.0.0">
  <modelVersion>4.0.0</modelVersion>
  <groupId>local.streamscore</groupId>
  <artifactId>kafka-perf-tools</artifactId>
  <version>1</version>
  <packaging>pom</packaging>
  <dependencies>
    <dependency>
      <groupId>org.apache.kafka</groupId><artifactId>kafka-tools</artifactId><version>${VERSION}</version>
      <exclusions>
        <exclusion><groupId>org.apache.kafka</groupId><artifactId>connect-runtime</artifactId></exclusion>
      </exclusions>
    </dependency>
    <dependency><groupId>org.apache.logging.log4j</groupId><artifactId>log4j-core</artifactId><version>${LOG4J_VERSION}</version></dependency>
    <dependency><groupId>org.apache.logging.log4j</groupId><artifactId>log4j-slf4j-impl</artifactId><version>${LOG4J_VERSION}</version></dependency>
  </dependencies>
</project>
EOF
  (cd "$tmp" && mvn -B -q -Dstyle.color=never -f pom.xml "${DEPENDENCY_PLUGIN}:copy-dependencies" \
    -DincludeScope=runtime -DoutputDirectory="${tmp}/libs") >"${tmp}/mvn.log" 2>&1 || {
    tail -n 30 "${tmp}/mvn.log" >&2
    die "mvn could not resolve org.apache.kafka:kafka-tools:${VERSION} (log: ${tmp}/mvn.log)"
  }
  ls "${tmp}/libs"/kafka-tools-"${VERSION}".jar >/dev/null 2>&1 || die "no kafka-tools-${VERSION}.jar in what mvn fetched"
  rm -rf "${HOME_DIR}/libs"
  mv "${tmp}/libs" "${HOME_DIR}/libs"
  rm -rf "$tmp"
  touch "${HOME_DIR}/.complete"
fi
printf '%s\n' "${HOME_DIR}/libs/*"
