#!/usr/bin/env bash
# Test hosts on this machine: N network namespaces pcs-h0 … pcs-h<N-1>, each with its own TCP stack and one
# address 10.77.0.<i+1>/24 on eth0, all plugged into a bridge inside a namespace of its own (pcs-sw), so the
# subnet exists only inside namespaces this script made: nothing is routed to or from the machine's own network.
# Writes the hostfile ($PCS_HOSTS_DIR/hostfile, default /tmp/pcs-hosts) that scripts/hosts/mpirun uses.
# Idempotent: hosts already up are kept, missing ones added. Needs root (CI runs as root).
#   bash scripts/hosts/up.sh N          then  scripts/hosts/mpirun -n 2 pcs-mpi …;  bash scripts/hosts/down.sh
set -euo pipefail
count=${1:?usage: scripts/hosts/up.sh N}
dir=${PCS_HOSTS_DIR:-/tmp/pcs-hosts}
[ "$count" -ge 1 ] && [ "$count" -le 200 ] || { echo "up.sh: N must be 1…200, got '$count'" >&2; exit 2; }
[ "$(id -u)" -eq 0 ] || { echo "up.sh: network namespaces need root" >&2; exit 1; }
exists() { ip netns list | awk '{print $1}' | grep -qx "$1"; }

if ! exists pcs-sw; then
  ip netns add pcs-sw
  ip -n pcs-sw link add br0 type bridge
  ip -n pcs-sw link set br0 up
  ip -n pcs-sw link set lo up
fi
for ((i = 0; i < count; i++)); do
  ns=pcs-h$i
  exists "$ns" && continue
  ip netns add "$ns"
  # One cable per host: eth0 inside the host, port<i> on the switch's bridge.
  ip link add "pcs-e$i" type veth peer name "pcs-p$i"
  ip link set "pcs-e$i" netns "$ns"
  ip link set "pcs-p$i" netns pcs-sw
  ip -n "$ns" link set "pcs-e$i" name eth0
  ip -n pcs-sw link set "pcs-p$i" name "port$i"
  ip -n pcs-sw link set "port$i" master br0 up
  ip -n "$ns" addr add "10.77.0.$((i + 1))/24" dev eth0
  ip -n "$ns" link set eth0 up
  ip -n "$ns" link set lo up
done

mkdir -p "$dir"
hosts=$(ip netns list | awk '{print $1}' | grep -E '^pcs-h[0-9]+$' | sed 's/pcs-h//' | sort -n)
: > "$dir/hostfile.partial"
for i in $hosts; do echo "10.77.0.$((i + 1)) slots=64" >> "$dir/hostfile.partial"; done
mv "$dir/hostfile.partial" "$dir/hostfile"
# Every host answers the first one over TCP (a listener in host i, a connection from pcs-h0; no ping on Debian's
# minimal images). A failure here means the bed is broken, so stop before any test blames the program.
for i in $hosts; do
  [ "$i" -eq 0 ] && continue
  addr=10.77.0.$((i + 1))
  ip netns exec "pcs-h$i" timeout 5 python3 -c "import socket; s = socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1); s.bind(('$addr', 7799)); s.listen(1); s.accept()" &
  listener=$!
  ok=0
  for _ in $(seq 50); do
    if ip netns exec pcs-h0 python3 -c "import socket; socket.create_connection(('$addr', 7799), timeout=1)" 2> /dev/null; then ok=1; break; fi
    sleep 0.1
  done
  wait "$listener" 2> /dev/null || true
  [ "$ok" -eq 1 ] || { echo "up.sh: pcs-h0 cannot reach $addr (pcs-h$i)" >&2; exit 1; }
done
echo "up.sh: hosts $(echo $hosts | sed 's/\([0-9]*\)/pcs-h\1/g') on 10.77.0.0/24; hostfile $dir/hostfile"
