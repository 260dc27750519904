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
 * The layer is reached by fd, never by a path the box could walk: LAYER (the box's own directory,
 * holding upper/ and work/) is either fd:N (root mode: fourwall-drop opened it as root, under a
 * directory only root can walk) or a path this helper opens first (user mode: under the user's
 * own 0700 state dir). The helper makes it its working directory before unsharing (the kernel
 * carries the cwd, not other fds, into the new mount namespace, and overlayfs only takes layers
 * from the mounter's namespace), mounts with upperdir=upper,workdir=work relative to it (so the
 * box's mountinfo names no host path), then leaves it: the box holds no handle on its layer.
 * --hide DIR mounts an empty read-only tmpfs over DIR (the directory of every layer) in this
 * namespace, so the box, which in user mode has the user's uid, cannot see its own or another
 * box's layer through the host's tree.
 *
 * --through DIR SUB (repeatable) first mounts a write-through overlay over DIR (a writable place
 * outside the workdir): upper DIR itself, lower SUB/lower (placeholders only), work SUB/work.
 *
 * --cover SRC DST (repeatable) then binds SRC read-only over DST (the box's git excludes, which a
 * write-through overlay's lower cannot show over the real file).
 *
 * usage: fourwall-overlay [--hide DIR] [--through DIR SUB]... [--cover SRC DST]... [LOWER LAYER] -- PROGRAM [ARGS...]
 *        fourwall-overlay --opaque UPPER   (after the run: prints, NUL-separated and relative to
 *        UPPER, the directories overlayfs marked opaque — removed and made again, hiding every
 *        older entry — which node cannot see without an xattr API)
 *        fourwall-overlay --clear-opaque DIR SINCE   (after a write-through overlay over DIR: takes
 *        the opaque mark overlayfs set on a directory the box renamed into a merged one off every
 *        directory below DIR changed since SINCE, unix seconds; no trace of it on the host)
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
#include <dirent.h>
#include <sys/prctl.h>
#include <sys/stat.h>
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

/* Prints, NUL-terminated and relative to the top, every directory below dirfd marked opaque.
 * Walks by fd (openat, O_NOFOLLOW): any depth, no path ever longer than one name. */
struct relpath { char *buf; size_t len, cap; };

static void print_opaque(int fd, struct relpath *rel) {
  DIR *dir = fdopendir(fd);
  if (!dir) die("fdopendir", rel->len ? rel->buf : ".");
  struct dirent *e;
  while ((errno = 0, e = readdir(dir)) != NULL) {
    if (strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0) continue;
    if (e->d_type != DT_DIR && e->d_type != DT_UNKNOWN) continue;
    int sub = openat(dirfd(dir), e->d_name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
    if (sub < 0) {
      if (errno == ENOTDIR || errno == ELOOP) continue;
      die("open", e->d_name);
    }
    size_t before = rel->len, name = strlen(e->d_name);
    if (rel->len + name + 2 > rel->cap) {
      rel->cap = (rel->len + name + 2) * 2;
      rel->buf = realloc(rel->buf, rel->cap);
      if (!rel->buf) die("realloc", NULL);
    }
    if (rel->len) rel->buf[rel->len++] = '/';
    memcpy(rel->buf + rel->len, e->d_name, name + 1);
    rel->len += name;
    char value[4] = {0};
    ssize_t n = fgetxattr(sub, "user.overlay.opaque", value, sizeof value - 1);
    if (n == 1 && value[0] == 'y') {
      fputs(rel->buf, stdout);
      fputc('\0', stdout);
    }
    print_opaque(sub, rel);
    rel->len = before;
    rel->buf[before] = '\0';
  }
  if (errno) die("readdir", rel->len ? rel->buf : ".");
  closedir(dir);
}

/* Takes overlayfs's opaque mark off every directory from fd down changed since `since` (seconds):
 * a write-through overlay sets it on a directory the box renames into a merged one (the real
 * directory, or one above a placeholder). Walks by fd (openat, O_NOFOLLOW), never a symlink. */
static void clear_opaque(int fd, time_t since) {
  struct stat st;
  char value[4] = {0};
  if (fstat(fd, &st) == 0 && st.st_ctime >= since &&
      fgetxattr(fd, "user.overlay.opaque", value, sizeof value - 1) == 1 && value[0] == 'y' &&
      fremovexattr(fd, "user.overlay.opaque") < 0)
    perror(FOURWALL_HELPER ": remove user.overlay.opaque");
  DIR *dir = fdopendir(fd);
  if (!dir) { close(fd); return; }
  struct dirent *e;
  while ((e = readdir(dir)) != NULL) {
    if (strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0) continue;
    if (e->d_type != DT_DIR && e->d_type != DT_UNKNOWN) continue;
    int sub = openat(dirfd(dir), e->d_name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
    if (sub >= 0) clear_opaque(sub, since);
  }
  closedir(dir);
}

/* fd:N (opened by fourwall-drop), or a directory opened here; never a symlink at its end. */
static int layer_fd(const char *spec) {
  if (strncmp(spec, "fd:", 3) == 0) {
    char *end;
    long fd = strtol(spec + 3, &end, 10);
    struct stat st;
    if (*end || fd < 3 || fstat((int)fd, &st) < 0 || !S_ISDIR(st.st_mode)) { errno = EBADF; die("layer fd", spec); }
    return (int)fd;
  }
  int fd = open(spec, O_RDONLY | O_DIRECTORY | O_NOFOLLOW);
  if (fd < 0) die("open layer directory", spec);
  return fd;
}

/* Takes every leading `FLAG A B` off argv into out (at most max): how many. */
static int take_pairs(const char *flag, int *argc, char ***argv, const char *out[][2], int max) {
  int n = 0;
  while (*argc > 3 && strcmp((*argv)[1], flag) == 0) {
    if (n == max) { errno = E2BIG; die(flag, (*argv)[2]); }
    out[n][0] = (*argv)[2];
    out[n][1] = (*argv)[3];
    n++;
    *argv += 3;
    *argc -= 3;
  }
  return n;
}

int main(int argc, char **argv) {
  cloexec_from(FOURWALL_LAUNCH_FDS_END); /* only bwrap's setup pipes pass on (common.h) */
  if (argc == 3 && strcmp(argv[1], "--opaque") == 0) {
    int top = open(argv[2], O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
    if (top < 0) die("open", argv[2]);
    struct relpath rel = {calloc(256, 1), 0, 256};
    if (!rel.buf) die("calloc", NULL);
    print_opaque(top, &rel);
    free(rel.buf);
    return fflush(stdout) == 0 ? 0 : 125;
  }
  if (argc == 4 && strcmp(argv[1], "--clear-opaque") == 0) {
    int top = open(argv[2], O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
    if (top < 0) die("open", argv[2]);
    clear_opaque(top, (time_t)strtoll(argv[3], NULL, 10));
    return 0;
  }
  const char *hide = NULL;
  if (argc > 2 && strcmp(argv[1], "--hide") == 0) {
    hide = argv[2];
    argv += 2;
    argc -= 2;
  }
  /* write-through overlays: --through DIR SUB (SUB holds lower/ and work/, on DIR's own mount) */
  enum { MAX_THROUGH = 64 };
  const char *through[MAX_THROUGH][2];
  int nthrough = take_pairs("--through", &argc, &argv, through, MAX_THROUGH);
  /* --cover SRC DST: SRC (a file of fourwall's) bound read-only over DST after the overlays */
  const char *cover[MAX_THROUGH][2];
  int ncover = take_pairs("--cover", &argc, &argv, cover, MAX_THROUGH);
  /* without a gate layer: "-- PROGRAM" right away (only write-through overlays) */
  int gated = !(argc >= 3 && strcmp(argv[1], "--") == 0 && nthrough + ncover > 0);
  if (gated && (argc < 5 || strcmp(argv[3], "--") != 0)) {
    fprintf(stderr, "usage: fourwall-overlay [--hide DIR] [--through DIR SUB]... [--cover SRC DST]... [LOWER LAYER] -- PROGRAM [ARGS...]\n");
    return 125;
  }
  const char *lower = gated ? argv[1] : "/";
  if (gated) {
    int layer = layer_fd(argv[2]);
    if (fchdir(layer) < 0) die("enter the layer", argv[2]);
    close(layer);
  } else {
    argv -= 2; /* the program is argv[4] below either way */
  }
  /* upper and work are relative to the layer (the current directory): no host path in mountinfo */
  const char *upper = "upper", *work = "work";
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
  int n;
  /*
   * Write-through: the real directory is the UPPER, so the box's writes land in it directly; the
   * LOWER holds only the placeholders (and copies of the directories above them), which thus exist
   * in this mount namespace alone. The work dir is fourwall's, on the same mount (overlayfs needs it).
   */
  /* each SUB entered (by its path, in this namespace), its layers named relative to it: the box's
   * mountinfo names no directory of fourwall's; then back to the gate's layer */
  int back = nthrough > 0 ? open(".", O_PATH | O_DIRECTORY | O_CLOEXEC) : -1;
  if (nthrough > 0 && back < 0) die("open", ".");
  for (int i = 0; i < nthrough; i++) {
    char sub[4096], l_opt[4096 * 2], u_opt[4096 * 2], w_opt[4096 * 2];
    const char *dir = through[i][0];
    if (chdir(through[i][1]) < 0) die("enter", through[i][1]);
    if (snprintf(sub, sizeof sub, "%s", "lower") >= (int)sizeof sub || !escape_option(sub, l_opt, sizeof l_opt) ||
        !escape_option(dir, u_opt, sizeof u_opt) ||
        snprintf(sub, sizeof sub, "%s", "work") >= (int)sizeof sub || !escape_option(sub, w_opt, sizeof w_opt)) {
      errno = ENAMETOOLONG;
      die("write-through overlay path", dir);
    }
    /* uuid=off: no overlay.uuid xattr left on the real directory */
    n = snprintf(options, sizeof options, "lowerdir=%s,upperdir=%s,workdir=%s,userxattr,metacopy=off,index=off,xino=off,uuid=off",
                 l_opt, u_opt, w_opt);
    if (n < 0 || (size_t)n >= sizeof options) { errno = ENAMETOOLONG; die("overlay options", dir); }
    if (mount("overlay", dir, "overlay", 0, options) < 0) die("mount the write-through overlay over", dir);
  }
  if (back >= 0 && (fchdir(back) < 0 || close(back) < 0)) die("return to", "the layer");
  for (int i = 0; i < ncover; i++) {
    if (mount(cover[i][0], cover[i][1], NULL, MS_BIND, NULL) < 0) die("bind over", cover[i][1]);
    if (mount(NULL, cover[i][1], NULL, MS_REMOUNT | MS_BIND | MS_RDONLY | MS_NOSUID | MS_NODEV, NULL) < 0)
      die("make read-only", cover[i][1]);
  }
  if (gated) {
  n = snprintf(options, sizeof options, "lowerdir=%s,upperdir=%s,workdir=%s,userxattr,metacopy=off,index=off,xino=off",
                   lower_opt, upper_opt, work_opt);
  if (n < 0 || (size_t)n >= sizeof options) { errno = ENAMETOOLONG; die("overlay options", lower); }
  if (mount("overlay", lower, "overlay", 0, options) < 0) die("mount overlay over", lower);
  }
  /* The overlay holds its layers now: leave them (bwrap sets the box's own cwd). */
  if (chdir("/") < 0) die("chdir", "/");
  if (hide && mount("tmpfs", hide, "tmpfs", MS_RDONLY | MS_NOSUID | MS_NODEV | MS_NOEXEC, "mode=0,size=4k") < 0)
    die("hide the layers under an empty tmpfs:", hide);
  if (prctl(PR_SET_PDEATHSIG, SIGKILL) < 0) die("prctl(PR_SET_PDEATHSIG)", NULL);
  if (getppid() == 1) { errno = ESRCH; die("parent already gone", NULL); }
  execvp(argv[4], &argv[4]);
  die("exec", argv[4]);
  return 125;
}
