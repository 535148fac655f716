#!/usr/bin/env bash
# Shapes every test host's link (egress of each host's eth0, so both directions of a transfer): a rate and a one-way
# delay, e.g. `shape.sh 1gbit 0.2ms`, `shape.sh 10gbit 0.05ms`; `shape.sh off` removes the shaping.
# With netem (rate and delay). Kernels without sch_netem (this project's VM: `Specified qdisc kind is unknown`)
# get tbf, which limits the rate only: the delay is then not applied, and a line on stderr says so.
set -euo pipefail
rate=${1:?usage: scripts/hosts/shape.sh RATE DELAY | off}
hosts=$(ip netns list | awk '{print $1}' | grep -E '^pcs-h[0-9]+$' || true)
[ -n "$hosts" ] || { echo "shape.sh: no test hosts; run scripts/hosts/up.sh N first" >&2; exit 1; }
delay=${2:-0ms}
[ "$rate" = off ] || [ $# -ge 2 ] || { echo "usage: scripts/hosts/shape.sh RATE DELAY | off" >&2; exit 2; }
# tbf's bucket: 10 ms of the rate, at least 64 KiB (one GSO segment of the veth), so it limits the rate without
# dropping whole segments.
burst_bytes() {
  awk -v r="$1" 'BEGIN {
    n = r + 0; u = tolower(substr(r, length(n "") + 1))
    m = (u == "gbit") ? 1e9 : (u == "mbit") ? 1e6 : (u == "kbit") ? 1e3 : (u == "bit" || u == "") ? 1 : -1
    if (m < 0 || n <= 0) { exit 1 }
    b = n * m / 8 / 100; if (b < 65536) b = 65536; printf "%d", b }'
}
netem=1
warned=0
for ns in $hosts; do
  ip netns exec "$ns" tc qdisc del dev eth0 root 2> /dev/null || true
  [ "$rate" = off ] && continue
  if [ "$netem" -eq 1 ] && ip netns exec "$ns" tc qdisc add dev eth0 root netem rate "$rate" delay "$delay" limit 100000 2> /dev/null; then
    continue
  fi
  netem=0
  burst=$(burst_bytes "$rate") || { echo "shape.sh: rate '$rate' is not NUMBER[k|m|g]bit" >&2; exit 2; }
  ip netns exec "$ns" tc qdisc add dev eth0 root tbf rate "$rate" burst "$burst" latency 100ms
  if [ "$warned" -eq 0 ] && [ "$delay" != 0ms ] && [ "$delay" != 0 ]; then
    echo "shape.sh: this kernel has no netem: links limited to $rate with tbf, the $delay delay not applied" >&2
    warned=1
  fi
done
