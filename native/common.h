/*
 * What every fourwall native helper shares: failing closed with one clear line and exit 125 (the
 * command never runs), and writing a small control file (uid_map, cgroup.procs, a sysctl).
 * A helper defines FOURWALL_HELPER (its name in messages) before including this file.
 */
#ifndef FOURWALL_COMMON_H
#define FOURWALL_COMMON_H

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

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

#endif
