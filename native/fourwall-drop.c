/*
 * fourwall-drop: the root-mode launcher of a fourwall box.
 *
 * When fourwall runs as root, the box must not run as host uid 0 (a uid-0 box with no capabilities
 * still owns every root-owned file). This helper, started as root, does the few things only root
 * can do and that Node cannot do itself, then becomes an unprivileged uid and execs bubblewrap:
 *
 *   1. a private mount namespace for itself (so nothing it mounts is seen by the host);
 *   2. for each writable path owned by someone else than the box's uid, an idmapped bind mount
 *      over that path, so the box's uid writes there as the path's owner (files it creates land
 *      on disk owned by the owner, as if the owner had written them);
 *   3. drops supplementary groups, gid and uid (all three ids) to the box's uid and gid;
 *   4. sets a parent-death signal (credentials changes clear it, so it is set after the drop);
 *   5. execs the rest of its argv (bwrap ...).
 *
 * Before dropping, it also moves itself into the box's cgroup(s) (--cgroup DIR), so that every
 * process of the box is counted against the box's memory and pids caps from the start.
 *
 * --fd N:PATH opens the directory PATH as root (no symlink at its end) on fd N before the drop:
 * the approval gate's copy-on-write layer lives under a directory only fourwall (root) can walk,
 * and the unprivileged fourwall-overlay that mounts it reaches it only through this fd.
 *
 * --reach PATH (the workdir): if a directory above PATH is one the box uid cannot search (/srv
 * mode 0700, a `mktemp -d` parent), the box could not even get to its workdir. In this private
 * mount namespace the topmost such directory is covered by an empty tmpfs holding only the chain
 * of directories down to PATH, and PATH (its idmapped mount, submounts included) is moved there.
 * The box sees nothing else of that directory, as before (it could not list it), and reaches
 * its workdir at its real path.
 *
 * --through OWNER_UID:OWNER_GID:SUB DIR (issue 12: a placeholder outside the workdir, root mode)
 * mounts a write-through overlay over DIR in this namespace: upper DIR itself, lower SUB/lower
 * (the placeholders), work SUB/work. The box's uid must write DIR as its owner, so the upper is an
 * idmapped clone of the mount holding both DIR and SUB (overlayfs wants the work dir on the
 * upper's mount), taken before any other idmap covers them; overlayfs works in SUB/work with the
 * mounter's (root's) credentials, so that clone's map also carries uid 0: on-disk OWNER is seen as
 * the box uid, on-disk BOX (never OWNER) as root — a swap, the two ranges never overlap. The box's
 * writes land in DIR at once, owned by OWNER; the placeholders exist in this namespace alone.
 *
 * --cover SRC DST then binds SRC read-only over DST (the box's git excludes, when the workdir itself
 * carries the placeholders: a write-through overlay's lower cannot show over the real file).
 *
 * fourwall-drop --mount-through SUB DIR TARGET (docker, whose daemon binds from the host's mount
 * namespace) mounts such an overlay, without an idmap, over TARGET (in fourwall's run dir) in the
 * caller's namespace, and exits.
 *
 * usage: fourwall-drop UID GID [--idmap OWNER_UID:OWNER_GID:PATH]... [--through OWNER_UID:OWNER_GID:SUB DIR]... [--cover SRC DST]... [--cgroup DIR]... [--fd N:PATH]... [--reach PATH] -- PROGRAM [ARGS...]
 * Exit status 125 with a message on stderr when any step fails: nothing is run then.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <linux/mount.h>
#include <linux/openat2.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#define FOURWALL_HELPER "fourwall-drop"
#include "common.h"

#ifndef MOUNT_ATTR_IDMAP
#define MOUNT_ATTR_IDMAP 0x00100000
#endif
#ifndef AT_RECURSIVE
#define AT_RECURSIVE 0x8000
#endif

/* A user namespace whose only mapping is OWNER (outside) <-> BOX (inside), for uid and gid.
 * The kernel maps on-disk ids "down" through a mount idmap (inside = on disk, outside = seen),
 * so the line is "OWNER BOX 1": on-disk OWNER appears as BOX, and BOX writes as OWNER. */
static int idmap_userns_with(unsigned box_uid, unsigned box_gid, unsigned owner_uid, unsigned owner_gid,
                             int root_too) {
  int sync_pipe[2], ready_pipe[2];
  if (pipe2(sync_pipe, O_CLOEXEC) < 0 || pipe2(ready_pipe, O_CLOEXEC) < 0) die("pipe", NULL);
  pid_t child = fork();
  if (child < 0) die("fork", NULL);
  if (child == 0) {
    char c = 'u';
    close(ready_pipe[0]);
    if (unshare(CLONE_NEWUSER) < 0) _exit(1);
    (void)!write(ready_pipe[1], &c, 1); /* unshared: the parent may map it */
    close(sync_pipe[1]);
    (void)read(sync_pipe[0], &c, 1); /* wait until the parent has taken the namespace */
    _exit(0);
  }
  close(sync_pipe[0]);
  close(ready_pipe[1]);
  char path[64], map[96], c;
  /* root_too: on-disk BOX (OWNER if that is the box) seen as, and written by, uid 0 as well */
  unsigned root_uid = owner_uid == box_uid ? 0 : box_uid, root_gid = owner_gid == box_gid ? 0 : box_gid;
  /* Wait until the child has unshared (it says so; end-of-file: it could not). */
  if (read(ready_pipe[0], &c, 1) != 1) { errno = EPERM; die("user namespace for idmap", NULL); }
  close(ready_pipe[0]);
  snprintf(path, sizeof path, "/proc/%d/uid_map", child);
  if (root_too)
    snprintf(map, sizeof map, "%u %u 1\n%u 0 1\n", owner_uid, box_uid, root_uid);
  else
    snprintf(map, sizeof map, "%u %u 1\n", owner_uid, box_uid);
  write_file(path, map);
  snprintf(path, sizeof path, "/proc/%d/setgroups", child);
  write_file(path, "deny\n");
  snprintf(path, sizeof path, "/proc/%d/gid_map", child);
  if (root_too)
    snprintf(map, sizeof map, "%u %u 1\n%u 0 1\n", owner_gid, box_gid, root_gid);
  else
    snprintf(map, sizeof map, "%u %u 1\n", owner_gid, box_gid);
  write_file(path, map);
  snprintf(path, sizeof path, "/proc/%d/ns/user", child);
  int fd = open(path, O_RDONLY | O_CLOEXEC);
  if (fd < 0) die("open", path);
  close(sync_pipe[1]);
  waitpid(child, NULL, 0);
  return fd;
}

static int idmap_userns(unsigned box_uid, unsigned box_gid, unsigned owner_uid, unsigned owner_gid) {
  return idmap_userns_with(box_uid, box_gid, owner_uid, owner_gid, 0);
}

/* One user namespace per owner: paths of the same owner (the workdir and HOME, as a rule) share it,
 * which saves a fork and a namespace per mount. */
static struct { unsigned uid, gid; int fd; } idmap_cache[8];
static int idmap_cached;

static int owner_userns(unsigned box_uid, unsigned box_gid, unsigned owner_uid, unsigned owner_gid) {
  for (int k = 0; k < idmap_cached; k++)
    if (idmap_cache[k].uid == owner_uid && idmap_cache[k].gid == owner_gid) return idmap_cache[k].fd;
  int fd = idmap_userns(box_uid, box_gid, owner_uid, owner_gid);
  if (idmap_cached < (int)(sizeof idmap_cache / sizeof idmap_cache[0]))
    idmap_cache[idmap_cached++] = (typeof(idmap_cache[0])){owner_uid, owner_gid, fd};
  return fd;
}

static void idmap_mount(const char *target, unsigned box_uid, unsigned box_gid, unsigned owner_uid,
                        unsigned owner_gid) {
  int userns = owner_userns(box_uid, box_gid, owner_uid, owner_gid);
  int tree = (int)syscall(SYS_open_tree, AT_FDCWD, target, OPEN_TREE_CLONE | OPEN_TREE_CLOEXEC);
  if (tree < 0) die("open_tree", target);
  struct mount_attr attr = {.attr_set = MOUNT_ATTR_IDMAP, .userns_fd = (unsigned long long)userns};
  if (syscall(SYS_mount_setattr, tree, "", AT_EMPTY_PATH, &attr, sizeof attr) < 0)
    die("idmapped mount (mount_setattr) of", target);
  if (syscall(SYS_move_mount, tree, "", AT_FDCWD, target, MOVE_MOUNT_F_EMPTY_PATH) < 0) die("move_mount", target);
  close(tree); /* the namespace stays open for the owner's next path (close-on-exec) */
}

/* A write-through overlay to make (--through): its paths, then fds on the idmapped clone. */
struct through {
  unsigned uid, gid;
  const char *sub, *dir;
  int tree, upper, work, lower;
};

/* PATH below the clone's root (ROOT, the common ancestor), by fd: no symlink, never off the clone's mount. */
static int beneath(int tree, const char *root, const char *path, const char *what) {
  const char *rel = path + strlen(root);
  while (*rel == '/') rel++;
  struct open_how how = {.flags = O_PATH | O_DIRECTORY | O_CLOEXEC,
                         .resolve = RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS | RESOLVE_NO_XDEV | RESOLVE_NO_MAGICLINKS};
  int fd = (int)syscall(SYS_openat2, tree, *rel ? rel : ".", &how, sizeof how);
  if (fd < 0) die(what, path);
  struct stat got, want;
  if (fstat(fd, &got) < 0 || stat(path, &want) < 0 || got.st_dev != want.st_dev || got.st_ino != want.st_ino) {
    errno = EXDEV;
    die("write-through overlay: not on one mount with fourwall's layers dir:", path);
  }
  return fd;
}

/* Before any other mount here: a clone of the mount holding both DIR and SUB (their common ancestor). */
static void through_open(struct through *t) {
  if (t->dir[0] != '/' || t->sub[0] != '/') { errno = EINVAL; die("--through needs absolute paths", t->dir); }
  char common[4096], work[4096], lower[4096];
  if (snprintf(common, sizeof common, "%s", t->dir) >= (int)sizeof common ||
      snprintf(work, sizeof work, "%s/work", t->sub) >= (int)sizeof work ||
      snprintf(lower, sizeof lower, "%s/lower", t->sub) >= (int)sizeof lower) {
    errno = ENAMETOOLONG;
    die("--through", t->dir);
  }
  /* the longest leading directory path the two share */
  for (;;) {
    size_t n = strlen(common);
    if (strncmp(t->sub, common, n) == 0 && (t->sub[n] == '/' || t->sub[n] == '\0' || n == 1)) break;
    char *slash = strrchr(common, '/');
    if (slash == common) common[1] = '\0';
    else *slash = '\0';
  }
  t->tree = (int)syscall(SYS_open_tree, AT_FDCWD, common, OPEN_TREE_CLONE | OPEN_TREE_CLOEXEC);
  if (t->tree < 0) die("open_tree (for the write-through overlay)", common);
  t->upper = beneath(t->tree, common, t->dir, "open the write-through overlay's directory");
  t->work = beneath(t->tree, common, work, "open the write-through overlay's work dir");
  t->lower = open(lower, O_PATH | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
  if (t->lower < 0) die("open", lower);
}

/* The overlay over TARGET from the opened layers, the clone's fds closed after (overlayfs holds
 * private clones of its layers: nothing of this one stays mounted). */
static void through_overlay(struct through *t, const char *target) {
  /* the layers by fd, uuid=off (no overlay.uuid xattr on the real directory): the box's mountinfo
   * names no directory of fourwall's */
  char options[256];
  snprintf(options, sizeof options,
           "lowerdir=/proc/self/fd/%d,upperdir=/proc/self/fd/%d,workdir=/proc/self/fd/%d,userxattr,metacopy=off,index=off,xino=off,uuid=off",
           t->lower, t->upper, t->work);
  /* onto the target by fd, no symlink on its way: a path swapped meanwhile is refused, not followed */
  struct open_how how = {.flags = O_PATH | O_DIRECTORY | O_CLOEXEC, .resolve = RESOLVE_NO_SYMLINKS};
  int at = (int)syscall(SYS_openat2, AT_FDCWD, target, &how, sizeof how);
  if (at < 0) die("open the write-through overlay's mount point", target);
  char where[64];
  snprintf(where, sizeof where, "/proc/self/fd/%d", at);
  if (mount("overlay", where, "overlay", 0, options) < 0) die("mount the write-through overlay over", t->dir);
  close(at);
  close(t->lower);
  close(t->upper);
  close(t->work);
  close(t->tree);
}

/* After the other idmaps: the clone idmapped (OWNER seen as the box, BOX as root), the overlay over DIR. */
static void through_mount(struct through *t, unsigned box_uid, unsigned box_gid) {
  /* overlayfs makes its work/work as the mounter: the work dir must be root's as the clone shows it */
  unsigned root_uid = t->uid == box_uid ? 0 : box_uid, root_gid = t->gid == box_gid ? 0 : box_gid;
  if (fchownat(t->work, "", root_uid, root_gid, AT_EMPTY_PATH) < 0) die("chown", "the write-through overlay's work dir");
  int userns = idmap_userns_with(box_uid, box_gid, t->uid, t->gid, 1);
  struct mount_attr attr = {.attr_set = MOUNT_ATTR_IDMAP, .userns_fd = (unsigned long long)userns};
  if (syscall(SYS_mount_setattr, t->tree, "", AT_EMPTY_PATH, &attr, sizeof attr) < 0)
    die("idmapped mount (mount_setattr) for the write-through overlay over", t->dir);
  close(userns);
  through_overlay(t, t->dir);
}

/* Whether uid/gid may search the directory (x for owner, group or others; no capabilities). */
static int searchable(const char *dir, unsigned uid, unsigned gid) {
  struct stat st;
  if (stat(dir, &st) < 0) die("stat", dir);
  if (st.st_uid == uid) return (st.st_mode & S_IXUSR) != 0;
  if (st.st_gid == gid) return (st.st_mode & S_IXGRP) != 0;
  return (st.st_mode & S_IXOTH) != 0;
}

static void reach(const char *target, unsigned uid, unsigned gid) {
  if (target[0] != '/' || strstr(target, "/../") || strstr(target, "/./")) { errno = EINVAL; die("--reach needs a normal absolute path", target); }
  char path[4096];
  if (strlen(target) >= sizeof path) { errno = ENAMETOOLONG; die("--reach", target); }
  /* the topmost ancestor (not the target itself) the box cannot search */
  size_t cover = 0;
  for (size_t i = 1; target[i]; i++) {
    if (target[i] != '/') continue;
    memcpy(path, target, i);
    path[i] = '\0';
    if (!searchable(path, uid, gid)) { cover = i; break; }
  }
  if (cover == 0) return;
  int tree = (int)syscall(SYS_open_tree, AT_FDCWD, target, OPEN_TREE_CLONE | OPEN_TREE_CLOEXEC | AT_RECURSIVE);
  if (tree < 0) die("open_tree", target);
  memcpy(path, target, cover);
  path[cover] = '\0';
  if (mount("tmpfs", path, "tmpfs", MS_NOSUID | MS_NODEV, "mode=0755,size=64k") < 0) die("cover with a tmpfs", path);
  for (size_t i = cover + 1;; i++) {
    if (target[i] != '/' && target[i] != '\0') continue;
    memcpy(path, target, i);
    path[i] = '\0';
    if (mkdir(path, 0755) < 0 && errno != EEXIST) die("mkdir", path);
    if (target[i] == '\0') break;
  }
  if (syscall(SYS_move_mount, tree, "", AT_FDCWD, target, MOVE_MOUNT_F_EMPTY_PATH) < 0) die("move_mount", target);
  close(tree);
}

/* How many values an option takes (the pre-scans below step over them). */
static int values_of(const char *option) {
  return strcmp(option, "--through") == 0 || strcmp(option, "--cover") == 0 ? 2 : 1;
}

int main(int argc, char **argv) {
  cloexec_from(FOURWALL_LAUNCH_FDS_END); /* only bwrap's setup pipes pass on (common.h) */
  if (argc == 5 && strcmp(argv[1], "--mount-through") == 0) {
    /* docker: the overlay mounted in this (the host's) namespace over TARGET, no idmap (the box runs as the owner) */
    struct through t = {.sub = argv[2], .dir = argv[3]};
    through_open(&t);
    through_overlay(&t, argv[4]);
    return 0;
  }
  if (argc < 5) {
    fprintf(stderr, "usage: fourwall-drop UID GID [--idmap OWNER_UID:OWNER_GID:PATH]... [--cgroup DIR]... -- PROGRAM [ARGS...]\n");
    return 125;
  }
  unsigned uid = (unsigned)strtoul(argv[1], NULL, 10), gid = (unsigned)strtoul(argv[2], NULL, 10);
  if (uid == 0 || gid == 0) { errno = EINVAL; die("refusing to run the box as uid or gid 0", NULL); }
  int i = 3;
  int unshared = 0;
  const char *reach_path = NULL;
  enum { MAX_THROUGH = 64 };
  struct through through[MAX_THROUGH];
  int nthrough = 0;
  /* the write-through overlays' clones first: no idmap of ours covers what they clone */
  for (int k = 3; k + 2 < argc && strcmp(argv[k], "--") != 0; k += 1 + values_of(argv[k])) {
    if (strcmp(argv[k], "--through") != 0) continue;
    struct through *t = &through[nthrough];
    int offset = 0;
    if (nthrough == MAX_THROUGH || sscanf(argv[k + 1], "%u:%u:%n", &t->uid, &t->gid, &offset) != 2 || offset == 0) {
      errno = EINVAL;
      die("bad --through (OWNER_UID:OWNER_GID:SUB DIR)", argv[k + 1]);
    }
    t->sub = argv[k + 1] + offset;
    t->dir = argv[k + 2];
    if (!unshared) {
      if (unshare(CLONE_NEWNS) < 0) die("unshare(CLONE_NEWNS)", NULL);
      if (mount(NULL, "/", NULL, MS_REC | MS_PRIVATE, NULL) < 0) die("make / private", NULL);
      unshared = 1;
    }
    through_open(t);
    nthrough++;
  }
  for (; i < argc && strcmp(argv[i], "--") != 0; i++) {
    if (strcmp(argv[i], "--reach") == 0 && i + 1 < argc) {
      reach_path = argv[++i];
      continue;
    }
    if ((strcmp(argv[i], "--through") == 0 || strcmp(argv[i], "--cover") == 0) && i + 2 < argc) {
      i += 2; /* taken above, or after the overlays below */
      continue;
    }
    if (strcmp(argv[i], "--cgroup") == 0 && i + 1 < argc) {
      char procs[4096], pid[32];
      snprintf(procs, sizeof procs, "%s/cgroup.procs", argv[++i]);
      snprintf(pid, sizeof pid, "%d\n", getpid());
      write_file(procs, pid);
      continue;
    }
    if (strcmp(argv[i], "--fd") == 0 && i + 1 < argc) {
      char *spec = argv[++i];
      int target = -1, offset = 0;
      if (sscanf(spec, "%d:%n", &target, &offset) != 1 || offset == 0 || target < 10) {
        errno = EINVAL;
        die("bad --fd (N:PATH, N >= 10)", spec);
      }
      int fd = open(spec + offset, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
      if (fd < 0) die("open", spec + offset);
      if (dup2(fd, target) < 0) die("dup2", spec);  /* dup2 clears close-on-exec on the copy */
      close(fd);
      continue;
    }
    if (strcmp(argv[i], "--idmap") != 0 || i + 1 >= argc) { errno = EINVAL; die("bad argument", argv[i]); }
    char *spec = argv[++i];
    unsigned owner_uid, owner_gid;
    int offset = 0;
    if (sscanf(spec, "%u:%u:%n", &owner_uid, &owner_gid, &offset) != 2 || offset == 0) {
      errno = EINVAL;
      die("bad --idmap", spec);
    }
    if (!unshared) {
      if (unshare(CLONE_NEWNS) < 0) die("unshare(CLONE_NEWNS)", NULL);
      if (mount(NULL, "/", NULL, MS_REC | MS_PRIVATE, NULL) < 0) die("make / private", NULL);
      unshared = 1;
    }
    idmap_mount(spec + offset, uid, gid, owner_uid, owner_gid);
  }
  if (i >= argc - 1) { errno = EINVAL; die("no program after --", NULL); }
  for (int k = 0; k < nthrough; k++) through_mount(&through[k], uid, gid);
  for (int k = 3; k + 2 < i; k += 1 + values_of(argv[k])) {
    if (strcmp(argv[k], "--cover") != 0) continue;
    if (!unshared) { errno = EINVAL; die("--cover without --through", argv[k + 2]); }
    if (mount(argv[k + 1], argv[k + 2], NULL, MS_BIND, NULL) < 0) die("bind over", argv[k + 2]);
    if (mount(NULL, argv[k + 2], NULL, MS_REMOUNT | MS_BIND | MS_RDONLY | MS_NOSUID | MS_NODEV, NULL) < 0)
      die("make read-only", argv[k + 2]);
  }
  if (reach_path) {
    if (!unshared) {
      if (unshare(CLONE_NEWNS) < 0) die("unshare(CLONE_NEWNS)", NULL);
      if (mount(NULL, "/", NULL, MS_REC | MS_PRIVATE, NULL) < 0) die("make / private", NULL);
      unshared = 1;
    }
    reach(reach_path, uid, gid);
  }
  if (setgroups(0, NULL) < 0) die("setgroups", NULL);
  if (setresgid(gid, gid, gid) < 0) die("setresgid", NULL);
  if (setresuid(uid, uid, uid) < 0) die("setresuid", NULL);
  if (setresuid(0, 0, 0) == 0) { errno = EPERM; die("uid drop did not stick", NULL); }
  if (prctl(PR_SET_PDEATHSIG, SIGKILL) < 0) die("prctl(PR_SET_PDEATHSIG)", NULL);
  if (getppid() == 1) { errno = ESRCH; die("parent already gone", NULL); }
  execvp(argv[i + 1], &argv[i + 1]);
  die("exec", argv[i + 1]);
  return 125;
}
