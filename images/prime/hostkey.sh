# Sourced by the prime's /init: its SSH host key lives on the guest's own disk, made at
# its first boot and read at every later one. It survives restarts of the L2 and of its
# L1, so the key nestlab pins keeps meaning something; a rebuilt guest (a new disk) gets a
# new key. Layout at the start of the disk: the magic, the key's length in 8 digits,
# the key in dropbear's format. Nothing else uses the disk.

HOSTKEY_MAGIC=NESTLAB-HOSTKEY1

# The first disk (virtio under KVM, hv_storvsc under Hyper-V); it may take a moment to
# appear after its module loads. Prints nothing when there is none.
first_disk() {
  tries=0
  while [ "$tries" -lt 50 ]; do
    for disk in /sys/block/vd* /sys/block/sd*; do
      [ -e "$disk" ] && echo "/dev/${disk##*/}" && return 0
    done
    sleep 0.1
    tries=$((tries + 1))
  done
  return 1
}

# prime_hostkey DISK KEYFILE: leave the guest's host key in KEYFILE.
prime_hostkey() {
  keydisk=$1
  keyfile=$2
  if [ -n "$keydisk" ] && [ "$(head -c 16 "$keydisk" 2>/dev/null)" = "$HOSTKEY_MAGIC" ]; then
    size=$(expr "$(dd if="$keydisk" bs=1 skip=16 count=8 2>/dev/null)" + 0)
    dd if="$keydisk" bs=1 skip=24 count="$size" of="$keyfile" 2>/dev/null
  fi
  if dropbearkey -y -f "$keyfile" >/dev/null 2>&1; then
    echo "nestlab-prime: host key from $keydisk"
    return 0
  fi
  rm -f "$keyfile"
  dropbearkey -t ed25519 -f "$keyfile" >/dev/null 2>&1 || return 1
  if [ -z "$keydisk" ]; then
    echo "nestlab-prime: no disk: the host key is new at every boot"
    return 0
  fi
  { printf '%s%08d' "$HOSTKEY_MAGIC" "$(wc -c < "$keyfile")"; cat "$keyfile"; } |
    dd of="$keydisk" conv=notrunc 2>/dev/null
  sync
  echo "nestlab-prime: new host key, kept on $keydisk"
}
