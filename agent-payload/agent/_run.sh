#!/usr/bin/env bash
# _run.sh: start the system VM agent (secondary storage VM or console proxy) in the
# foreground. Lives at the root of agent.zip, unpacked in /usr/local/cloud/systemvm by
# systemvm-patch, and started by systemvm-agent.service.
#
# The classpath is this directory, ./conf and every jar beside this script, as in
# CloudStack's systemvm.zip. The boot command line that the management server gave the VM
# (saved in /var/cache/cloud/cmdline) is passed to the agent as key=value arguments, so
# host=, port=, zone=, pod=, guid= and type= there override conf/agent.properties.
#
# Exit status when it cannot start: 127 no Java, 78 (EX_CONFIG) no jars; systemvm-agent.service does
# not restart it for those.
#
# Environment:
#   JAVA_HOME       use $JAVA_HOME/bin/java instead of the java on PATH
#   CLOUD_CMDLINE   file holding the boot command line (default /var/cache/cloud/cmdline)
#   CLOUD_LOG_HOME  log directory handed to log4j as log.home (default /var/log/cloud)
#   JAVA_OPTS       extra JVM options, appended last

set -euo pipefail

prog=_run.sh
# die CODE MESSAGE...
die() {
    local code=$1
    shift
    printf '%s: error: %s\n' "$prog" "$*" >&2
    exit "$code"
}

cd "$(dirname "$(readlink -f "$0")")"

# Java: JAVA_HOME first, then PATH.
if [[ -n "${JAVA_HOME:-}" ]]; then
    java="$JAVA_HOME/bin/java"
    [[ -x "$java" ]] || die 127 "JAVA_HOME is $JAVA_HOME but $java is not an executable; fix or unset JAVA_HOME"
elif java=$(command -v java); then
    :
else
    die 127 "java not found on PATH: install a Java runtime in the system VM template (Debian: openjdk-17-jre-headless) or set JAVA_HOME"
fi

# Classpath: ./ and ./conf (agent.properties, log4j-cloud.xml), then the jars, sorted.
shopt -s nullglob
jars=(*.jar)
shopt -u nullglob
if ((${#jars[@]} == 0)); then
    die 78 "no agent jars in $PWD: this payload carries none; build the ISO with --payload pointing at a CloudStack build's systemvm agent directory"
fi
cp="./:./conf"
for jar in "${jars[@]}"; do
    cp="$cp:$jar"
done

# key=value words of the boot command line become agent arguments; other words are dropped.
args=()
words=()
cmdline_file=${CLOUD_CMDLINE:-/var/cache/cloud/cmdline}
if [[ -r "$cmdline_file" ]]; then
    read -r -a words <"$cmdline_file" || true
    for word in "${words[@]}"; do
        [[ "$word" == ?*=* ]] && args+=("$word")
    done
else
    printf '%s: warning: %s not readable; using conf/agent.properties only\n' "$prog" "$cmdline_file" >&2
fi

# Heap: 80% of RAM, leaving at least 80 MiB to the rest of the VM.
mem_kib=$(awk '/^MemTotal:/ { print $2 }' /proc/meminfo)
mem_mib=$((mem_kib / 1024))
heap=$((mem_mib * 8 / 10))
if ((mem_mib - 80 < heap)); then
    heap=$((mem_mib - 80))
fi
if ((heap < 128)); then
    heap=128
fi

log_home=${CLOUD_LOG_HOME:-/var/log/cloud}
mkdir -p "$log_home"

jvm=(
    -Djavax.net.ssl.trustStore=./certs/realhostip.keystore
    -Djdk.tls.ephemeralDHKeySize=2048
    -Dlog.home="$log_home"
    -Dlog4j.configuration=log4j-cloud.xml
    -Xmx"${heap}m"
)
# JAVA_OPTS is a list of words on purpose.
# shellcheck disable=SC2206
extra=(${JAVA_OPTS:-})

exec "$java" "${jvm[@]}" "${extra[@]}" -cp "$cp" com.cloud.agent.AgentShell "${args[@]}" "$@"
