/*
 * fourwall-pause: the approval gate's pause at the action (namespaces runtime). A destructive
 * syscall on a file that existed in the workdir before the run waits, in the kernel, until fourwall
 * on the host has an answer: yes lets it run, no fails it with EACCES. Two halves, one binary:
 *
 *   fourwall-pause install SOCKET PROGRAM -- COMMAND [ARGS...]
 *     Inside the box, as the command's prefix (after bwrap has installed the box's own filter and
 *     set no_new_privs): installs PROGRAM (struct sock_filter[], made by src/walls/gate/pause-filter.ts)
 *     as a second seccomp filter with a user-notification listener, passes the listener's fd to
 *     the supervisor over the unix socket SOCKET (SCM_RIGHTS), waits for its one-byte receipt,
 *     closes both and execs the command. Every process the command starts inherits the filter.
 *
 *   fourwall-pause supervise SOCKET WORKDIR [EXEC_SOCKET]
 *     On the host, started by fourwall: listens on SOCKET (its directory is bound into the box),
 *     prints {"event":"listening"}, takes exactly one listener fd from the first connection (the
 *     install half, before the command runs), then removes SOCKET. A persistent box also gets
 *     EXEC_SOCKET (in the box's 0700 state dir on the host, never in the box): each `fourwall exec`
 *     (native/fourwall-enter.c) hands the listener of its command's filter there; only a peer of
 *     our own uid (SO_PEERCRED) whose fd is a seccomp listener is taken. Ids of exec listeners are
 *     printed and answered as "N:ID" (N: the listener's number; ids are per listener). Each notification is read from
 *     the box process (/proc/PID/mem for the path, /proc/PID/cwd or /proc/PID/fd/N for the base;
 *     SECCOMP_IOCTL_NOTIF_ID_VALID after every read, so a recycled pid is never believed). A path
 *     that is not a pre-existing entry of WORKDIR (the host's real workdir, which is also the
 *     workdir's path inside the box) lets the syscall continue at once, here, without Node. The
 *     others become one JSON line on stdout; fourwall answers on stdin, one line per notification:
 *     "ID c" (continue) or "ID d" (EACCES). stdin closed: exit (the box's paused syscalls then fail
 *     with ENOSYS). The listener closed (every box process gone): prints the counters and exits 0.
 *
 * Continuing a syscall is racy by nature (the box may rewrite the path after the check; see
 * linux/seccomp.h): the pause is never the enforcement. The copy-on-write layer underneath holds
 * whatever the box does, and fourwall applies early only the path a human said yes to.
 *
 * Exit status 125 with one line on stderr when a step fails (install: the command never runs).
 */
#define _GNU_SOURCE
#include <errno.h>
#include <dirent.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <linux/filter.h>
#include <linux/openat2.h>
#include <linux/seccomp.h>
#include <poll.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/un.h>
#include <unistd.h>

#define FOURWALL_HELPER "fourwall-pause"
#include "common.h"

#ifndef SECCOMP_FILTER_FLAG_WAIT_KILLABLE_RECV
#define SECCOMP_FILTER_FLAG_WAIT_KILLABLE_RECV (1UL << 5)
#endif
#ifndef AT_EMPTY_PATH
#define AT_EMPTY_PATH 0x1000
#endif
#ifndef SYS_fchmodat2
#define SYS_fchmodat2 452
#endif
#define RENAME_NOREPLACE_FLAG 1
#define RENAME_EXCHANGE_FLAG 2

/* ------------------------------------------------------------------ install (inside the box) */

static int install(const char *socket_path, const char *program_path, char **command) {
  int pfd = open(program_path, O_RDONLY | O_CLOEXEC);
  if (pfd < 0) die("open the filter program", program_path);
  static struct sock_filter insns[BPF_MAXINSNS + 1];
  ssize_t n = read(pfd, insns, sizeof insns);
  close(pfd);
  if (n <= 0 || n % (ssize_t)sizeof(struct sock_filter) != 0 || n > (ssize_t)(BPF_MAXINSNS * sizeof(struct sock_filter))) {
    errno = EINVAL;
    die("bad filter program", program_path);
  }
  struct sock_fprog prog = {.len = (unsigned short)(n / sizeof(struct sock_filter)), .filter = insns};
  /* bwrap set it already; installing a filter unprivileged requires it. */
  if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) < 0) die("prctl(PR_SET_NO_NEW_PRIVS)", NULL);
  /* WAIT_KILLABLE_RECV (Linux 5.19): once fourwall has the notification, only a fatal signal
   * interrupts the wait, so a SIGWINCH or SIGCHLD does not restart the syscall and ask twice. */
  long listener = syscall(SYS_seccomp, SECCOMP_SET_MODE_FILTER,
                          SECCOMP_FILTER_FLAG_NEW_LISTENER | SECCOMP_FILTER_FLAG_WAIT_KILLABLE_RECV, &prog);
  if (listener < 0 && errno == EINVAL)
    listener = syscall(SYS_seccomp, SECCOMP_SET_MODE_FILTER, SECCOMP_FILTER_FLAG_NEW_LISTENER, &prog);
  if (listener < 0) die("seccomp(SECCOMP_FILTER_FLAG_NEW_LISTENER)", NULL);

  int sock = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (sock < 0) die("socket", NULL);
  struct sockaddr_un addr = {.sun_family = AF_UNIX};
  if (strlen(socket_path) >= sizeof addr.sun_path) { errno = ENAMETOOLONG; die("socket path", socket_path); }
  strcpy(addr.sun_path, socket_path);
  if (connect(sock, (struct sockaddr *)&addr, sizeof addr) < 0) die("connect", socket_path);
  int lfd = (int)listener;
  if (send_one_fd(sock, lfd, 'L') < 0) die("send the listener to", socket_path);
  char byte;
  /* The receipt: the supervisor holds the listener before the command runs (else: 125). */
  if (read(sock, &byte, 1) != 1 || byte != 'K') { errno = EPROTO; die("no receipt from the supervisor at", socket_path); }
  close(lfd);
  close(sock);
  execvp(command[0], command);
  die("exec", command[0]);
}

/* ------------------------------------------------------------------ supervise (on the host) */

static int lower_fd = -1;
static char workdir[PATH_MAX];
static size_t workdir_len;
static unsigned long long fast_continued, asked, unresolved;

/* A NUL-terminated string from the box process's memory, page by page (never across an unmapped
 * page in one read). 0 on success. */
static int read_string(int mem, uint64_t addr, char *out, size_t size) {
  size_t got = 0;
  while (got < size) {
    size_t page_left = 4096 - ((addr + got) & 4095);
    size_t want = size - got < page_left ? size - got : page_left;
    ssize_t n = pread(mem, out + got, want, (off_t)(addr + got));
    if (n <= 0) return -1;
    char *nul = memchr(out + got, '\0', (size_t)n);
    if (nul) return 0;
    got += (size_t)n;
  }
  return -1; /* longer than PATH_MAX: the kernel refuses it anyway */
}

/* readlink of /proc/PID/cwd or /proc/PID/fd/N: the base of a relative path, as the box sees it. */
static int base_of(pid_t pid, int dirfd, char *out, size_t size) {
  char link[64];
  if (dirfd == AT_FDCWD) snprintf(link, sizeof link, "/proc/%d/cwd", pid);
  else snprintf(link, sizeof link, "/proc/%d/fd/%d", pid, dirfd);
  ssize_t n = readlink(link, out, size - 1);
  if (n <= 0 || out[0] != '/') return -1; /* pipe:[…], anon_inode:…, unreachable */
  out[n] = '\0';
  if (n >= 10 && strcmp(out + n - 10, " (deleted)") == 0) return -1;
  return 0;
}

/* base + path, normalised as text ("." and ".." and "//"): symlinks are not followed here, so a
 * path through one may be misnamed; the layer underneath holds what really changed. */
static int join_normal(const char *base, const char *path, char *out, size_t size) {
  char tmp[PATH_MAX * 2 + 2];
  int n = path[0] == '/' ? snprintf(tmp, sizeof tmp, "%s", path) : snprintf(tmp, sizeof tmp, "%s/%s", base, path);
  if (n < 0 || (size_t)n >= sizeof tmp) return -1;
  size_t len = 0;
  for (char *save = NULL, *part = strtok_r(tmp, "/", &save); part; part = strtok_r(NULL, "/", &save)) {
    if (strcmp(part, ".") == 0) continue;
    if (strcmp(part, "..") == 0) {
      while (len > 0 && out[len - 1] != '/') len--;
      if (len > 0) len--;
      continue;
    }
    size_t pl = strlen(part);
    if (len + 1 + pl + 1 > size) return -1;
    out[len++] = '/';
    memcpy(out + len, part, pl);
    len += pl;
  }
  if (len == 0) out[len++] = '/';
  out[len] = '\0';
  return 0;
}

struct target {
  int resolved;      /* a path we could name */
  int in_workdir;    /* below the workdir (not the workdir itself) */
  char path[PATH_MAX]; /* relative to the workdir when in_workdir, else absolute (as the box sees it) */
  int exists;        /* a pre-existing entry of the real workdir */
  mode_t mode;       /* its mode there */
};

/* Whether rel names an entry of the real workdir, walked beneath it without following a symlink. */
static void classify(struct target *t, const char *abs) {
  t->resolved = 1;
  if (strncmp(abs, workdir, workdir_len) == 0 && abs[workdir_len] == '/' && abs[workdir_len + 1]) {
    t->in_workdir = 1;
    snprintf(t->path, sizeof t->path, "%s", abs + workdir_len + 1);
    struct open_how how = {
      .flags = O_PATH | O_NOFOLLOW | O_CLOEXEC,
      .resolve = RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS | RESOLVE_NO_MAGICLINKS | RESOLVE_NO_XDEV,
    };
    long fd = syscall(SYS_openat2, lower_fd, t->path, &how, sizeof how);
    struct stat st;
    if (fd >= 0) {
      if (fstat((int)fd, &st) == 0) {
        t->exists = 1;
        t->mode = st.st_mode;
      }
      close((int)fd);
    } else if (errno != ENOENT && errno != ENOTDIR) {
      t->resolved = 0; /* a symlink on the way (ELOOP, EXDEV): not named here, the layer holds it */
    }
  } else {
    snprintf(t->path, sizeof t->path, "%s", abs);
  }
}

/* Resolves (dirfd, path at addr) of the notifying process into t. */
static void resolve_path(struct target *t, pid_t pid, int mem, int dirfd, uint64_t addr, int empty_ok) {
  memset(t, 0, sizeof *t);
  char path[PATH_MAX], base[PATH_MAX], abs[PATH_MAX];
  if (read_string(mem, addr, path, sizeof path) < 0) return;
  if (path[0] == '\0') {
    if (!empty_ok) return;
    if (base_of(pid, dirfd, abs, sizeof abs) < 0) return;
    classify(t, abs);
    return;
  }
  if (path[0] != '/' && base_of(pid, dirfd, base, sizeof base) < 0) return;
  if (join_normal(base, path, abs, sizeof abs) < 0) return;
  classify(t, abs);
}

static void resolve_fd(struct target *t, pid_t pid, int fd) {
  memset(t, 0, sizeof *t);
  char abs[PATH_MAX];
  if (fd < 0 || base_of(pid, fd, abs, sizeof abs) < 0) return;
  classify(t, abs);
}

static void respond(int listener, uint64_t id, int allow) {
  struct seccomp_notif_resp resp = {.id = id};
  if (allow) resp.flags = SECCOMP_USER_NOTIF_FLAG_CONTINUE;
  else resp.error = -EACCES;
  /* ENOENT: the syscall was interrupted or the process is gone; nothing to answer. */
  ioctl(listener, SECCOMP_IOCTL_NOTIF_SEND, &resp);
}

static void put_hex(const char *s) {
  for (; *s; s++) printf("%02x", (unsigned char)*s);
}

static void put_target(const char *role, const struct target *t, int first) {
  printf("%s{\"role\":\"%s\",\"inWorkdir\":%s,\"path\":\"", first ? "" : ",", role, t->in_workdir ? "true" : "false");
  put_hex(t->path);
  printf("\",\"exists\":%s,\"mode\":%u}", t->exists ? "true" : "false", (unsigned)t->mode);
}

/*
 * The tree a delete belongs to (rm -r, find -delete, python's shutil.rmtree): the topmost
 * pre-existing workdir directory (not the workdir itself) that the deleting process holds open and
 * that contains the target. Tree walkers keep the directories they descend through open (gnulib's
 * fts keeps the current one and a ring of its ancestors; rmtree one per level); a plain `rm file`
 * holds none. fourwall asks about that directory once (pause-supervisor.ts). Empty: no tree.
 */
static void walk_of(pid_t pid, const char *target, char *out, size_t size) {
  out[0] = '\0';
  char dirp[64];
  snprintf(dirp, sizeof dirp, "/proc/%d/fd", pid);
  int dfd = open(dirp, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (dfd < 0) return;
  DIR *d = fdopendir(dfd);
  if (!d) { close(dfd); return; }
  size_t tl = strlen(target);
  for (struct dirent *e; (e = readdir(d)) != NULL;) {
    if (e->d_name[0] == '.') continue;
    char abs[PATH_MAX];
    int fd = atoi(e->d_name);
    if (base_of(pid, fd, abs, sizeof abs) < 0) continue;
    if (strncmp(abs, workdir, workdir_len) != 0 || abs[workdir_len] != '/' || !abs[workdir_len + 1]) continue;
    const char *rel = abs + workdir_len + 1;
    size_t rl = strlen(rel);
    /* contains the target, strictly, and is higher up than what we have */
    if (rl >= tl || strncmp(rel, target, rl) != 0 || target[rl] != '/') continue;
    if (out[0] && rl >= strlen(out)) continue;
    struct target t;
    memset(&t, 0, sizeof t);
    classify(&t, abs);
    if (!t.exists || !S_ISDIR(t.mode) || rl >= size) continue;
    memcpy(out, rel, rl + 1);
  }
  closedir(d);
}

/* One notification: answered here when no pre-existing workdir entry is involved, else one line
 * for fourwall. */
static void handle(int listener, unsigned lidx, struct seccomp_notif *req) {
  const __u64 *a = req->data.args;
  pid_t pid = (pid_t)req->pid;
  char memp[64];
  snprintf(memp, sizeof memp, "/proc/%d/mem", pid);
  int mem = open(memp, O_RDONLY | O_CLOEXEC);
  if (mem < 0) { unresolved++; respond(listener, req->id, 1); return; }
  struct target t[2];
  memset(t, 0, sizeof t);
  int count = 1;
  const char *sys = "?", *roles[2] = {"target", "to"};
  uint64_t flags = 0, mode = 0, length = 0;
  int nr = req->data.nr;
  switch (nr) {
#ifdef SYS_unlink
    case SYS_unlink: sys = "unlink"; resolve_path(&t[0], pid, mem, AT_FDCWD, a[0], 0); break;
    case SYS_rmdir: sys = "rmdir"; resolve_path(&t[0], pid, mem, AT_FDCWD, a[0], 0); break;
    case SYS_rename:
      sys = "rename"; roles[0] = "from"; count = 2;
      resolve_path(&t[0], pid, mem, AT_FDCWD, a[0], 0);
      resolve_path(&t[1], pid, mem, AT_FDCWD, a[1], 0);
      break;
    case SYS_open: sys = "open"; flags = a[1]; resolve_path(&t[0], pid, mem, AT_FDCWD, a[0], 0); break;
    case SYS_creat: sys = "creat"; flags = O_TRUNC; resolve_path(&t[0], pid, mem, AT_FDCWD, a[0], 0); break;
    case SYS_chmod: sys = "chmod"; mode = a[1]; resolve_path(&t[0], pid, mem, AT_FDCWD, a[0], 0); break;
#endif
    case SYS_unlinkat:
      flags = a[2];
      sys = (flags & AT_REMOVEDIR) ? "rmdir" : "unlink";
      resolve_path(&t[0], pid, mem, (int)a[0], a[1], 0);
      break;
    case SYS_renameat:
    case SYS_renameat2:
      sys = nr == SYS_renameat ? "rename" : "renameat2";
      flags = nr == SYS_renameat2 ? a[4] : 0;
      roles[0] = "from"; count = 2;
      resolve_path(&t[0], pid, mem, (int)a[0], a[1], 0);
      resolve_path(&t[1], pid, mem, (int)a[2], a[3], 0);
      break;
    case SYS_truncate: sys = "truncate"; length = a[1]; resolve_path(&t[0], pid, mem, AT_FDCWD, a[0], 0); break;
    case SYS_ftruncate: sys = "truncate"; length = a[1]; resolve_fd(&t[0], pid, (int)a[0]); break;
    case SYS_openat: sys = "open"; flags = a[2]; resolve_path(&t[0], pid, mem, (int)a[0], a[1], 0); break;
    case SYS_openat2: {
      /* the flags live in struct open_how, which a filter cannot read: read them here */
      uint64_t how_flags = 0;
      sys = "open";
      if (a[3] >= sizeof how_flags && pread(mem, &how_flags, sizeof how_flags, (off_t)a[2]) == sizeof how_flags) {
        flags = how_flags;
        if (flags & O_TRUNC) resolve_path(&t[0], pid, mem, (int)a[0], a[1], 0);
      }
      break;
    }
    case SYS_fchmod: sys = "chmod"; mode = a[1]; resolve_fd(&t[0], pid, (int)a[0]); break;
    case SYS_fchmodat: sys = "chmod"; mode = a[2]; resolve_path(&t[0], pid, mem, (int)a[0], a[1], 0); break;
    case SYS_fchmodat2:
      sys = "chmod"; mode = a[2]; flags = a[3];
      resolve_path(&t[0], pid, mem, (int)a[0], a[1], (flags & AT_EMPTY_PATH) != 0);
      break;
    default: break;
  }
  close(mem);
  if (strcmp(sys, "open") == 0 && !(flags & O_TRUNC)) t[0].exists = 0; /* not a truncation */
  int relevant = t[0].exists;
  /* rename: the destination matters when it is replaced (not with RENAME_NOREPLACE) */
  if (count == 2 && t[1].exists && !(flags & RENAME_NOREPLACE_FLAG)) relevant = 1;
  static char walk[PATH_MAX];
  walk[0] = '\0';
  if (relevant && count == 1 && t[0].in_workdir && (strcmp(sys, "unlink") == 0 || strcmp(sys, "rmdir") == 0))
    walk_of(pid, t[0].path, walk, sizeof walk);
  /* Read after the reads: the process that asked is still the one we read (no recycled pid). */
  if (ioctl(listener, SECCOMP_IOCTL_NOTIF_ID_VALID, &req->id) < 0) return;
  if (!relevant) {
    if (!t[0].resolved) unresolved++;
    fast_continued++;
    respond(listener, req->id, 1);
    return;
  }
  asked++;
  char prefix[16] = "";
  if (lidx > 0) snprintf(prefix, sizeof prefix, "%u:", lidx);
  printf("{\"id\":\"%s%" PRIu64 "\",\"pid\":%d,\"sys\":\"%s\",\"flags\":%" PRIu64 ",\"mode\":%" PRIu64 ",\"length\":%" PRIu64 ",\"paths\":[",
         prefix, (uint64_t)req->id, pid, sys, flags, mode, length);
  for (int i = 0; i < count; i++) put_target(roles[i], &t[i], i == 0);
  printf("],\"walk\":\"");
  put_hex(walk);
  printf("\"}\n");
  fflush(stdout);
}

/* Exec listeners (persistent boxes): each `fourwall exec` command's filter has its own. */
#define MAX_EXEC 256
#define MAX_PENDING 16
static struct { int fd; unsigned idx; } execs[MAX_EXEC];
static int nexecs;
static unsigned next_idx = 1;
static int pending[MAX_PENDING]; /* accepted exec connections whose listener has not come yet */
static int npending;

static int listener_of(unsigned idx, int main_listener) {
  if (idx == 0) return main_listener;
  for (int i = 0; i < nexecs; i++)
    if (execs[i].idx == idx) return execs[i].fd;
  return -1;
}

/* "ID c" / "ID d" (the box's own listener) or "N:ID c" / "N:ID d" (exec listener N) from fourwall. */
static void answer_lines(int main_listener, char *buf, size_t *len) {
  char *start = buf, *nl;
  while ((nl = memchr(start, '\n', *len - (size_t)(start - buf))) != NULL) {
    *nl = '\0';
    char *end;
    unsigned idx = 0;
    uint64_t id = strtoull(start, &end, 10);
    if (end != start && *end == ':') {
      idx = (unsigned)id;
      char *s2 = end + 1;
      id = strtoull(s2, &end, 10);
      if (end == s2) end = start; /* malformed */
    }
    int l = listener_of(idx, main_listener);
    if (end != start && *end == ' ' && l >= 0) respond(l, id, end[1] == 'c');
    start = nl + 1;
  }
  size_t rest = *len - (size_t)(start - buf);
  memmove(buf, start, rest);
  *len = rest;
}

/* One fd passed with SCM_RIGHTS on conn (one byte of data); -1 when none. */
static int recv_fd(int conn) {
  char byte;
  struct iovec iov = {.iov_base = &byte, .iov_len = 1};
  union { char buf[CMSG_SPACE(sizeof(int))]; struct cmsghdr align; } control;
  memset(&control, 0, sizeof control);
  struct msghdr msg = {.msg_iov = &iov, .msg_iovlen = 1, .msg_control = control.buf, .msg_controllen = sizeof control.buf};
  if (recvmsg(conn, &msg, MSG_CMSG_CLOEXEC | MSG_DONTWAIT) != 1) return -1;
  struct cmsghdr *c = CMSG_FIRSTHDR(&msg);
  if (!c || c->cmsg_level != SOL_SOCKET || c->cmsg_type != SCM_RIGHTS || c->cmsg_len != CMSG_LEN(sizeof(int)) ||
      (msg.msg_flags & MSG_CTRUNC)) {
    errno = EPROTO;
    return -1;
  }
  int fd;
  memcpy(&fd, CMSG_DATA(c), sizeof fd);
  return fd;
}

static int take_listener(int server) {
  int conn = accept4(server, NULL, NULL, SOCK_CLOEXEC);
  if (conn < 0) die("accept", NULL);
  struct pollfd p = {.fd = conn, .events = POLLIN};
  if (poll(&p, 1, -1) < 0) die("poll", NULL);
  int listener = recv_fd(conn);
  if (listener < 0) die("no listener fd in the message", NULL);
  if (write(conn, "K", 1) != 1) die("receipt", NULL);
  close(conn);
  return listener;
}

/* Whether fd is a seccomp user-notification listener (what the kernel names "[seccomp notify]"). */
static int is_seccomp_listener(int fd) {
  char link[64], target[64];
  snprintf(link, sizeof link, "/proc/self/fd/%d", fd);
  ssize_t n = readlink(link, target, sizeof target - 1);
  if (n <= 0) return 0;
  target[n] = '\0';
  return strcmp(target, "anon_inode:seccomp notify") == 0;
}

/* An exec connection has data: take its listener if the peer is one of ours, answer K, close. A
 * failure only drops that connection (that exec then refuses to run): the box's pause goes on. */
static void take_exec_listener(int conn) {
  struct ucred cred;
  socklen_t cl = sizeof cred;
  int fd = -1;
  if (getsockopt(conn, SOL_SOCKET, SO_PEERCRED, &cred, &cl) == 0 && cred.uid == geteuid() && nexecs < MAX_EXEC)
    fd = recv_fd(conn);
  if (fd >= 0 && !is_seccomp_listener(fd)) {
    close(fd);
    fd = -1;
  }
  if (fd >= 0) {
    execs[nexecs].fd = fd;
    execs[nexecs].idx = next_idx++;
    nexecs++;
    if (write(conn, "K", 1) != 1) { /* the exec is gone: its listener hangs up by itself */ }
  }
  close(conn);
}

static int supervise(const char *socket_path, const char *dir, const char *exec_path) {
  signal(SIGPIPE, SIG_IGN);
  /* Ctrl-C on the caller's terminal is the box's business, not ours: fourwall ends us (stdin). */
  signal(SIGINT, SIG_IGN);
  signal(SIGQUIT, SIG_IGN);
  if (prctl(PR_SET_PDEATHSIG, SIGKILL) < 0) die("prctl(PR_SET_PDEATHSIG)", NULL);
  if (getppid() == 1) { errno = ESRCH; die("parent already gone", NULL); }
  size_t dl = strlen(dir);
  while (dl > 1 && dir[dl - 1] == '/') dl--;
  if (dir[0] != '/' || dl >= sizeof workdir) { errno = EINVAL; die("workdir", dir); }
  memcpy(workdir, dir, dl);
  workdir[dl] = '\0';
  workdir_len = dl;
  lower_fd = open(workdir, O_PATH | O_DIRECTORY | O_CLOEXEC);
  if (lower_fd < 0) die("open", workdir);

  int server = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (server < 0) die("socket", NULL);
  struct sockaddr_un addr = {.sun_family = AF_UNIX};
  if (strlen(socket_path) >= sizeof addr.sun_path) { errno = ENAMETOOLONG; die("socket path", socket_path); }
  strcpy(addr.sun_path, socket_path);
  unlink(socket_path);
  if (bind(server, (struct sockaddr *)&addr, sizeof addr) < 0) die("bind", socket_path);
  /* The box's uid (root mode) connects; the directory (0700, the box uid's) keeps others out. */
  if (chmod(socket_path, 0666) < 0) die("chmod", socket_path);
  if (listen(server, 1) < 0) die("listen", socket_path);

  int exec_server = -1;
  if (exec_path) {
    exec_server = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
    if (exec_server < 0) die("socket", NULL);
    struct sockaddr_un ea = {.sun_family = AF_UNIX};
    if (strlen(exec_path) >= sizeof ea.sun_path) { errno = ENAMETOOLONG; die("socket path", exec_path); }
    strcpy(ea.sun_path, exec_path);
    unlink(exec_path);
    /* 0600 from the start: only our uid (the box's owner) may hand us an exec's listener */
    mode_t old = umask(0177);
    if (bind(exec_server, (struct sockaddr *)&ea, sizeof ea) < 0) die("bind", exec_path);
    umask(old);
    if (listen(exec_server, MAX_PENDING) < 0) die("listen", exec_path);
  }
  printf("{\"event\":\"listening\"}\n");
  fflush(stdout);

  char buf[8192];
  size_t len = 0;
  int listener = -1;
  /* Until the install half connects: stdin closing (the box never started) ends us. */
  while (listener < 0) {
    struct pollfd p[2] = {{.fd = server, .events = POLLIN}, {.fd = 0, .events = POLLIN}};
    if (poll(p, 2, -1) < 0) { if (errno == EINTR) continue; die("poll", NULL); }
    if (p[1].revents) {
      ssize_t n = read(0, buf, sizeof buf);
      if (n <= 0) { unlink(socket_path); if (exec_path) unlink(exec_path); return 0; }
    }
    if (p[0].revents & POLLIN) listener = take_listener(server);
  }
  /* One listener per box: nobody else in the box gets to hand us one. */
  close(server);
  unlink(socket_path);
  printf("{\"event\":\"attached\"}\n");
  fflush(stdout);

  struct seccomp_notif_sizes sizes;
  if (syscall(SYS_seccomp, SECCOMP_GET_NOTIF_SIZES, 0, &sizes) < 0) die("seccomp(SECCOMP_GET_NOTIF_SIZES)", NULL);
  size_t req_size = sizes.seccomp_notif > sizeof(struct seccomp_notif) ? sizes.seccomp_notif : sizeof(struct seccomp_notif);
  struct seccomp_notif *req = malloc(req_size);
  if (!req) die("malloc", NULL);
  /* poll set: [0] the box's listener, [1] stdin, [2] the exec socket, then pending exec
   * connections, then exec listeners */
  struct pollfd p[3 + MAX_PENDING + MAX_EXEC];
  int main_open = 1;
  for (;;) {
    int np = 0;
    p[np++] = (struct pollfd){.fd = main_open ? listener : -1, .events = POLLIN};
    p[np++] = (struct pollfd){.fd = 0, .events = POLLIN};
    p[np++] = (struct pollfd){.fd = exec_server, .events = POLLIN};
    for (int i = 0; i < npending; i++) p[np++] = (struct pollfd){.fd = pending[i], .events = POLLIN};
    for (int i = 0; i < nexecs; i++) p[np++] = (struct pollfd){.fd = execs[i].fd, .events = POLLIN};
    if (poll(p, (nfds_t)np, -1) < 0) { if (errno == EINTR) continue; die("poll", NULL); }
    if (p[1].revents) {
      ssize_t n = read(0, buf + len, sizeof buf - 1 - len);
      if (n <= 0) break;
      len += (size_t)n;
      answer_lines(listener, buf, &len);
      if (len >= sizeof buf - 1) len = 0; /* a line that long is not fourwall's: drop it */
    }
    if (p[0].revents & POLLIN) {
      memset(req, 0, req_size);
      if (ioctl(listener, SECCOMP_IOCTL_NOTIF_RECV, req) == 0) handle(listener, 0, req);
      else if (errno != ENOENT && errno != EINTR) die("SECCOMP_IOCTL_NOTIF_RECV", NULL);
    } else if (p[0].revents & (POLLHUP | POLLERR)) {
      main_open = 0; /* every process of the box's own command has exited */
    }
    /* exec listeners: a notification, or every process of that exec gone */
    int base = 3 + npending;
    for (int i = nexecs - 1; i >= 0; i--) {
      short ev = p[base + i].revents;
      if (ev & POLLIN) {
        memset(req, 0, req_size);
        if (ioctl(execs[i].fd, SECCOMP_IOCTL_NOTIF_RECV, req) == 0) handle(execs[i].fd, execs[i].idx, req);
        else if (errno != ENOENT && errno != EINTR) ev |= POLLERR;
      }
      if (!(ev & POLLIN) && (ev & (POLLHUP | POLLERR | POLLNVAL))) {
        close(execs[i].fd);
        execs[i] = execs[--nexecs];
      }
    }
    for (int i = npending - 1; i >= 0; i--) {
      if (!p[3 + i].revents) continue;
      take_exec_listener(pending[i]);
      pending[i] = pending[--npending];
    }
    if (exec_server >= 0 && (p[2].revents & POLLIN)) {
      int conn = accept4(exec_server, NULL, NULL, SOCK_CLOEXEC | SOCK_NONBLOCK);
      if (conn >= 0 && npending < MAX_PENDING) pending[npending++] = conn;
      else if (conn >= 0) close(conn);
    }
    /* the box is gone: its execs went with it (they live in its pid namespace) */
    if (!main_open && nexecs == 0) break;
  }
  if (exec_path) unlink(exec_path);
  printf("{\"event\":\"done\",\"continued\":%llu,\"asked\":%llu,\"unresolved\":%llu}\n", fast_continued, asked, unresolved);
  fflush(stdout);
  return 0;
}

int main(int argc, char **argv) {
  if (argc >= 6 && strcmp(argv[1], "install") == 0 && strcmp(argv[4], "--") == 0)
    return install(argv[2], argv[3], &argv[5]);
  if ((argc == 4 || argc == 5) && strcmp(argv[1], "supervise") == 0) {
    cloexec_from(3);
    return supervise(argv[2], argv[3], argc == 5 ? argv[4] : NULL);
  }
  fprintf(stderr,
          "usage: fourwall-pause install SOCKET PROGRAM -- COMMAND [ARGS...]\n"
          "       fourwall-pause supervise SOCKET WORKDIR [EXEC_SOCKET]\n");
  return 125;
}
