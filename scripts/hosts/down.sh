#!/usr/bin/env bash
# Removes the test hosts of up.sh (every pcs-h<i> namespace and the pcs-sw switch; their links go with them) and the
# hostfile. Processes still running inside a host are killed first. Idempotent.
set -uo pipefail
dir=${PCS_HOSTS_DIR:-/tmp/pcs-hosts}
for ns in $(ip netns list | awk '{print $1}' | grep -E '^pcs-(h[0-9]+|sw)$'); do
  pids=$(ip netns pids "$ns" 2> /dev/null)
  [ -n "$pids" ] && kill -9 $pids 2> /dev/null
  ip netns del "$ns"
done
rm -f "$dir/hostfile"
exit 0
