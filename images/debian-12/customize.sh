#!/bin/sh
# mmdebstrap customize hook for the debian-12 L1 image: $1 is the new root.
# Leaves no password, key or machine identity in the image: each L1 gets its
# own at first boot from its seed medium (nestlab-firstboot).
set -eu
root="$1"
here="$(dirname "$0")"

install -m 0755 "$here/files/nestlab-firstboot" "$root/usr/local/sbin/nestlab-firstboot"
install -m 0644 "$here/files/nestlab-firstboot.service" "$root/etc/systemd/system/"
install -m 0644 "$here/files/nestlab-announce.service" "$root/etc/systemd/system/"
install -m 0644 "$here/files/20-lab.network" "$root/etc/systemd/network/"
ln -sf /etc/systemd/system/nestlab-firstboot.service \
  "$root/etc/systemd/system/multi-user.target.wants/nestlab-firstboot.service"
ln -sf /etc/systemd/system/nestlab-announce.service \
  "$root/etc/systemd/system/multi-user.target.wants/nestlab-announce.service"
ln -sf /lib/systemd/system/systemd-networkd.service \
  "$root/etc/systemd/system/multi-user.target.wants/systemd-networkd.service"

# Identity comes at first boot: no shared host keys, machine-id or hostname.
rm -f "$root"/etc/ssh/ssh_host_*
: > "$root/etc/machine-id"
echo localhost > "$root/etc/hostname"
printf '/dev/vda / ext4 rw,relatime 0 1\n' > "$root/etc/fstab"

# A small initramfs: the modules to find and mount the root disk and nothing
# else (MODULES=list; dependencies come along). Debian's default (most drivers,
# 35 MB) took ~8 s under emulation from unpacking to the root mounted.
printf 'virtio_pci\nvirtio_blk\next4\n' >> "$root/etc/initramfs-tools/modules"
echo 'MODULES=list' > "$root/etc/initramfs-tools/conf.d/nestlab.conf"
# The only initramfs the image has: none was made while its packages were installed
# (nestlab.build.images.INITRAMFS_AT_THE_END).
chroot "$root" update-initramfs -c -k all

# L2s run under KVM in L1: nesting on (the default for kvm_amd, stated anyway).
echo 'options kvm_amd nested=1' > "$root/etc/modprobe.d/nestlab-kvm.conf"
echo 'options kvm_intel nested=1' >> "$root/etc/modprobe.d/nestlab-kvm.conf"
# L2s are x86_64: libvirt would probe qemu-system-i386 too on its first start
# (half of its QEMU probe, seconds under emulation). Diverted, so upgrades keep it so.
chroot "$root" dpkg-divert --quiet --local --rename \
  --divert /usr/bin/qemu-system-i386.nestlab-unused --add /usr/bin/qemu-system-i386
# Modules of devices a lab host never uses are not loaded (files/nestlab-unused-modules.conf
# says which and why); nor are those systemd loads for the filesystems and devices of a
# desktop (configfs, device-mapper, drm, EFI's pstore, FUSE, loop), nothing in an L1 uses them.
install -m 0644 "$here/files/nestlab-unused-modules.conf" "$root/etc/modprobe.d/"
for module in configfs dm_mod drm efi_pstore fuse loop; do
  ln -sf /dev/null "$root/etc/systemd/system/modprobe@$module.service"
done
# libvirt's firewall chains are made at boot by two processes, not by 34 at the first
# network's start (files/nestlab-libvirt-chains.service).
mkdir -p "$root/usr/local/share/nestlab"
install -m 0644 "$here/files/libvirt-chains.rules" "$root/usr/local/share/nestlab/"
install -m 0644 "$here/files/nestlab-libvirt-chains.service" "$root/etc/systemd/system/"
ln -sf /etc/systemd/system/nestlab-libvirt-chains.service \
  "$root/etc/systemd/system/multi-user.target.wants/nestlab-libvirt-chains.service"
# The folders nestlab puts files in, there before its first `up`: each command it runs
# to make one costs ~0.1 s in an emulated L1 and makes its remembered reads old.
mkdir -p "$root/var/cache/libvirt/qemu/capabilities" "$root/var/lib/nestlab/networks"
# libvirt's default network is not used by nestlab; do not start it.
rm -f "$root/etc/libvirt/qemu/networks/autostart/default.xml"
# Key-only root login over SSH; one host key, ed25519 (nestlab-firstboot).
printf 'PermitRootLogin prohibit-password\nPasswordAuthentication no\nHostKey /etc/ssh/ssh_host_ed25519_key\n' \
  > "$root/etc/ssh/sshd_config.d/nestlab.conf"
# nestlab's SSH sessions run commands; they are not logins: no logind session and no
# systemd user manager for them (pam_systemd, in common-session only; starting root's
# user manager took 3.5 s of the emulated CPU before the first command ran).
sed -i 's/^@include common-session$/@include common-session-noninteractive/' \
  "$root/etc/pam.d/sshd"
grep -q '^@include common-session-noninteractive$' "$root/etc/pam.d/sshd"
# Nor a message of the day: pam_motd runs update-motd.d's scripts at every connection
# (0.12 s of each in an emulated L1).
sed -i '/pam_motd\.so/d' "$root/etc/pam.d/sshd"
if grep -q pam_motd "$root/etc/pam.d/sshd"; then exit 1; fi
# Nothing that can wait for its schedule runs at boot, while nestlab provisions: apt's
# daily download and upgrade are off (a lab host's packages change when its image
# does), dpkg's database backup too; logrotate and fstrim run at their times, not
# at the first boot (they are Persistent: a timer never run fires at once).
for timer in apt-daily apt-daily-upgrade dpkg-db-backup; do
  ln -sf /dev/null "$root/etc/systemd/system/$timer.timer"
done
for timer in logrotate fstrim; do
  mkdir -p "$root/etc/systemd/system/$timer.timer.d"
  printf '[Timer]\nPersistent=false\n' > "$root/etc/systemd/system/$timer.timer.d/nestlab.conf"
done
