#!/bin/sh
# Runs a command under the restrictions the examples/systemd units ask systemd for, as far as they
# can be had without systemd as PID 1 (this machine has none): run it as `unshare --mount
# --propagation private hardened-sandbox.sh HOME UID -- cmd …` as root.
#   ProtectSystem=strict + StateDirectory=  every mount read-only, HOME bound read-write on itself
#   User=                                   uid and gid UID, no supplementary groups
#   NoNewPrivileges=yes                     --no-new-privs
#   CapabilityBoundingSet= (empty)          --bounding-set=-all, no inheritable capabilities
# Not emulated: the syscall filter, the address-family list, ProtectProc, PrivateTmp (here /tmp
# is read-only too, which is stricter), PrivateDevices. `exec` keeps one pid from unshare to the
# command, so the caller stops it by its own pid.
set -eu
home=$1
uid=$2
shift 3
awk '{print $5}' /proc/self/mountinfo | sort -u | while read -r mp; do
  mount -o remount,bind,ro "$mp" 2>/dev/null || true
done
mount --bind "$home" "$home"
mount -o remount,bind,rw "$home"
exec setpriv --reuid="$uid" --regid="$uid" --clear-groups --no-new-privs --bounding-set=-all --inh-caps=-all "$@"
