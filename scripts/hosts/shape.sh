#!/usr/bin/env bash
# Shapes every test host's link (egress of each host's eth0, so both directions of a transfer): a rate and a one-way
# delay with netem, e.g. `shape.sh 1gbit 0.2ms`, `shape.sh 10gbit 0.05ms`; `shape.sh off` removes the shaping.
set -euo pipefail
rate=${1:?usage: scripts/hosts/shape.sh RATE DELAY | off}
for ns in $(ip netns list | awk '{print $1}' | grep -E '^pcs-h[0-9]+$'); do
  ip netns exec "$ns" tc qdisc del dev eth0 root 2> /dev/null || true
  if [ "$rate" != off ]; then
    delay=${2:?usage: scripts/hosts/shape.sh RATE DELAY}
    # A queue of ~2× the bandwidth-delay product plus room for bursts, so shaping delays packets rather than dropping them.
    ip netns exec "$ns" tc qdisc add dev eth0 root netem rate "$rate" delay "$delay" limit 100000
  fi
done
