/*
 * What every fourwall native helper shares: failing closed with one clear line and exit 125 (the
 * command never runs), and writing a small control file (uid_map, cgroup.procs, a sysctl).
 * A helper defines FOURWALL_HELPER (its name in messages) before including this file.
 */
#ifndef FOURWALL_COMMON_H
#define FOURWALL_COMMON_H

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <unistd.h>

#ifndef CLOSE_RANGE_CLOEXEC
#define CLOSE_RANGE_CLOEXEC (1U << 2)
#endif
#ifndef SYS_close_range
#define SYS_close_range 436
#endif

__attribute__((noreturn, unused)) static void die(const char *what, const char *arg) {
  fprintf(stderr, "%s: %s%s%s: %s\n", FOURWALL_HELPER, what, arg ? " " : "", arg ? arg : "", strerror(errno));
  exit(125);
}

__attribute__((unused)) static void write_file(const char *path, const char *text) {
  int fd = open(path, O_WRONLY | O_CLOEXEC);
  if (fd < 0) die("open", path);
  ssize_t n = write(fd, text, strlen(text));
  if (n != (ssize_t)strlen(text)) die("write", path);
  close(fd);
}

/*
 * Only descriptors fourwall passes on purpose cross into the box: every descriptor from `first` up
 * is marked close-on-exec before the helper execs anything, so an fd the caller happened to hold
 * (`exec 7</root/secret` in the launching shell, not close-on-exec) dies at our exec instead of
 * reaching the box. close_range(2) (Linux 5.11), else one by one from /proc/self/fd; neither
 * possible: exit 125, nothing runs. FOURWALL_KEEP_INHERITED_FDS (tests only) compiles the hole back
 * in, to show the tests catch it.
 */
__attribute__((unused)) static void cloexec_from(unsigned first) {
#ifndef FOURWALL_KEEP_INHERITED_FDS
  if (syscall(SYS_close_range, first, ~0U, CLOSE_RANGE_CLOEXEC) == 0) return;
  DIR *dir = opendir("/proc/self/fd");
  if (!dir) die("mark inherited descriptors close-on-exec", "/proc/self/fd");
  int self = dirfd(dir);
  for (struct dirent *e; (e = readdir(dir)) != NULL;) {
    if (e->d_name[0] < '0' || e->d_name[0] > '9') continue;
    int fd = atoi(e->d_name);
    if (fd < (int)first || fd == self) continue;
    int flags = fcntl(fd, F_GETFD);
    if (flags >= 0 && fcntl(fd, F_SETFD, flags | FD_CLOEXEC) < 0) die("mark close-on-exec", e->d_name);
  }
  closedir(dir);
#else
  (void)first;
#endif
}

/*
 * The descriptors a launcher hands on to bwrap on purpose: 0-2 and the namespaces runtime's
 * setup pipes 3-7 (SECCOMP_FD, STATUS_FD, BLOCK_FD, READY_FD, STDERR_FD in src/runtimes/namespaces.ts; a
 * unit test holds the two together). fourwall itself closed everything else it inherited at its
 * start (src/core/fds.ts); the launchers make sure of it again.
 */
#define FOURWALL_LAUNCH_FDS_END 8

/* Sends one descriptor over a unix socket with SCM_RIGHTS and the one byte `byte`: 0, or -1 (errno). */
__attribute__((unused)) static int send_one_fd(int sock, int fd, char byte) {
  struct iovec iov = {.iov_base = &byte, .iov_len = 1};
  union { char buf[CMSG_SPACE(sizeof(int))]; struct cmsghdr align; } control;
  memset(&control, 0, sizeof control);
  struct msghdr msg = {.msg_iov = &iov, .msg_iovlen = 1, .msg_control = control.buf, .msg_controllen = sizeof control.buf};
  struct cmsghdr *c = CMSG_FIRSTHDR(&msg);
  c->cmsg_level = SOL_SOCKET;
  c->cmsg_type = SCM_RIGHTS;
  c->cmsg_len = CMSG_LEN(sizeof(int));
  memcpy(CMSG_DATA(c), &fd, sizeof fd);
  return sendmsg(sock, &msg, MSG_NOSIGNAL) == 1 ? 0 : -1;
}

#endif
