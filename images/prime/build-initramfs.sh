#!/bin/sh
# Runs inside the prime's build root (chroot): assembles /prime/initrd.img
# from busybox, dropbear (with the libraries it links) and the listed modules,
# and puts the kernel beside it as /prime/vmlinuz, with isolinux for its ISO.
set -eu
kver="$(ls /lib/modules | head -n 1)"
tree=/tmp/prime-tree
rm -rf "$tree" /prime
mkdir -p "$tree/bin" "$tree/sbin" "$tree/etc" "$tree/root" "$tree/lib/modules/$kver" /prime

cp /bin/busybox "$tree/bin/busybox"
for tool in /usr/sbin/dropbear /usr/bin/dropbearkey; do
  cp "$tool" "$tree/sbin/"
  ldd "$tool" | awk '/=>/ { print $3 } /^\t\/lib/ { print $1 }' | while read -r lib; do
    mkdir -p "$tree$(dirname "$lib")"
    cp -L "$lib" "$tree$lib"
  done
done
# The dynamic loader at the path the binaries ask for.
mkdir -p "$tree/lib64"
cp -L /lib64/ld-linux-x86-64.so.2 "$tree/lib64/"

grep -v '^#' /tmp/prime-recipe/modules | while read -r module; do
  [ -z "$module" ] && continue
  modprobe --set-version "$kver" --show-depends "$module" | awk '$1 == "insmod" { print $2 }' |
    while read -r ko; do
      mkdir -p "$tree$(dirname "$ko")"
      cp "$ko" "$tree$ko"
    done
done
cp "/lib/modules/$kver/modules.order" "/lib/modules/$kver/modules.builtin" "$tree/lib/modules/$kver/"
depmod -b "$tree" "$kver"

install -m 0755 /tmp/prime-recipe/init "$tree/init"
install -m 0755 /tmp/prime-recipe/udhcpc.script "$tree/etc/udhcpc.script"
install -m 0644 /tmp/prime-recipe/hostkey.sh "$tree/etc/hostkey.sh"
install -m 0644 /tmp/prime-recipe/network.sh "$tree/etc/network.sh"
grep -v '^#' /tmp/prime-recipe/modules > "$tree/etc/prime-modules"
echo 'root:x:0:0:root:/root:/bin/sh' > "$tree/etc/passwd"
echo 'root:x:0:' > "$tree/etc/group"
echo '/bin/sh' > "$tree/etc/shells"

(cd "$tree" && find . | cpio --quiet -o -H newc | gzip -9) > /prime/initrd.img
cp "/boot/vmlinuz-$kver" /prime/vmlinuz
# For the prime's bootable ISO (BIOS, El Torito): isolinux and its core module.
cp /usr/lib/ISOLINUX/isolinux.bin /usr/lib/syslinux/modules/bios/ldlinux.c32 /prime/
