#!/bin/sh
# patch-sysvms.sh: live-patch a running system VM (CloudStack 4.17+, `--layout patch-files`).
#
# CloudStack 4.17 and later attach no ISO: the management server copies agent.zip,
# cloud-scripts.tgz and this script into /var/cache/cloud/ of the running VM, runs it, and
# reads "version:<digest of cloud-scripts.tgz>" from its output: stdout and stderr joined,
# split at ":" into exactly two parts (md5 up to 4.21, sha512 from 4.22). So that is all this
# script prints, on success only; everything else goes to /var/log/livepatchsystemvm.log. The work is systemvm-patch's,
# taken from the cloud-scripts.tgz beside this script (the VM may carry an older copy or
# none), run on this directory instead of a CD. Then the VM's services listed in
# /var/cache/cloud/enabled_svcs that are running are restarted, when something changed.
# Run from /var/cache/cloud, it then moves cloud-scripts.tgz to /usr/share/cloud/ and
# removes agent.zip and itself, as CloudStack's does.
#
# Exit status: systemvm-patch's (0 done or nothing to do, 1 failed), or 1 when a service
# does not come back after its restart.
# Environment: SYSTEMVM_ROOT prefixes every path on the VM side (for tests).

set -u
PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin:$PATH

prog=patch-sysvms.sh
log() {
    printf '%s: %s\n' "$prog" "$*" >&2
}
die() {
    printf '%s: error: %s\n' "$prog" "$*" >&2
    exit 1
}

here=$(cd "$(dirname "$0")" && pwd) || die "cannot find the directory of $0"
root=${SYSTEMVM_ROOT:-}
root=${root%/}
cache=$root/var/cache/cloud

# Everything but the version line goes to the log, as CloudStack's own script does.
mkdir -p "$root/var/log" && exec 3>&1 >>"$root/var/log/livepatchsystemvm.log" 2>&1 ||
    exit 1

for member in agent.zip cloud-scripts.tgz; do
    [ -f "$here/$member" ] || die "$here/$member is missing; the management server copies it here with this script"
done

tmp=$(mktemp -d) || die "cannot create a temporary directory"
trap 'rm -rf "$tmp"' EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# The patcher: the new one from the archive, else the one the template carries.
patcher=
if tar -xzf "$here/cloud-scripts.tgz" -C "$tmp" --wildcards '*opt/cloud/bin/systemvm-patch' 2>/dev/null; then
    patcher=$(find "$tmp" -type f -name systemvm-patch | head -n 1)
fi
if [ -z "$patcher" ] && [ -f "$root/opt/cloud/bin/systemvm-patch" ]; then
    patcher=$root/opt/cloud/bin/systemvm-patch
fi
[ -n "$patcher" ] ||
    die "neither $here/cloud-scripts.tgz nor this VM has opt/cloud/bin/systemvm-patch"

signatures() {
    cat "$cache/cloud-scripts-signature" "$cache/agent-signature" 2>/dev/null
}
before=$(signatures)
SYSTEMVM_ISO_DIR=$here sh "$patcher" || exit $?
after=$(signatures)

status=0
if [ "$before" != "$after" ] && [ -z "$root" ] && [ -d /run/systemd/system ] &&
    [ -r "$cache/enabled_svcs" ]; then
    # Units may have changed in cloud-scripts.tgz (systemvm-patch reloaded systemd).
    # One line of unit names, separated by spaces.
    svcs=$(cat "$cache/enabled_svcs")
    for svc in $svcs; do
        systemctl is-active --quiet "$svc" || continue
        log "restarting $svc"
        if ! systemctl restart "$svc" || ! systemctl is-active --quiet "$svc"; then
            log "error: $svc did not come back after the restart"
            status=1
        fi
    done
fi

if [ "$here" = "$cache" ]; then
    if ! mkdir -p "$root/usr/share/cloud" ||
        ! mv -f "$here/cloud-scripts.tgz" "$root/usr/share/cloud/cloud-scripts.tgz"; then
        log "warning: cannot move cloud-scripts.tgz to $root/usr/share/cloud"
    fi
    rm -f "$here/agent.zip" "$here/patch-sysvms.sh"
fi

if [ "$status" = 0 ]; then
    echo "version:$(head -n 1 "$cache/cloud-scripts-signature")" >&3
fi
exit "$status"
