/*
 * fourwall-enter: runs one command inside a running box (`fourwall exec NAME -- CMD`), as fast as
 * the kernel allows: no Node on this path.
 *
 * It reads the box's enter file (written by `fourwall up`, private to the box's owner), joins the
 * namespaces of the box's pid 1, becomes the box's uid, drops every capability, sets
 * no_new_privs, the box's rlimits and the box's seccomp filter, and execs the command with the
 * box's environment and working directory: the same walls as the box's own first process.
 * The parent stays outside to relay signals and the exit status and, when the caller is on a
 * terminal, the bytes between it and the command's own pty (pty-relay.h): the command never holds
 * the caller's terminal, and when it ends, everything it started ends with it (its own pid
 * namespace, nested in the box's: see enter_reaper).
 *
 * usage: fourwall-enter BOXDIR -- PROGRAM [ARGS...]
 *   BOXDIR/enter     lines: pid=N uid=N gid=N cwd=PATH rlimit=RESOURCE:VALUE cgroup=DIR ...
 *   BOXDIR/env       the environment, NUL-separated
 *   BOXDIR/seccomp   the BPF program (struct sock_filter[])
 *   BOXDIR/pause.bpf the gate's pause filter, when the enter file has pause=SOCKET (see install_pause)
 * Exit status: the command's (128+N when killed by signal N); 125 when it could not enter.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <linux/capability.h>
#include <linux/filter.h>
#include <linux/nsfs.h>
#include <sys/ioctl.h>
#include <linux/seccomp.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#define FOURWALL_HELPER "fourwall exec"
#include "common.h"
#include "pty-relay.h"

static char *slurp(const char *path, size_t *len) {
  int fd = open(path, O_RDONLY | O_CLOEXEC);
  if (fd < 0) die("open", path);
  struct stat st;
  if (fstat(fd, &st) < 0) die("stat", path);
  char *buf = malloc((size_t)st.st_size + 1);
  if (!buf) die("malloc", NULL);
  size_t got = 0;
  while (got < (size_t)st.st_size) {
    ssize_t n = read(fd, buf + got, (size_t)st.st_size - got);
    if (n <= 0) die("read", path);
    got += (size_t)n;
  }
  buf[got] = 0;
  close(fd);
  *len = got;
  return buf;
}

static int resource_of(const char *name) {
  if (!strcmp(name, "nproc")) return RLIMIT_NPROC;
  if (!strcmp(name, "data")) return RLIMIT_DATA;
  if (!strcmp(name, "fsize")) return RLIMIT_FSIZE;
  if (!strcmp(name, "nofile")) return RLIMIT_NOFILE;
  if (!strcmp(name, "core")) return RLIMIT_CORE;
  if (!strcmp(name, "cpu")) return RLIMIT_CPU;
  return -1;
}

static pid_t child_pid;
static void relay(int sig) {
  if (child_pid > 0) kill(child_pid, sig);
}

static int exit_code(int status) {
  if (status < 0) return 125;
  if (WIFEXITED(status)) return WEXITSTATUS(status);
  if (WIFSIGNALED(status)) return 128 + WTERMSIG(status);
  return 125;
}

/* From now on the signals we get (those a shell sends a job) go on to `pid`. */
static void relay_signals_to(pid_t pid) {
  child_pid = pid;
  struct sigaction sa = {0};
  sa.sa_handler = relay;
  sigemptyset(&sa.sa_mask);
  int relayed[] = {SIGINT, SIGTERM, SIGHUP, SIGQUIT, SIGUSR1, SIGUSR2};
  for (size_t i = 0; i < sizeof relayed / sizeof *relayed; i++) sigaction(relayed[i], &sa, NULL);
}

/* Passes the signals we get on to child_pid and returns its exit status when it ends. */
static int wait_relaying(pid_t pid) {
  relay_signals_to(pid);
  int status;
  while (waitpid(pid, &status, 0) < 0) {
    if (errno != EINTR) die("waitpid", NULL);
  }
  return exit_code(status);
}

/* The terminal relay's signal policy for `exec`: pass the signal on, keep relaying. */
static int pass_on(int sig, pid_t child) {
  kill(child, sig);
  return 0;
}

struct limit { int resource; rlim_t value; };

/*
 * The approval gate's pause (issue 12), as the box's own first command has it: a second filter
 * whose user-notification listener goes to the box's supervisor (native/fourwall-pause.c, in the
 * box daemon), so this command's destructive calls on pre-existing workdir files wait for the
 * answer. The socket is connected on the host before we join the box (it lives in the box's 0700
 * state dir, out of the box's reach); the listener goes over it with SCM_RIGHTS and the
 * supervisor's one-byte receipt is awaited (await_pause_receipt). Any failure: exit 125.
 */
static int pause_sock = -1;
static struct sock_fprog pause_prog;

static void connect_pause(const char *socket_path, const char *program_path) {
  size_t len;
  char *bpf = slurp(program_path, &len);
  if (len == 0 || len % sizeof(struct sock_filter) != 0) { errno = EINVAL; die("bad pause program", program_path); }
  pause_prog.len = (unsigned short)(len / sizeof(struct sock_filter));
  pause_prog.filter = (struct sock_filter *)bpf;
  pause_sock = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  struct sockaddr_un addr = {.sun_family = AF_UNIX};
  if (pause_sock < 0 || strlen(socket_path) >= sizeof addr.sun_path) die("approval gate: the pause socket", socket_path);
  strcpy(addr.sun_path, socket_path);
  if (connect(pause_sock, (struct sockaddr *)&addr, sizeof addr) < 0)
    die("approval gate: the box's pause supervisor does not answer (fourwall down NAME; fourwall up again)", socket_path);
}

#ifndef SECCOMP_FILTER_FLAG_WAIT_KILLABLE_RECV
#define SECCOMP_FILTER_FLAG_WAIT_KILLABLE_RECV (1UL << 5)
#endif

__attribute__((unused)) static void install_pause(void) {
  if (pause_sock < 0) return;
  long listener = syscall(SYS_seccomp, SECCOMP_SET_MODE_FILTER,
                          SECCOMP_FILTER_FLAG_NEW_LISTENER | SECCOMP_FILTER_FLAG_WAIT_KILLABLE_RECV, &pause_prog);
  if (listener < 0 && errno == EINVAL)
    listener = syscall(SYS_seccomp, SECCOMP_SET_MODE_FILTER, SECCOMP_FILTER_FLAG_NEW_LISTENER, &pause_prog);
  if (listener < 0) die("approval gate: install the pause filter", NULL);
  int lfd = (int)listener;
  if (send_one_fd(pause_sock, lfd, 'L') < 0) die("approval gate: hand the pause listener to the supervisor", NULL);
  close(lfd); /* the message in flight holds the listener: no listener, and paused calls fail (ENOSYS) */
}

/*
 * The supervisor's receipt, awaited while the command already starts (the round trip is off the
 * command's path; until the supervisor holds the listener, a paused call just waits). No receipt:
 * the command is killed and exec exits 125 — and a call it made meanwhile failed (ENOSYS), as the
 * listener died unreceived.
 */
__attribute__((unused)) static void await_pause_receipt(pid_t command) {
  if (pause_sock < 0) return;
  char byte = 0;
  ssize_t n;
  while ((n = read(pause_sock, &byte, 1)) < 0 && errno == EINTR) {}
  close(pause_sock);
  pause_sock = -1;
  if (n == 1 && byte == 'K') return;
  kill(command, SIGKILL);
  errno = EPROTO;
  die("approval gate: the pause supervisor refused this command", NULL);
}

/* The box's walls on this process: its uid, no capability, no_new_privs, rlimits, cwd, seccomp. */
static void become_box(unsigned uid, unsigned gid, struct limit *limits, int nlimits, const char *cwd,
                       struct sock_fprog *prog) {
  if (setgroups(0, NULL) < 0 && errno != EPERM) die("setgroups", NULL);
  if (setresgid(gid, gid, gid) < 0) die("setresgid", NULL);
  if (setresuid(uid, uid, uid) < 0) die("setresuid", NULL);
  for (int cap = 0; cap <= 63; cap++) prctl(PR_CAPBSET_DROP, cap, 0, 0, 0);
  struct __user_cap_header_struct hdr = {.version = _LINUX_CAPABILITY_VERSION_3, .pid = 0};
  struct __user_cap_data_struct data[2];
  memset(data, 0, sizeof data);
  if (syscall(SYS_capset, &hdr, data) < 0) die("capset", NULL);
  if (prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_CLEAR_ALL, 0, 0, 0) < 0) die("clear ambient capabilities", NULL);
  if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) < 0) die("no_new_privs", NULL);
  for (int i = 0; i < nlimits; i++) {
    struct rlimit rl = {limits[i].value, limits[i].value};
    if (setrlimit(limits[i].resource, &rl) < 0) die("setrlimit", NULL);
  }
  if (chdir(cwd) < 0) die("chdir", cwd);
  if (prctl(PR_SET_SECCOMP, SECCOMP_MODE_FILTER, prog, 0, 0) < 0) die("seccomp", NULL);
#ifndef FOURWALL_UNSAFE_NO_PAUSE /* tests only: an exec without the pause, to show the test sees it */
  install_pause();
#endif
}

/*
 * Pid 1 of the command's own pid namespace: a session of its own (the box's pty as its
 * controlling terminal, when there is one), the box's walls on itself, then the command as its
 * child in the foreground; it waits, passes signals on, and ends with the command's status —
 * which ends every process the command left behind.
 */
__attribute__((noreturn)) static void enter_reaper(struct relay *r, unsigned uid, unsigned gid, struct limit *limits,
                                                   int nlimits, const char *cwd, struct sock_fprog *prog,
                                                   char **command, char **envp) {
  if (prctl(PR_SET_PDEATHSIG, SIGKILL) < 0) die("prctl(PR_SET_PDEATHSIG)", NULL);
  if (relay_child(r) < 0) die("set up the command's terminal", r->slave);
  become_box(uid, gid, limits, nlimits, cwd, prog);
  pid_t command_pid = fork();
  if (command_pid < 0) die("fork", NULL);
  if (command_pid == 0) {
    /* its own process group, in the foreground of its terminal: Ctrl-C and Ctrl-Z typed on the
     * caller's terminal reach the command (and what it started), not this reaper */
    setpgid(0, 0);
    if (r->master >= 0) {
      sigset_t ttou, old;
      sigemptyset(&ttou);
      sigaddset(&ttou, SIGTTOU);
      sigprocmask(SIG_BLOCK, &ttou, &old);
      tcsetpgrp(r->tty[0] ? 0 : r->tty[1] ? 1 : 2, getpid());
      sigprocmask(SIG_SETMASK, &old, NULL);
    }
    execvpe(command[0], command, envp);
    fprintf(stderr, "fourwall exec: %s: %s\n", command[0], strerror(errno));
    _exit(errno == ENOENT ? 127 : 126);
  }
  /* pass signals on; reap every orphan the command leaves (pid 1), until the command itself ends */
  relay_signals_to(command_pid);
#ifndef FOURWALL_UNSAFE_NO_PAUSE
  await_pause_receipt(command_pid);
#endif
  for (;;) {
    int status;
    pid_t done = waitpid(-1, &status, 0);
    if (done == command_pid) _exit(exit_code(status));
    if (done < 0 && errno != EINTR) _exit(125);
  }
}

int main(int argc, char **argv) {
  cloexec_from(3); /* the command gets stdin, stdout, stderr: nothing else the caller held */
  if (argc < 4 || strcmp(argv[2], "--") != 0) {
    fprintf(stderr, "usage: fourwall-enter BOXDIR -- PROGRAM [ARGS...]\n");
    return 125;
  }
  char path[4096];
  size_t len;
  snprintf(path, sizeof path, "%s/enter", argv[1]);
  char *conf = slurp(path, &len);
  const char *pause_socket = NULL;
  long pid = 0;
  unsigned uid = 0, gid = 0;
  const char *cwd = "/";
  struct limit limits[16];
  int nlimits = 0;
  for (char *line = strtok(conf, "\n"); line; line = strtok(NULL, "\n")) {
    if (!strncmp(line, "pid=", 4)) pid = strtol(line + 4, NULL, 10);
    else if (!strncmp(line, "uid=", 4)) uid = (unsigned)strtoul(line + 4, NULL, 10);
    else if (!strncmp(line, "gid=", 4)) gid = (unsigned)strtoul(line + 4, NULL, 10);
    else if (!strncmp(line, "cwd=", 4)) cwd = line + 4;
    else if (!strncmp(line, "pause=", 6)) pause_socket = line + 6;
    else if (!strncmp(line, "cgroup=", 7)) {
      /* join the box's cgroup (root mode) so its caps count this command too */
      char procs[4096], self[32];
      snprintf(procs, sizeof procs, "%s/cgroup.procs", line + 7);
      snprintf(self, sizeof self, "%d\n", getpid());
      int fd = open(procs, O_WRONLY | O_CLOEXEC);
      if (fd < 0 || write(fd, self, strlen(self)) < 0) die("join cgroup", procs);
      close(fd);
    }
    else if (!strncmp(line, "rlimit=", 7) && nlimits < 16) {
      char *colon = strchr(line + 7, ':');
      if (!colon) continue;
      *colon = 0;
      int r = resource_of(line + 7);
      if (r < 0) { errno = EINVAL; die("unknown rlimit", line + 7); }
      limits[nlimits].resource = r;
      limits[nlimits].value = (rlim_t)strtoull(colon + 1, NULL, 10);
      nlimits++;
    }
  }
  if (pid <= 1 || uid == 0) { errno = EINVAL; die("bad enter file", path); }
  if (pause_socket) {
    snprintf(path, sizeof path, "%s/pause.bpf", argv[1]);
    connect_pause(pause_socket, path);
  }

  snprintf(path, sizeof path, "%s/env", argv[1]);
  size_t envlen;
  char *envbuf = slurp(path, &envlen);
  int nenv = 0;
  for (size_t i = 0; i < envlen; i++) if (envbuf[i] == 0) nenv++;
  char **envp = calloc((size_t)nenv + 2, sizeof *envp);
  int e = 0;
  for (size_t i = 0; i < envlen; i += strlen(envbuf + i) + 1) envp[e++] = envbuf + i;
  envp[e] = NULL;

  snprintf(path, sizeof path, "%s/seccomp", argv[1]);
  size_t bpflen;
  char *bpf = slurp(path, &bpflen);
  if (bpflen == 0 || bpflen % sizeof(struct sock_filter) != 0) { errno = EINVAL; die("bad seccomp program", path); }
  struct sock_fprog prog = {.len = (unsigned short)(bpflen / sizeof(struct sock_filter)), .filter = (struct sock_filter *)bpf};

  /* Open every namespace first (pid 1 must not change under us). bwrap's --disable-userns puts
   * the box in a nested user namespace, while its mount, pid, net... namespaces belong to the
   * outer one: join the owner of the mount namespace first (NS_GET_USERNS), then the others,
   * then the box's own user namespace, so the command ends exactly where the box's processes are. */
  static const char *kinds[] = {"mnt", "pid", "net", "ipc", "uts", "cgroup", "user"};
  int fds[7];
  for (int i = 0; i < 7; i++) {
    snprintf(path, sizeof path, "/proc/%ld/ns/%s", pid, kinds[i]);
    fds[i] = open(path, O_RDONLY | O_CLOEXEC);
    if (fds[i] < 0) die("open (is the box running?)", path);
  }
  int owner = ioctl(fds[0], NS_GET_USERNS);
  if (owner < 0) die("NS_GET_USERNS", NULL);
  if (setns(owner, CLONE_NEWUSER) < 0) die("setns", "user (owner)");
  close(owner);
  for (int i = 0; i < 7; i++) {
    struct stat mine, target;
    snprintf(path, sizeof path, "/proc/self/ns/%s", kinds[i]);
    /* joining the user namespace we are already in is EINVAL: skip it (no nesting) */
    if (!strcmp(kinds[i], "user") && stat(path, &mine) == 0 && fstat(fds[i], &target) == 0 && mine.st_ino == target.st_ino) {
      close(fds[i]);
      continue;
    }
    if (setns(fds[i], 0) < 0) die("setns", kinds[i]);
    close(fds[i]);
  }

#ifdef FOURWALL_UNSAFE_SHARED_TERMINAL
  /* Tests only (test/integration/terminal.test.ts builds this variant to show its test catches
   * the hole): the command shares the caller's session and terminal and nothing ends what it
   * started — exec as it was before the box had a terminal of its own. */
  child_pid = fork();
  if (child_pid < 0) die("fork", NULL);
  if (child_pid == 0) {
    if (prctl(PR_SET_PDEATHSIG, SIGKILL) < 0) die("prctl(PR_SET_PDEATHSIG)", NULL);
    become_box(uid, gid, limits, nlimits, cwd, &prog);
    execvpe(argv[3], &argv[3], envp);
    _exit(127);
  }
  return wait_relaying(child_pid);
#endif
  /* The box's own terminal (pty-relay.h): a pty of the box's (its devpts: we are in its mount
   * namespace) when the caller is on a terminal; nothing of the caller's terminal goes in. */
  struct relay r;
  int tty = relay_open(&r);
  if (tty < 0) die("open a pty for the command", NULL);

  child_pid = fork(); /* the box's pid namespace applies to children */
  if (child_pid < 0) die("fork", NULL);
  if (child_pid == 0) {
    /* A pid namespace of this command's own, nested in the box's: when the command ends, its
     * first process (the reaper below) ends, and the kernel kills everything the command started
     * — nothing outlives `exec`, and nothing can leave (no setns/unshare under the filter). The
     * box's other processes are untouched. unshare(CLONE_NEWPID) applies to the next child, hence
     * this intermediate process, which only waits and passes signals on. */
    if (prctl(PR_SET_PDEATHSIG, SIGKILL) < 0) die("prctl(PR_SET_PDEATHSIG)", NULL);
    if (unshare(CLONE_NEWPID) < 0) die("unshare", "pid (the command's own)");
    pid_t reaper = fork();
    if (reaper < 0) die("fork", NULL);
    if (reaper == 0) enter_reaper(&r, uid, gid, limits, nlimits, cwd, &prog, &argv[3], envp);
    if (pause_sock >= 0) close(pause_sock); /* the reaper's to hand over */
    if (tty > 0) close(r.master);
    /* this process waits in the box's pid namespace: it keeps no fd of the caller's terminal */
    for (int fd = 0; fd < 3; fd++) {
      if (!r.tty[fd]) continue;
      int null = open("/dev/null", O_RDWR);
      if (null < 0 || dup2(null, fd) < 0) die("open", "/dev/null");
      if (null > 2) close(null);
    }
    return wait_relaying(reaper);
  }
  if (pause_sock >= 0) close(pause_sock);
  if (tty == 0) return wait_relaying(child_pid);
  static const int relayed[] = {SIGINT, SIGTERM, SIGHUP, SIGQUIT, SIGUSR1, SIGUSR2};
  int status = relay_run(&r, child_pid, relayed, 6, pass_on);
  return exit_code(status);
}
