/*
 * fourwall-bridge: the first process of a box (namespaces, gVisor, Docker). It makes the plan's symlinks,
 * listens on 127.0.0.1:PORT (the box's proxy address), leaves a child behind that relays each
 * connection made there to the egress proxy's unix socket, and execs the command.
 *
 * Why not sh + socat (still the path of transparent egress, whose forwarders speak socat's PROXY:
 * mode): under gVisor's ptrace platform every exec and every mmap of a dynamic library is a round
 * trip through the sentry; sh, socat (15 shared libraries) and the wait for socat to listen cost
 * 100-250 ms per box there, and ~40-100 ms of a namespaces box on a busy host. This helper is
 * linked statically, listens before it forks (no polling: a connect made by the command is queued
 * at once) and is one exec.
 *
 * It decides nothing: it only reaches the one socket it is given, which the proxy guards; a
 * connection the proxy refuses is closed. The relay runs in one process (epoll, non-blocking,
 * half-close passed on), its stdio on /dev/null, in a session of its own (no terminal signals:
 * socat, started by sh with `&`, ignored Ctrl-C too); it ends with the box.
 *
 * usage: fourwall-bridge [--stderr FD] [--link TARGET LINKTO]... --listen PORT SOCKET [--ready FD]
 *                        -- COMMAND [ARGS...]
 *   --stderr FD: first of all, FD becomes fd 2 (fourwall's own stderr, while bwrap's is captured)
 *   --ready FD:  "ready" is written there once the listener is up, just before the exec; FD is
 *                closed then (neither the command nor the relay holds it)
 * Exit status: the command's; 125 (with a message) when a symlink or the listener cannot be made,
 * nothing runs then; 126/127 when the command cannot be executed / is not found.
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/un.h>
#include <unistd.h>

#define BUF (64 * 1024)

static void refuse(const char *wall, const char *what, const char *arg) {
  fprintf(stderr, "fourwall: the %s wall could not be built: %s%s%s: %s\n", wall, what, arg ? " " : "",
          arg ? arg : "", strerror(errno));
  exit(125);
}

/* One direction of a connection: bytes read from `from` wait in buf until written to the peer. */
struct half {
  int fd;
  struct conn *conn;
  char *buf;
  size_t len, off;
  int eof;   /* `fd` has no more to send */
  int shut;  /* the peer was told so (SHUT_WR) */
};

struct conn {
  struct half side[2]; /* side[0]: the box's client, side[1]: the proxy */
  int ep;
  int closed;
  struct conn *next_closed;
};

/*
 * Closes a connection's two fds now and frees it after the epoll batch: the batch may still hold
 * an event for its other side, which must find it (closed, skipped), not freed memory.
 */
static void drop(struct conn *c, struct conn **closed) {
  if (c->closed) return;
  for (int i = 0; i < 2; i++) close(c->side[i].fd);
  c->closed = 1;
  c->next_closed = *closed;
  *closed = c;
}

static void free_closed(struct conn *c) {
  while (c) {
    struct conn *next = c->next_closed;
    free(c->side[0].buf), free(c->side[1].buf), free(c);
    c = next;
  }
}

/* Interest of side i's fd: read while its buffer is empty, write while the peer's buffer holds bytes. */
static void rearm(struct conn *c) {
  for (int i = 0; i < 2; i++) {
    struct half *h = &c->side[i], *p = &c->side[1 - i];
    struct epoll_event ev = {.events = 0, .data.ptr = h};
    if (!h->eof && h->len == 0) ev.events |= EPOLLIN;
    if (p->len > p->off) ev.events |= EPOLLOUT;
    epoll_ctl(c->ep, EPOLL_CTL_MOD, h->fd, &ev);
  }
}

/* Returns 0 when the connection is over (both directions ended or an error). */
static int pump(struct half *h, unsigned events) {
  struct conn *c = h->conn;
  struct half *p = &c->side[h == &c->side[0] ? 1 : 0];
  if (events & EPOLLERR) return 0;
  if ((events & (EPOLLIN | EPOLLHUP)) && !h->eof && h->len == 0) {
    ssize_t n = read(h->fd, h->buf, BUF);
    if (n > 0) h->len = (size_t)n, h->off = 0;
    else if (n == 0) h->eof = 1;
    else if (errno != EAGAIN && errno != EINTR) return 0;
  }
  /* hung up both ways with nothing of its own left to pass on: no byte can reach it any more */
  if ((events & EPOLLHUP) && h->eof && h->len == 0) return 0;
  /* `p`'s buffered bytes go out on h->fd; h's own go out on p->fd when writable (tried at once) */
  struct half *dirs[2] = {h, p};
  for (int k = 0; k < 2; k++) {
    struct half *src = dirs[k], *dst = dirs[1 - k];
    while (src->len > src->off) {
      ssize_t n = send(dst->fd, src->buf + src->off, src->len - src->off, MSG_NOSIGNAL);
      if (n < 0) {
        if (errno == EAGAIN || errno == EINTR) break;
        return 0;
      }
      src->off += (size_t)n;
    }
    if (src->off == src->len) src->len = src->off = 0;
    if (src->eof && src->len == 0 && !src->shut) {
      shutdown(dst->fd, SHUT_WR);
      src->shut = 1;
    }
  }
  if (h->shut && p->shut) return 0;
  rearm(c);
  return 1;
}

static int connect_proxy(const char *path) {
  int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return -1;
  struct sockaddr_un addr = {.sun_family = AF_UNIX};
  strncpy(addr.sun_path, path, sizeof addr.sun_path - 1);
  if (connect(fd, (struct sockaddr *)&addr, sizeof addr) < 0 || fcntl(fd, F_SETFL, O_NONBLOCK) < 0) {
    close(fd);
    return -1;
  }
  return fd;
}

/* Closes every fd above 2 but `keep`: close_range where the kernel has it, else one by one. */
static void close_others(int keep) {
  if (keep > 3 && syscall(SYS_close_range, 3, keep - 1, 0) == 0 &&
      syscall(SYS_close_range, keep + 1, ~0U, 0) == 0)
    return;
  if (keep == 3 && syscall(SYS_close_range, 4, ~0U, 0) == 0) return;
  long max = sysconf(_SC_OPEN_MAX);
  for (int fd = 3; fd < (max > 0 && max < 65536 ? max : 1024); fd++)
    if (fd != keep) close(fd);
}

static void relay(int lfd, const char *proxy) {
  int ep = epoll_create1(EPOLL_CLOEXEC);
  if (ep < 0) _exit(1);
  struct epoll_event ev = {.events = EPOLLIN, .data.ptr = NULL};
  epoll_ctl(ep, EPOLL_CTL_ADD, lfd, &ev);
  struct epoll_event got[64];
  for (;;) {
    int n = epoll_wait(ep, got, 64, -1);
    if (n < 0) {
      if (errno == EINTR) continue;
      _exit(1);
    }
    struct conn *closed = NULL;
    for (int i = 0; i < n; i++) {
      struct half *h = got[i].data.ptr;
      if (h) {
        if (!h->conn->closed && !pump(h, got[i].events)) drop(h->conn, &closed);
        continue;
      }
      int cfd = accept4(lfd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
      if (cfd < 0) continue;
      int pfd = connect_proxy(proxy);
      struct conn *c = calloc(1, sizeof *c);
      char *b0 = malloc(BUF), *b1 = malloc(BUF);
      if (pfd < 0 || !c || !b0 || !b1) {
        close(cfd);
        if (pfd >= 0) close(pfd);
        free(c), free(b0), free(b1);
        continue;
      }
      c->ep = ep;
      c->side[0] = (struct half){.fd = cfd, .conn = c, .buf = b0};
      c->side[1] = (struct half){.fd = pfd, .conn = c, .buf = b1};
      for (int s = 0; s < 2; s++) {
        struct epoll_event e = {.events = EPOLLIN, .data.ptr = &c->side[s]};
        epoll_ctl(ep, EPOLL_CTL_ADD, c->side[s].fd, &e);
      }
    }
    free_closed(closed);
  }
}

int main(int argc, char **argv) {
  int i = 1, port = -1, ready = -1;
  const char *proxy = NULL;
  for (; i < argc && strcmp(argv[i], "--"); i++) {
    if (!strcmp(argv[i], "--stderr") && i + 1 < argc) {
      int fd = atoi(argv[++i]);
      if (fd > 2 && dup2(fd, 2) == 2) close(fd);
    } else if (!strcmp(argv[i], "--ready") && i + 1 < argc) {
      ready = atoi(argv[++i]);
    } else if (!strcmp(argv[i], "--link") && i + 2 < argc) {
      if (symlink(argv[i + 2], argv[i + 1]) < 0) refuse("filesystem", "cannot make the symlink", argv[i + 1]);
      i += 2;
    } else if (!strcmp(argv[i], "--listen") && i + 2 < argc) {
      port = atoi(argv[i + 1]);
      proxy = argv[i + 2];
      i += 2;
    } else {
      fprintf(stderr, "usage: fourwall-bridge [--stderr FD] [--link TARGET LINKTO]... --listen PORT SOCKET "
                      "[--ready FD] -- COMMAND [ARGS...]\n");
      return 125;
    }
  }
  if (i + 1 >= argc || port <= 0 || port > 65535 || strlen(proxy) >= sizeof((struct sockaddr_un){0}.sun_path)) {
    errno = EINVAL;
    refuse("egress", "the egress bridge did not start", "(bad arguments)");
  }
  char **command = argv + i + 1;

  int lfd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  int one = 1;
  struct sockaddr_in addr = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  if (lfd < 0 || setsockopt(lfd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one) < 0 ||
      bind(lfd, (struct sockaddr *)&addr, sizeof addr) < 0 || listen(lfd, 128) < 0 ||
      fcntl(lfd, F_SETFL, O_NONBLOCK) < 0)
    refuse("egress", "the egress bridge did not start", "(listen on 127.0.0.1)");

  /* Ctrl-C and Ctrl-\ are held back until the relay ignores them: one sent to the process group
   * right after the fork must not end the box's egress (the command gets its own after the fork) */
  sigset_t terminal, before;
  sigemptyset(&terminal);
  sigaddset(&terminal, SIGINT);
  sigaddset(&terminal, SIGQUIT);
  sigprocmask(SIG_BLOCK, &terminal, &before);
  pid_t parent = getpid();
  pid_t pid = fork();
  if (pid < 0) refuse("egress", "the egress bridge did not start", "(fork)");
  if (pid == 0) {
    /* off the box's terminal: a Ctrl-C meant for the command must not end the box's egress
     * (SIG_IGN also discards one that arrived while blocked) */
    signal(SIGINT, SIG_IGN);
    signal(SIGQUIT, SIG_IGN);
    signal(SIGPIPE, SIG_IGN);
    setsid();
    sigprocmask(SIG_SETMASK, &before, NULL);
    /* it ends with the command (in a box the box ends then too; run on its own, nothing stays) */
    if (prctl(PR_SET_PDEATHSIG, SIGKILL) < 0 || getppid() != parent) _exit(0);
    int null = open("/dev/null", O_RDWR);
    if (null < 0 || dup2(null, 0) < 0 || dup2(null, 1) < 0 || dup2(null, 2) < 0) _exit(1);
    if (null > 2) close(null);
    /* nothing else the box's first process holds (the ready pipe, a caller's connection) */
    close_others(lfd);
    relay(lfd, proxy);
  }
  sigprocmask(SIG_SETMASK, &before, NULL);
  /* the listener is close-on-exec: the command never holds it */
  if (ready > 2) {
    ssize_t w = write(ready, "ready\n", 6);
    (void)w; /* nobody reading is the launcher's concern (it sees the pipe close) */
    close(ready);
  }
  execvp(command[0], command);
  int code = errno == ENOENT ? 127 : 126;
  fprintf(stderr, "fourwall: %s: %s\n", command[0], strerror(errno));
  return code;
}
