/*
 * fourwall-overlay: puts a copy-on-write layer (overlayfs) over the workdir, then execs the rest
 * of its argv (bwrap ...). Part of the approval gate: the box writes into UPPER; the real workdir
 * (LOWER) is never written by the box. At exit fourwall reads UPPER and applies new files at once
 * and changes to pre-existing files (deletions, overwrites, renames, chmods) only after a human
 * says yes.
 *
 * Runs unprivileged (as the user, or as the box uid after fourwall-drop in root mode):
 *   1. a new user namespace mapping our own uid and gid to themselves (same ids inside and out,
 *      so files keep their owners) and a new mount namespace, made private;
 *   2. mount("overlay", LOWER, lowerdir=LOWER,upperdir=UPPER,workdir=WORK,userxattr,...) over
 *      LOWER itself: from then on, in this mount namespace, the workdir path is the overlay;
 *   3. a parent-death signal again (credential changes cleared it) and exec.
 * bwrap then builds the box inside this namespace; its --bind of the workdir binds the overlay.
 * Unprivileged overlay mounts in a user namespace need Linux >= 5.11.
 *
 * Options pinned for a predictable UPPER: userxattr (needed in a user namespace) also means no
 * redirects are created (a directory rename is EXDEV, so tools copy and delete: plain entries in
 * UPPER); metacopy=off (a chmod copies the data up), index=off, xino=off.
 *
 * usage: fourwall-overlay LOWER UPPER WORK -- PROGRAM [ARGS...]
 *        fourwall-overlay --opaque UPPER   (after the run: prints, NUL-separated and relative to
 *        UPPER, the directories overlayfs marked opaque — removed and made again, hiding every
 *        older entry — which node cannot see without an xattr API)
 * Exit status 125 with a message on stderr when any step fails: nothing is run then.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <ftw.h>
#include <sys/prctl.h>
#include <sys/xattr.h>
#include <unistd.h>

#define FOURWALL_HELPER "fourwall-overlay"
#include "common.h"

/*
 * A path as an overlay option value: the option string separates with "," and lowerdir with ":",
 * so those and "\\" are backslash-escaped (overlayfs unescapes them): a workdir named with them is
 * still exactly that directory, never a second layer or option. Returns 0 when it does not fit.
 */
static int escape_option(const char *in, char *out, size_t size) {
  size_t n = 0;
  for (; *in; in++) {
    if (*in == ',' || *in == ':' || *in == '\\') {
      if (n + 1 >= size) return 0;
      out[n++] = '\\';
    }
    if (n + 1 >= size) return 0;
    out[n++] = *in;
  }
  out[n] = '\0';
  return 1;
}

static size_t upper_len;

static int print_opaque(const char *path, const struct stat *st, int type, struct FTW *ftw) {
  (void)st;
  (void)ftw;
  if (type != FTW_D) return 0;
  char value[4] = {0};
  ssize_t n = lgetxattr(path, "user.overlay.opaque", value, sizeof value - 1);
  if (n == 1 && value[0] == 'y' && strlen(path) > upper_len) {
    fputs(path + upper_len + 1, stdout);
    fputc('\0', stdout);
  }
  return 0;
}

int main(int argc, char **argv) {
  cloexec_from(FOURWALL_LAUNCH_FDS_END); /* only bwrap's setup pipes pass on (common.h) */
  if (argc == 3 && strcmp(argv[1], "--opaque") == 0) {
    upper_len = strlen(argv[2]);
    if (nftw(argv[2], print_opaque, 32, FTW_PHYS) != 0) die("walk", argv[2]);
    return fflush(stdout) == 0 ? 0 : 125;
  }
  if (argc < 6 || strcmp(argv[4], "--") != 0) {
    fprintf(stderr, "usage: fourwall-overlay LOWER UPPER WORK -- PROGRAM [ARGS...]\n");
    return 125;
  }
  const char *lower = argv[1], *upper = argv[2], *work = argv[3];
  char lower_opt[4096 * 2], upper_opt[4096 * 2], work_opt[4096 * 2];
  if (!escape_option(lower, lower_opt, sizeof lower_opt) || !escape_option(upper, upper_opt, sizeof upper_opt) ||
      !escape_option(work, work_opt, sizeof work_opt)) {
    errno = ENAMETOOLONG;
    die("overlay layer path", lower);
  }
  uid_t uid = getuid();
  gid_t gid = getgid();
  if (unshare(CLONE_NEWUSER | CLONE_NEWNS) < 0) die("unshare(CLONE_NEWUSER|CLONE_NEWNS)", NULL);
  char map[64];
  snprintf(map, sizeof map, "%u %u 1\n", uid, uid);
  write_file("/proc/self/uid_map", map);
  write_file("/proc/self/setgroups", "deny\n");
  snprintf(map, sizeof map, "%u %u 1\n", gid, gid);
  write_file("/proc/self/gid_map", map);
  if (mount(NULL, "/", NULL, MS_REC | MS_PRIVATE, NULL) < 0) die("make / private", NULL);
  char options[3 * 4096 * 2 + 128];
  int n = snprintf(options, sizeof options, "lowerdir=%s,upperdir=%s,workdir=%s,userxattr,metacopy=off,index=off,xino=off",
                   lower_opt, upper_opt, work_opt);
  if (n < 0 || (size_t)n >= sizeof options) { errno = ENAMETOOLONG; die("overlay options", lower); }
  if (mount("overlay", lower, "overlay", 0, options) < 0) die("mount overlay over", lower);
  if (prctl(PR_SET_PDEATHSIG, SIGKILL) < 0) die("prctl(PR_SET_PDEATHSIG)", NULL);
  if (getppid() == 1) { errno = ESRCH; die("parent already gone", NULL); }
  execvp(argv[5], &argv[5]);
  die("exec", argv[5]);
  return 125;
}
