/*
 * fourwall-reaper: one per box, for the box's whole life; what src/box/reaper.ts's shell script
 * did with sh and two flock(1) processes, in one exec (each exec costs what `true` costs on a busy
 * host; the shell's three took 20-35 ms of every box's start).
 *
 * It holds a shared flock(2) on the workdir's lock file (every box on one workdir holds it), and in
 * root mode an exclusive one on the first free box uid's lock in FOURWALL_UIDS ("DIR FIRST COUNT"),
 * then says "locked [UID]" on stdout and waits for a line on stdin: "ok" when fourwall ends
 * normally, anything else or end-of-file when fourwall was killed (then the run dir's on-kill
 * script runs first). Either way it removes the box's cgroups, its run dir and FOURWALL_REAP_ALSO,
 * and if no other box holds the workdir's lock (the shared lock converts to an exclusive one
 * without waiting) the placeholders listed in LIST, each only while still what fourwall put there,
 * then LIST and LOCK themselves (nothing of a workdir's stays in the locks dir).
 * Terminal and termination signals are ignored (it runs in a session of its own); the locks end
 * with it, so a box killed with fourwall frees its uid when its reaper ends.
 *
 * usage: fourwall-reaper LOCK LIST RUN_DIR [CGROUP_DIR...]
 * Exit status: 0; 1 when the workdir's lock cannot be taken, 2 when no box uid is free (nothing
 * is printed then).
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

static void nap(long ms) {
  struct timespec ts = {.tv_sec = ms / 1000, .tv_nsec = (ms % 1000) * 1000000L};
  while (nanosleep(&ts, &ts) < 0 && errno == EINTR) {
  }
}

/* Runs argv (found in PATH, as the shell script did) with stdio on /dev/null; waits for it. */
static void run_quietly(char *const argv[]) {
  pid_t pid = fork();
  if (pid < 0) return;
  if (pid == 0) {
    int null = open("/dev/null", O_RDWR);
    if (null >= 0) {
      dup2(null, 0), dup2(null, 1), dup2(null, 2);
      if (null > 2) close(null);
    }
    signal(SIGINT, SIG_DFL), signal(SIGTERM, SIG_DFL), signal(SIGHUP, SIG_DFL), signal(SIGQUIT, SIG_DFL);
    signal(SIGPIPE, SIG_DFL);
    execvp(argv[0], argv);
    _exit(127);
  }
  while (waitpid(pid, NULL, 0) < 0 && errno == EINTR) {
  }
}

static int is_dir(const char *p) {
  struct stat st;
  return lstat(p, &st) == 0 && S_ISDIR(st.st_mode);
}

/* rm -rf --one-file-system: never crosses into a mount left standing in the run dir. */
static void remove_tree(const char *dir) {
  if (!dir || !*dir || !is_dir(dir)) return;
  char *argv[] = {"rm", "-rf", "--one-file-system", "--", (char *)dir, NULL};
  run_quietly(argv);
}

/* A list entry's path: encodeListPath doubled every backslash and wrote newlines as \n. */
static void decode(const char *in, char *out) {
  for (; *in; in++) {
    if (in[0] == '\\' && in[1] == '\\') *out++ = '\\', in++;
    else if (in[0] == '\\' && in[1] == 'n') *out++ = '\n', in++;
    else *out++ = *in;
  }
  *out = 0;
}

/* A placeholder file is fourwall's while it is a regular file (not a link), empty or just "{}". */
static void remove_placeholder_file(const char *p) {
  int fd = open(p, O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC);
  if (fd < 0) return;
  struct stat st;
  char buf[4];
  ssize_t n = 0;
  int ours = 0;
  if (fstat(fd, &st) == 0 && S_ISREG(st.st_mode)) {
    if (st.st_size == 0) ours = 1;
    else if (st.st_size <= 3 && (n = read(fd, buf, sizeof buf)) >= 2)
      ours = !memcmp(buf, "{}", 2) && (n == 2 || (n == 3 && buf[2] == '\n'));
  }
  close(fd);
  if (ours) unlink(p);
}

/* Files first; directories after, newest first (a later placeholder may stand inside an earlier one). */
static void remove_placeholders(const char *list) {
  FILE *f = fopen(list, "re");
  if (!f) return;
  char *line = NULL, **dirs = NULL;
  size_t cap = 0, ndirs = 0;
  ssize_t len;
  while ((len = getline(&line, &cap, f)) > 0) {
    if (line[len - 1] == '\n') line[--len] = 0;
    char *space = strchr(line, ' ');
    if (!space) continue;
    *space = 0;
    char *path = malloc(strlen(space + 1) + 1);
    if (!path) break;
    decode(space + 1, path);
    if (!strcmp(line, "dir")) {
      char **more = realloc(dirs, (ndirs + 1) * sizeof *dirs);
      if (!more) {
        free(path);
        break;
      }
      dirs = more;
      dirs[ndirs++] = path;
      continue;
    }
    remove_placeholder_file(path);
    free(path);
  }
  fclose(f);
  free(line);
  while (ndirs > 0) {
    char *p = dirs[--ndirs];
    if (is_dir(p)) rmdir(p);
    free(p);
  }
  free(dirs);
  int fd = open(list, O_WRONLY | O_TRUNC | O_NOFOLLOW | O_CLOEXEC);
  if (fd >= 0) close(fd);
}

/*
 * The workdir's lock, held shared: the file at LOCK when the lock was taken (the last reaper of a
 * workdir unlinks it while holding it exclusively, so a lock taken on the file it removed is taken
 * again on a new one). The fd, or -1.
 */
static int lock_shared(const char *lock) {
  for (;;) {
    int fd = open(lock, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0666);
    if (fd < 0) return -1;
    while (flock(fd, LOCK_SH) < 0)
      if (errno != EINTR) return close(fd), -1;
    struct stat held, named;
    if (fstat(fd, &held) == 0 && stat(lock, &named) == 0 && held.st_ino == named.st_ino &&
        held.st_dev == named.st_dev)
      return fd;
    close(fd);
  }
}

int main(int argc, char **argv) {
  if (argc < 4) {
    fprintf(stderr, "usage: fourwall-reaper LOCK LIST RUN_DIR [CGROUP_DIR...]\n");
    return 1;
  }
  const char *lock = argv[1], *list = argv[2], *run_dir = argv[3];
  signal(SIGINT, SIG_IGN), signal(SIGTERM, SIG_IGN), signal(SIGHUP, SIG_IGN), signal(SIGQUIT, SIG_IGN);
  signal(SIGPIPE, SIG_IGN);

  int lfd = lock_shared(lock);
  if (lfd < 0) return 1;

  /* root mode: a uid of the box's own, the first whose lock nobody holds, held for the reaper's life */
  char said[32] = "locked \n";
  const char *uids = getenv("FOURWALL_UIDS");
  if (uids && *uids) {
    char dir[4096];
    long first, count;
    if (sscanf(uids, "%4095s %ld %ld", dir, &first, &count) != 3) return 2;
    long uid = -1;
    for (long u = first; u < first + count && uid < 0; u++) {
      char path[4200];
      snprintf(path, sizeof path, "%s/%ld.lock", dir, u);
      int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_NOFOLLOW | O_CLOEXEC, 0666);
      if (fd < 0) continue;
      if (flock(fd, LOCK_EX | LOCK_NB) == 0) uid = u; /* kept open: the lock lives with the reaper */
      else close(fd);
    }
    if (uid < 0) return 2;
    snprintf(said, sizeof said, "locked %ld\n", uid);
  }
  if (write(1, said, strlen(said)) < 0) {
    /* fourwall is gone already: clean up as if it had been killed */
  }
  close(1);

  /* one line from fourwall: "ok", or end-of-file when it was killed */
  char got[8] = {0};
  size_t n = 0;
  for (;;) {
    char c;
    ssize_t r = read(0, &c, 1);
    if (r < 0 && errno == EINTR) continue;
    if (r <= 0 || c == '\n') break;
    if (n < sizeof got - 1) got[n++] = c;
  }
  if (strcmp(got, "ok") != 0) {
    /* killed: what a runtime left outside the box's process tree (a docker container) goes first */
    nap(200);
    char on_kill[4200];
    snprintf(on_kill, sizeof on_kill, "%s/on-kill", run_dir);
    struct stat st;
    if (stat(on_kill, &st) == 0 && S_ISREG(st.st_mode)) {
      char *sh[] = {"sh", on_kill, NULL};
      run_quietly(sh);
    }
  }
  /* (on a normal exit fourwall has removed these itself) */
  for (int i = 4; i < argc; i++)
    for (int t = 0; t < 10 && is_dir(argv[i]); t++) {
      if (rmdir(argv[i]) == 0) break;
      nap(200);
    }
  remove_tree(run_dir);
  /* squid's own dir (outside the run dir, so the run dir stays closed to squid's uid) */
  remove_tree(getenv("FOURWALL_REAP_ALSO"));

  /* the last box on this workdir: its placeholders, then the list and the lock file themselves go
     (unlinked while held: a reaper that opened the old file sees it gone and opens a new one) */
  if (flock(lfd, LOCK_EX | LOCK_NB) == 0) {
    struct stat st;
    if (stat(list, &st) == 0 && st.st_size > 0) remove_placeholders(list);
    unlink(list);
    unlink(lock);
  }
  return 0;
}
