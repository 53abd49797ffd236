#!/bin/sh
# agent-status.sh: show what the system VM agent is and whether it runs.
#
# Prints the ISO version and checksums that systemvm-patch recorded, the agent directory
# and its jars, the Java runtime, and the agent's process. Exits 0 when the agent runs,
# 3 when it does not (the LSB "status" convention), so it can serve as a health check.
#
# Environment: SYSTEMVM_ROOT prefixes /var/cache/cloud (for tests).

agent_dir=$(cd "$(dirname "$0")/.." && pwd)
cache=${SYSTEMVM_ROOT:-}/var/cache/cloud

# show LABEL FILE: the file's first line, or "unknown".
show() {
    if [ -r "$2" ]; then
        printf '%-18s %s\n' "$1:" "$(head -n 1 "$2")"
    else
        printf '%-18s %s\n' "$1:" "unknown"
    fi
}

show "iso version" "$cache/systemvm-iso.version"
show "agent md5" "$cache/agent-signature"
show "scripts md5" "$cache/cloud-scripts-signature"
printf '%-18s %s\n' "agent dir:" "$agent_dir"
printf '%-18s %s\n' "agent jars:" "$(find "$agent_dir" -maxdepth 1 -name '*.jar' | wc -l)"

if [ -n "${JAVA_HOME:-}" ]; then
    java=$JAVA_HOME/bin/java
else
    java=$(command -v java || true)
fi
if [ -n "$java" ] && [ -x "$java" ]; then
    printf '%-18s %s\n' "java:" "$("$java" -version 2>&1 | head -n 1)"
else
    printf '%-18s %s\n' "java:" "not installed"
fi

# The agent's pid, from /proc so that procps need not be installed.
pid=
for cmdline in /proc/[0-9]*/cmdline; do
    if tr '\0' ' ' <"$cmdline" 2>/dev/null | grep -q 'com\.cloud\.agent\.AgentShell'; then
        pid=${cmdline#/proc/}
        pid=${pid%/cmdline}
        break
    fi
done
if [ -n "$pid" ]; then
    printf '%-18s %s\n' "agent:" "running (pid $pid)"
    exit 0
fi
printf '%-18s %s\n' "agent:" "not running"
exit 3
