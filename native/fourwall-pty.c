/*
 * fourwall-pty: starts a box (the rest of argv: a runtime's launcher) in a session of its own and,
 * when fourwall's stdin/stdout/stderr is a terminal, on a pty of its own that this process relays
 * to the caller's terminal (pty-relay.h). Composed as the first argv prefix of every runtime's
 * launcher by the supervisor; the box never holds the caller's terminal.
 *
 * usage: fourwall-pty [--control SOCKET] [--detach] [--caller-fds FD:STDERR_FD] -- PROGRAM [ARGS...]
 *   --control SOCKET  fourwall's unix socket: pause/resume box output around a prompt
 *   --detach          no relay even on a terminal: a terminal on 0/1/2 is replaced by /dev/null
 *                     (the microVM, whose command's stdio are ports fourwall relays itself)
 *   --caller-fds FD:STDERR_FD  the caller is fourwall-run, not the box daemon that spawned this:
 *                     FD is its connection, on which 'f' and its umask carry its stdin, stdout and
 *                     stderr (SCM_RIGHTS); they become fds 0, 1 and STDERR_FD (fourwall's stderr,
 *                     which the box takes back as its fd 2), FD is closed before anything else
 *                     runs, and the box gets the caller's umask
 * Without a terminal: setsid and exec, nothing stays between fourwall and the box.
 * Exit status: the child's (128+N when killed by signal N); 125 when it could not start it.
 *
 * Signals: fourwall delivers signals to the box's command itself (the supervisor), so the ones sent
 * to this process are not relayed (no double delivery). This process dies with fourwall
 * (PR_SET_PDEATHSIG): then it restores the caller's terminal and kills its child, so a SIGKILLed
 * fourwall leaves neither a raw terminal nor a box behind.
 */
#define _GNU_SOURCE
#include <stdio.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>

#define FOURWALL_HELPER "fourwall-pty"
#include "common.h"
#include "pty-relay.h"

static pid_t parent;

/* SIGTERM/SIGHUP from fourwall's death (or its process group): end only if fourwall is gone. */
static int on_signal(int sig, pid_t child) {
  (void)sig;
  (void)child;
  return getppid() != parent;
}

/* fourwall-run's stdio, received on `sock` (the daemon has stopped reading it): 0, 1 and `err`. */
static void take_caller_fds(int sock, int err) {
  /* the daemon's socket is private to its user; the peer's credentials must say the same */
  struct ucred cred;
  socklen_t len = sizeof cred;
  if (getsockopt(sock, SOL_SOCKET, SO_PEERCRED, &cred, &len) < 0) die("SO_PEERCRED", "the caller");
  if (cred.uid != getuid()) {
    errno = EPERM;
    die("the caller is another user", NULL);
  }
  unsigned char bytes[3];
  struct iovec iov = {.iov_base = bytes, .iov_len = 3};
  union { char buf[CMSG_SPACE(3 * sizeof(int))]; struct cmsghdr align; } u;
  struct msghdr msg = {.msg_iov = &iov, .msg_iovlen = 1, .msg_control = u.buf, .msg_controllen = sizeof u.buf};
  ssize_t n;
  do n = recvmsg(sock, &msg, MSG_CMSG_CLOEXEC); while (n < 0 && errno == EINTR);
  struct cmsghdr *c = n == 3 ? CMSG_FIRSTHDR(&msg) : NULL;
  if (!c || bytes[0] != 'f' || (msg.msg_flags & MSG_CTRUNC) || c->cmsg_level != SOL_SOCKET ||
      c->cmsg_type != SCM_RIGHTS || c->cmsg_len != CMSG_LEN(3 * sizeof(int))) {
    errno = EPROTO;
    die("receive the caller's stdio", NULL);
  }
  int fds[3];
  memcpy(fds, CMSG_DATA(c), sizeof fds);
  /* dup2 clears close-on-exec on the targets; the received originals keep it and are closed */
  if (dup2(fds[0], 0) < 0 || dup2(fds[1], 1) < 0 || dup2(fds[2], err) < 0) die("dup2", "the caller's stdio");
  for (int i = 0; i < 3; i++)
    if (fds[i] != 0 && fds[i] != 1 && fds[i] != err) close(fds[i]);
  close(sock);
  umask((mode_t)(bytes[1] | bytes[2] << 8) & 0777);
}

static int connect_control(const char *path) {
  int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) die("socket", NULL);
  struct sockaddr_un addr = {.sun_family = AF_UNIX};
  if (strlen(path) >= sizeof addr.sun_path) { errno = ENAMETOOLONG; die("control socket", path); }
  strcpy(addr.sun_path, path);
  if (connect(fd, (struct sockaddr *)&addr, sizeof addr) < 0) die("connect", path);
  return fd;
}

int main(int argc, char **argv) {
  const char *control = NULL;
  int detach = 0, i = 1, caller = -1, caller_err = -1;
  for (; i < argc && strcmp(argv[i], "--") != 0; i++) {
    if (!strcmp(argv[i], "--control") && i + 1 < argc) control = argv[++i];
    else if (!strcmp(argv[i], "--detach")) detach = 1;
    else if (!strcmp(argv[i], "--caller-fds") && i + 1 < argc) {
      char *colon = strchr(argv[++i], ':');
      if (!colon) { errno = EINVAL; die("--caller-fds FD:STDERR_FD", argv[i]); }
      caller = atoi(argv[i]);
      caller_err = atoi(colon + 1);
      if (caller < 3 || caller_err < 3) { errno = EINVAL; die("--caller-fds FD:STDERR_FD", argv[i]); }
    }
    else { errno = EINVAL; die("unknown option", argv[i]); }
  }
  if (i + 1 >= argc) {
    fprintf(stderr, "usage: fourwall-pty [--control SOCKET] [--detach] [--caller-fds FD:STDERR_FD] -- PROGRAM [ARGS...]\n");
    return 125;
  }
  char **command = &argv[i + 1];

  parent = getppid();
  if (prctl(PR_SET_PDEATHSIG, SIGTERM) < 0) die("prctl(PR_SET_PDEATHSIG)", NULL);
  if (getppid() != parent) return 125; /* fourwall died before we could watch it */

  if (caller >= 0) take_caller_fds(caller, caller_err);

  struct relay r;
  int opened = detach ? 0 : relay_open(&r);
  if (opened < 0) die("open a pty for the box", NULL);
  if (opened == 0) {
    /* No terminal to relay: a session of its own, and no terminal fd at all. */
    for (int fd = 0; fd < 3 && detach; fd++) {
      if (!isatty(fd)) continue;
      int null = open("/dev/null", O_RDWR);
      if (null < 0 || dup2(null, fd) < 0) die("open", "/dev/null");
      if (null > 2) close(null);
    }
    int null = open("/dev/null", O_RDWR);
    if (null < 0 || cover_ttys(null) < 0) die("cover terminal descriptors with", "/dev/null");
    close(null);
    /* a launcher spawned detached is already the leader of a session of its own: that is the goal */
    if (setsid() < 0 && getsid(0) != getpid()) die("setsid", NULL);
    execvp(command[0], command);
    die("exec", command[0]);
  }
  if (control) r.control = connect_control(control);

  pid_t child = fork();
  if (child < 0) die("fork", NULL);
  if (child == 0) {
    if (relay_child(&r) < 0) die("set up the box's terminal", r.slave);
    execvp(command[0], command);
    die("exec", command[0]);
  }
  static const int ends[] = {SIGTERM, SIGHUP, SIGINT, SIGQUIT};
  int status = relay_run(&r, child, ends, 4, on_signal);
  if (status < 0) return 125;
  if (WIFEXITED(status)) return WEXITSTATUS(status);
  if (WIFSIGNALED(status)) return 128 + WTERMSIG(status);
  return 125;
}
