/*
 * fourwall-netns: prepares a box's network namespace from outside, before the box's command runs.
 *
 * Transparent mode puts forwarders on ports below 1024 inside the box (a tool that ignores proxy
 * settings connects to port 443 of the address its name resolves to). In a new network namespace
 * only a holder of CAP_NET_BIND_SERVICE may bind there, and the box holds no capability at all, so
 * fourwall lowers net.ipv4.ip_unprivileged_port_start to 0 in the box's own namespace (and only
 * there: it is a per-namespace setting) while bwrap holds the box back (--block-fd).
 *
 * The agent cannot undo or redo this: the setting needs CAP_NET_ADMIN over the namespace, which only
 * the namespace's owner (bwrap's outer user namespace) can grant, and the box runs in a nested user
 * namespace without capabilities. Like fourwall-enter, this helper joins the owner first
 * (NS_GET_USERNS on the network namespace), which gives it those capabilities there, then the
 * network namespace, then writes the one file. It does nothing else.
 *
 * usage: fourwall-netns PID      (PID: any process of the box, e.g. bwrap's child-pid)
 * Exit status 0 when the setting is in place; 125 with a message on stderr otherwise.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <linux/nsfs.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <unistd.h>

#define FOURWALL_HELPER "fourwall-netns"
#include "common.h"

int main(int argc, char **argv) {
  if (argc != 2) {
    fprintf(stderr, "usage: fourwall-netns PID\n");
    return 125;
  }
  char *end;
  long pid = strtol(argv[1], &end, 10);
  if (*argv[1] == 0 || *end != 0 || pid <= 1) {
    errno = EINVAL;
    die("bad pid", argv[1]);
  }
  char path[64];
  snprintf(path, sizeof path, "/proc/%ld/ns/net", pid);
  int net = open(path, O_RDONLY | O_CLOEXEC);
  if (net < 0) die("open (is the box running?)", path);
  int owner = ioctl(net, NS_GET_USERNS);
  if (owner < 0) die("NS_GET_USERNS", path);
  /* Joining the user namespace we are already in is EINVAL: only join a different one. */
  struct stat mine, theirs;
  if (stat("/proc/self/ns/user", &mine) < 0 || fstat(owner, &theirs) < 0) die("stat", "user namespace");
  if (mine.st_ino != theirs.st_ino || mine.st_dev != theirs.st_dev) {
    if (setns(owner, CLONE_NEWUSER) < 0) die("setns", "user (owner of the box's network namespace)");
  }
  close(owner);
  if (setns(net, CLONE_NEWNET) < 0) die("setns", "net");
  close(net);
  /* /proc/sys/net follows the network namespace of the process that opens it: this is the box's. */
  const char *sysctl = "/proc/sys/net/ipv4/ip_unprivileged_port_start";
  int fd = open(sysctl, O_WRONLY | O_CLOEXEC);
  if (fd < 0) die("open", sysctl);
  if (write(fd, "0\n", 2) != 2) die("write", sysctl);
  if (close(fd) < 0) die("close", sysctl);
  fd = open(sysctl, O_RDONLY | O_CLOEXEC);
  char buf[16] = {0};
  if (fd < 0 || read(fd, buf, sizeof buf - 1) <= 0) die("read back", sysctl);
  if (atoi(buf) != 0) {
    errno = EPERM;
    die("the setting did not take", sysctl);
  }
  close(fd);
  return 0;
}
