# The guest prime's network, sourced by /init (and by the tests, with another
# folder for /sys/class/net and stand-ins for ip and udhcpc).
#
# Under Hyper-V the network card is a VMBus device: /init loads hv_vmbus and
# hv_netvsc, but the host's channel offers can arrive after that, so the card
# may not exist yet when /init looks. prime_network waits (bounded) for one.

# prime_interfaces DIR: the interfaces under DIR (/sys/class/net) other than lo.
prime_interfaces() {
  for dev in "$1"/*; do
    [ -e "$dev" ] || continue
    [ "${dev##*/}" = lo ] || echo "${dev##*/}"
  done
}

# prime_wait_for_interface DIR TENTHS: until an interface other than lo is under
# DIR, at most TENTHS tenths of a second; says how long it waited.
prime_wait_for_interface() {
  waited=0
  while [ -z "$(prime_interfaces "$1")" ]; do
    if [ "$waited" -ge "$2" ]; then
      echo "nestlab-prime: no network interface after $(( $2 / 10 )) s"
      return 1
    fi
    sleep 0.1
    waited=$(( waited + 1 ))
  done
  [ "$waited" -eq 0 ] || echo "nestlab-prime: network interface after $(( waited * 100 )) ms"
}

# prime_network DIR STATIC_IP STATIC_GW: every interface up, by DHCP, or the first
# one with the static address (Hyper-V's NAT has no DHCP).
prime_network() {
  ip link set lo up
  prime_wait_for_interface "$1" 300 || return 1
  for iface in $(prime_interfaces "$1"); do
    ip link set "$iface" up
    if [ -n "$2" ]; then
      ip addr add "$2" dev "$iface"
      [ -z "$3" ] || ip route replace default via "$3" dev "$iface"
      echo "nestlab-prime: $iface $2 (static)"
      return 0
    fi
    udhcpc -b -q -i "$iface" -s /etc/udhcpc.script -x "hostname:$(hostname)" >/dev/null 2>&1
  done
}
