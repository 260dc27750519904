#!/usr/bin/env bash
# Builds the microVM's guest (the --runtime vm box): Debian's own kernel, extracted from its
# package (nothing is installed into the host's /boot), and a small initramfs made of
# busybox-static, the virtio/9p modules and vm/init. Output: native/build/vm/{vmlinuz,initrd.img}.
# Idempotent: rebuilt only when the kernel package or vm/init changes.
set -euo pipefail
cd "$(dirname "$0")/.."
out=native/build/vm
say() { printf '\033[36msetup:\033[0m %s\n' "$*" >&2; }

# The modules the guest loads (modprobe brings their dependencies, from the package's modules.dep).
MODULES=(virtio_pci virtio_console virtio_net 9pnet_virtio 9p)

kernel_pkg() { apt-cache depends linux-image-amd64 2>/dev/null | awk '/Depends: linux-image-/{print $2; exit}'; }
kernel_pkg=$(kernel_pkg)
if [ -z "$kernel_pkg" ] && [ "$(id -u)" = 0 ]; then apt-get update -qq && kernel_pkg=$(kernel_pkg); fi
if [ -z "$kernel_pkg" ]; then
  [ -f "$out/vmlinuz" ] && exit 0 # offline, but built before
  say "cannot find Debian's kernel package (apt-get update first?)"; exit 1
fi
stamp="$kernel_pkg $(sha256sum vm/init vm/lib.sh scripts/build-vm.sh | sha256sum | cut -c1-16)"
if [ -f "$out/stamp" ] && [ "$(cat "$out/stamp")" = "$stamp" ]; then exit 0; fi

say "building the microVM guest ($kernel_pkg, busybox, 9p)"
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
(cd "$work" && apt-get download -q "$kernel_pkg" >/dev/null 2>&1) || { say "cannot download $kernel_pkg"; exit 1; }
dpkg-deb -x "$work"/*.deb "$work/pkg"
version=$(ls "$work/pkg/lib/modules")
mkdir -p "$work/initrd/bin" "$work/initrd"/{proc,sys,dev,fw,newroot}
cp /bin/busybox "$work/initrd/bin/busybox"
busybox depmod -b "$work/pkg" "$version"
# Copy each module and its dependencies, keeping the tree (modprobe reads modules.dep there).
modules="$work/pkg/lib/modules/$version"
for m in "${MODULES[@]}"; do
  line=$(grep -E "(^|/)$m\.ko:" "$modules/modules.dep") || { say "module $m missing from $kernel_pkg"; exit 1; }
  for ko in ${line/:/}; do
    mkdir -p "$work/initrd/lib/modules/$version/$(dirname "$ko")"
    cp "$modules/$ko" "$work/initrd/lib/modules/$version/$ko"
  done
  echo "$m" >>"$work/initrd/modules.list"
done
cp "$modules"/modules.{dep,order,builtin,alias} "$work/initrd/lib/modules/$version/" 2>/dev/null || true
install -m 0755 vm/init "$work/initrd/init"
install -m 0644 vm/lib.sh "$work/initrd/lib.sh"
mkdir -p "$out"
(cd "$work/initrd" && find . -print0 | busybox cpio -o -H newc -0 2>/dev/null | gzip -1) >"$out/initrd.img.new"
cp "$work/pkg/boot/vmlinuz-$version" "$out/vmlinuz.new"
mv "$out/initrd.img.new" "$out/initrd.img"
mv "$out/vmlinuz.new" "$out/vmlinuz"
echo "$version" >"$out/kernel-version"
echo "$stamp" >"$out/stamp"
