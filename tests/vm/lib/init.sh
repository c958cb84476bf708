#!/bin/sh
# PID 1 of the VM suite's busybox initramfs (built by tests/vm/run.sh).
# Loads the 9p/virtio modules, mounts the host's / read-only and the repo
# read-write, chroots and runs tests/vm/guest/runner.sh. Always powers off.
# Kernel command line: mergemem.repo=PATH mergemem.work=PATH
/bin/busybox --install -s /bin
export PATH=/bin
mount -t proc proc /proc
mount -t sysfs sysfs /sys
mount -t devtmpfs devtmpfs /dev 2>/dev/null
exec </dev/console >/dev/console 2>&1

say() { echo "MERGEMEM-VM-INIT $*"; }
die() {
	echo "MERGEMEM-VM-FATAL $*"
	sync
	poweroff -f
	sleep 5
	echo o >/proc/sysrq-trigger
}

REPO='' WORK=''
# shellcheck disable=SC2013 # words, not lines
for arg in $(cat /proc/cmdline); do
	case $arg in
	mergemem.repo=*) REPO=${arg#mergemem.repo=} ;;
	mergemem.work=*) WORK=${arg#mergemem.work=} ;;
	esac
done
[ -n "$REPO" ] || die "no mergemem.repo= on the kernel command line"

while read -r m; do
	[ -n "$m" ] || continue
	insmod "/modules/$m" || die "insmod $m failed"
done </modules/order

R=/newroot
mkdir -p $R
i=0
until mount -t 9p -o trans=virtio,version=9p2000.L,ro,msize=512000,cache=loose hostroot $R 2>/dev/null; do
	i=$((i + 1))
	[ $i -lt 50 ] || die "mounting the host root over 9p failed"
	sleep 0.1
done
mount -t tmpfs -o mode=1777 tmpfs $R/tmp || die "tmpfs /tmp"
mount -t tmpfs -o mode=755 tmpfs $R/run || die "tmpfs /run"
mount -t tmpfs -o mode=1777 tmpfs $R/var/tmp || die "tmpfs /var/tmp"
# Real servers (tests/vm/guest/t_5*.sh, servers_lib.sh) write logs, data,
# sessions and caches here, and serve /var/www/html; the root is read-only.
for d in /var/log /var/www/html /var/lib/postgresql /var/lib/php /var/cache/apache2; do
	[ -d "$R$d" ] || continue
	mount -t tmpfs -o mode=755 tmpfs "$R$d" || die "tmpfs $d"
done
# Servers listen on 127.0.0.1 (the guest has no NIC).
ip link set lo up || die "loopback"
mount -t proc proc $R/proc || die "proc"
mount -t sysfs sysfs $R/sys || die "sysfs"
mount -t devtmpfs devtmpfs $R/dev || die "devtmpfs"
mkdir -p $R/dev/pts $R/dev/shm
mount -t devpts devpts $R/dev/pts
mount -t tmpfs -o mode=1777 tmpfs $R/dev/shm
mount -t debugfs debugfs $R/sys/kernel/debug 2>/dev/null
# The repo: read-write, at the same path as on the host (a tmpfs above may
# have hidden it, e.g. a checkout under /tmp, so create the mount point).
mkdir -p "$R$REPO" 2>/dev/null
mount -t 9p -o trans=virtio,version=9p2000.L,rw,msize=512000 repo "$R$REPO" || die "mounting the repo over 9p failed"

say "BOOTED $(cut -d' ' -f1 /proc/uptime)"
chroot $R /usr/bin/env -i PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin \
	/bin/bash "$REPO/tests/vm/guest/runner.sh" "$REPO" "$WORK" </dev/console >/dev/console 2>&1
rc=$?
say "RUNNER-EXIT $rc"
sync
umount "$R$REPO" 2>/dev/null
poweroff -f
sleep 5
echo o >/proc/sysrq-trigger
