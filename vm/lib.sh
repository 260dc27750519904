# Helpers of fourwall's microVM init. Sourced by stage 1 (in the initramfs); run with "stage2"
# once the guest's root is in place. The control port is fd 9. Guest to host: "ready" (the box's
# command starts: bwrap's ready fd), "exit N", "fail REASON"; host to guest: a signal name.

port() { # the device of a named virtio-serial port
  for p in /sys/class/virtio-ports/*; do
    [ "$(cat "$p/name" 2>/dev/null)" = "$1" ] && { echo "/dev/${p##*/}"; return 0; }
  done
  return 1
}

fail() { echo "fourwall-init: $*" >&2; echo "fail $*" >&9; sync; poweroff -f; }

# The command's pids: the children of the box's pid 1 (bwrap's), but for the egress bridge.
box_pids() {
  init=$(sed -n 's/.*"child-pid" *: *\([0-9]*\).*/\1/p' "$1" | head -n 1)
  [ -n "$init" ] || return 0
  for p in $(cat "/proc/$init/task/$init/children" 2>/dev/null); do
    [ "$(cat "/proc/$p/comm" 2>/dev/null)" = socat ] || echo "$p"
  done
}

# run_box PID STATUS_FILE: forward signals until the box's bwrap ends, report its status, power off.
run_box() {
  ( while read -r sig <&9; do kill -s "${sig#SIG}" $(box_pids "$2") 2>/dev/null; done ) &
  wait "$1"
  code=$?
  reported=$(sed -n 's/.*"exit-code" *: *\([0-9]*\).*/\1/p' "$2" | tail -n 1)
  echo "exit ${reported:-$code}" >&9
  sync
  poweroff -f
}

if [ "${1:-}" = stage2 ]; then
  "$G/bin/busybox" --install -s "$G/bin"
  export PATH="$G/bin"
  . "$G/cfg/guest.sh" || fail "the box's configuration is unreadable"
  guest_box
  fail "the box's configuration did not start the box"
fi
