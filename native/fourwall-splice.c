/*
 * fourwall-splice: the egress proxy's bulk data path. Once a tunnel (CONNECT or SOCKS) has been
 * authorized, its SNI checked, and it has carried enough bytes to count as a bulk transfer, the
 * proxy (Node) hands both of its sockets to this helper, which moves the bytes in the kernel with
 * splice(2) (socket -> pipe -> socket, no copy through user space) until both directions have ended.
 * It never looks at the bytes and never opens a connection of its own: every decision was already
 * made by the proxy, which only hands over sockets it has vetted.
 *
 * It talks to the proxy over the Node IPC channel on fd 3 (JSON lines; a socket arrives as
 * {"cmd":"NODE_HANDLE",...,"msg":{"id":N,"side":"c"|"u"}} with the descriptor attached, and is
 * acknowledged with {"cmd":"NODE_HANDLE_ACK"}). When a tunnel ends it reports
 * {"t":"closed","id":N,"up":BYTES,"down":BYTES,"error":"..."} (up: client to upstream). A line
 * {"t":"shutdown"}, or the channel closing (the proxy is gone, even by SIGKILL), ends every tunnel
 * and the helper. A tunnel with no traffic for IDLE_MS milliseconds is closed ("idle-timeout").
 *
 * usage: fourwall-splice IDLE_MS      (started by the proxy with stdio [ignore, ignore, inherit, ipc])
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <time.h>
#include <unistd.h>

#define IPC 3
#define PIPE_WANT (1 << 20)

struct tunnel;

/* One direction: bytes from `in` go through the pipe to `out`. */
struct flow {
  int in, out;
  int pipe_r, pipe_w;
  size_t queued, cap;
  uint64_t bytes;
  int eof, shut;
};

/* What epoll reports on: one of the tunnel's two sockets. */
struct end {
  struct tunnel *t;
};

struct tunnel {
  unsigned long id;
  int client, upstream; /* -1 until the proxy has sent it */
  struct flow up, down; /* up: client -> upstream */
  struct end ec, eu;
  long long last;
  int started;
  struct tunnel *next;
};

static struct tunnel *tunnels;
static int ep;
static long long idle_ms;

static long long now_ms(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* Writes a whole line to the proxy (the channel is non-blocking: wait for room when full). */
static void say(const char *line) {
  size_t len = strlen(line), done = 0;
  while (done < len) {
    ssize_t n = write(IPC, line + done, len - done);
    if (n > 0) {
      done += (size_t)n;
      continue;
    }
    if (n < 0 && errno == EINTR) continue;
    if (n < 0 && errno == EAGAIN) {
      struct timespec ts = {0, 1000000};
      nanosleep(&ts, NULL);
      continue;
    }
    _exit(0); /* the proxy is gone */
  }
}

static struct tunnel *find(unsigned long id, int create) {
  for (struct tunnel *t = tunnels; t; t = t->next)
    if (t->id == id) return t;
  if (!create) return NULL;
  struct tunnel *t = calloc(1, sizeof *t);
  if (!t) _exit(1);
  t->id = id;
  t->client = t->upstream = -1;
  t->up.pipe_r = t->up.pipe_w = t->down.pipe_r = t->down.pipe_w = -1;
  t->next = tunnels;
  tunnels = t;
  return t;
}

static void close_tunnel(struct tunnel *t, const char *error) {
  char line[256];
  if (error)
    snprintf(line, sizeof line, "{\"t\":\"closed\",\"id\":%lu,\"up\":%llu,\"down\":%llu,\"error\":\"%s\"}\n", t->id,
             (unsigned long long)t->up.bytes, (unsigned long long)t->down.bytes, error);
  else
    snprintf(line, sizeof line, "{\"t\":\"closed\",\"id\":%lu,\"up\":%llu,\"down\":%llu}\n", t->id,
             (unsigned long long)t->up.bytes, (unsigned long long)t->down.bytes);
  int fds[] = {t->client, t->upstream, t->up.pipe_r, t->up.pipe_w, t->down.pipe_r, t->down.pipe_w};
  for (size_t i = 0; i < sizeof fds / sizeof *fds; i++)
    if (fds[i] >= 0) close(fds[i]); /* closing removes them from epoll too */
  for (struct tunnel **p = &tunnels; *p; p = &(*p)->next) {
    if (*p == t) {
      *p = t->next;
      break;
    }
  }
  free(t);
  say(line);
}

/* Resets and broken pipes are how peers end connections; anything else is worth reporting. */
static const char *failure(int err) {
  return err == ECONNRESET || err == EPIPE ? NULL : "upstream-error";
}

/* Moves what can move in one direction now; returns -1 (and sets *err) on a hard error. */
static int pump(struct flow *f, int *moved, const char **err) {
  for (;;) {
    int progress = 0;
    if (!f->eof && f->queued < f->cap) {
      ssize_t n = splice(f->in, NULL, f->pipe_w, NULL, f->cap - f->queued, SPLICE_F_MOVE | SPLICE_F_NONBLOCK);
      if (n > 0) {
        f->queued += (size_t)n;
        f->bytes += (uint64_t)n;
        progress = 1;
      } else if (n == 0) {
        f->eof = 1;
        progress = 1;
      } else if (errno != EAGAIN && errno != EINTR) {
        *err = failure(errno);
        return -1;
      }
    }
    if (f->queued > 0) {
      ssize_t n = splice(f->pipe_r, NULL, f->out, NULL, f->queued, SPLICE_F_MOVE | SPLICE_F_NONBLOCK);
      if (n > 0) {
        f->queued -= (size_t)n;
        progress = 1;
      } else if (n < 0 && errno != EAGAIN && errno != EINTR) {
        *err = failure(errno);
        return -1;
      }
    }
    if (f->eof && f->queued == 0 && !f->shut) {
      shutdown(f->out, SHUT_WR); /* half-close, as the Node path does */
      f->shut = 1;
    }
    if (!progress) return 0;
    *moved = 1;
  }
}

static void run(struct tunnel *t) {
  int moved = 0;
  const char *err = NULL;
  if (pump(&t->up, &moved, &err) < 0 || pump(&t->down, &moved, &err) < 0) {
    close_tunnel(t, err);
    return;
  }
  if (moved) t->last = now_ms();
  if (t->up.shut && t->down.shut) close_tunnel(t, NULL);
}

static int open_pipe(struct flow *f) {
  int p[2];
  if (pipe2(p, O_NONBLOCK | O_CLOEXEC) < 0) return -1;
  f->pipe_r = p[0];
  f->pipe_w = p[1];
  /* A bigger pipe means fewer splices per megabyte; the default (64 KiB) when the host says no. */
  int cap = fcntl(p[1], F_SETPIPE_SZ, PIPE_WANT);
  if (cap < 0) cap = fcntl(p[1], F_GETPIPE_SZ);
  f->cap = cap > 0 ? (size_t)cap : 65536;
  return 0;
}

static void start(struct tunnel *t) {
  t->started = 1;
  t->last = now_ms();
  for (int i = 0; i < 2; i++) {
    int fd = i ? t->upstream : t->client;
    int fl = fcntl(fd, F_GETFL);
    fcntl(fd, F_SETFL, fl | O_NONBLOCK);
  }
  if (open_pipe(&t->up) < 0 || open_pipe(&t->down) < 0) {
    close_tunnel(t, "splice-failed");
    return;
  }
  t->up.in = t->down.out = t->client;
  t->up.out = t->down.in = t->upstream;
  t->ec.t = t->eu.t = t;
  struct epoll_event ev = {.events = EPOLLIN | EPOLLOUT | EPOLLRDHUP | EPOLLET};
  ev.data.ptr = &t->ec;
  if (epoll_ctl(ep, EPOLL_CTL_ADD, t->client, &ev) < 0) {
    close_tunnel(t, "splice-failed");
    return;
  }
  ev.data.ptr = &t->eu;
  if (epoll_ctl(ep, EPOLL_CTL_ADD, t->upstream, &ev) < 0) {
    close_tunnel(t, "splice-failed");
    return;
  }
  run(t); /* bytes may already be waiting */
}

static void shutdown_all(void) {
  while (tunnels) close_tunnel(tunnels, "proxy-closed");
  exit(0);
}

/* One line from the proxy; `fd` is the descriptor that came with it, if any. */
static void handle_line(char *line, int *fds, int *nfds) {
  if (strstr(line, "\"cmd\":\"NODE_HANDLE\"")) {
    int fd = -1;
    if (*nfds > 0) {
      fd = fds[0];
      memmove(fds, fds + 1, (size_t)(*nfds - 1) * sizeof *fds);
      (*nfds)--;
    }
    char *id = strstr(line, "\"id\":");
    char *side = strstr(line, "\"side\":\"");
    say("{\"cmd\":\"NODE_HANDLE_ACK\"}\n");
    if (fd < 0) return;
    if (!id || !side) {
      close(fd);
      return;
    }
    struct tunnel *t = find(strtoul(id + 5, NULL, 10), 1);
    if (side[8] == 'c' && t->client < 0) t->client = fd;
    else if (side[8] == 'u' && t->upstream < 0) t->upstream = fd;
    else close(fd);
    if (!t->started && t->client >= 0 && t->upstream >= 0) start(t);
  } else if (strstr(line, "\"t\":\"shutdown\"")) {
    shutdown_all();
  }
}

static void read_channel(void) {
  static char buf[65536];
  static size_t have;
  static int fds[64];
  static int nfds;
  for (;;) {
    char cbuf[CMSG_SPACE(sizeof(int) * 8)];
    struct iovec iov = {buf + have, sizeof buf - have - 1};
    struct msghdr msg = {.msg_iov = &iov, .msg_iovlen = 1, .msg_control = cbuf, .msg_controllen = sizeof cbuf};
    ssize_t n = recvmsg(IPC, &msg, MSG_CMSG_CLOEXEC);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0 && errno == EAGAIN) return;
    if (n <= 0) shutdown_all(); /* the proxy is gone */
    for (struct cmsghdr *c = CMSG_FIRSTHDR(&msg); c; c = CMSG_NXTHDR(&msg, c)) {
      if (c->cmsg_level != SOL_SOCKET || c->cmsg_type != SCM_RIGHTS) continue;
      int count = (int)((c->cmsg_len - CMSG_LEN(0)) / sizeof(int));
      for (int i = 0; i < count; i++) {
        int fd;
        memcpy(&fd, CMSG_DATA(c) + i * sizeof(int), sizeof fd);
        if (nfds < 64) fds[nfds++] = fd;
        else close(fd);
      }
    }
    have += (size_t)n;
    buf[have] = 0;
    char *start = buf, *nl;
    while ((nl = memchr(start, '\n', have - (size_t)(start - buf)))) {
      *nl = 0;
      handle_line(start, fds, &nfds);
      start = nl + 1;
    }
    have -= (size_t)(start - buf);
    memmove(buf, start, have);
    if (have >= sizeof buf - 1) shutdown_all(); /* no line is this long: not our proxy */
  }
}

int main(int argc, char **argv) {
  if (argc != 2) {
    fprintf(stderr, "usage: fourwall-splice IDLE_MS\n");
    return 2;
  }
  idle_ms = atoll(argv[1]);
  if (idle_ms <= 0) idle_ms = 300000;
  signal(SIGPIPE, SIG_IGN);
  signal(SIGINT, SIG_IGN); /* a Ctrl-C for the agent is not for the proxy's data path */
  fcntl(IPC, F_SETFL, fcntl(IPC, F_GETFL) | O_NONBLOCK);
  ep = epoll_create1(EPOLL_CLOEXEC);
  if (ep < 0) return 1;
  struct epoll_event ev = {.events = EPOLLIN | EPOLLRDHUP};
  ev.data.ptr = NULL;
  if (epoll_ctl(ep, EPOLL_CTL_ADD, IPC, &ev) < 0) return 1;
  long long sweep_every = idle_ms / 4 < 20 ? 20 : idle_ms / 4 > 5000 ? 5000 : idle_ms / 4;
  long long next_sweep = now_ms() + sweep_every;
  struct epoll_event events[256];
  for (;;) {
    long long wait = next_sweep - now_ms();
    int n = epoll_wait(ep, events, 256, wait < 0 ? 0 : (int)wait);
    if (n < 0 && errno != EINTR) return 1;
    for (int i = 0; i < n; i++) {
      if (events[i].data.ptr == NULL) {
        read_channel();
        continue;
      }
      struct tunnel *t = ((struct end *)events[i].data.ptr)->t;
      /* a tunnel closed earlier in this batch may still have an event queued: look it up first */
      int live = 0;
      for (struct tunnel *x = tunnels; x; x = x->next)
        if (x == t) live = 1;
      if (live) run(t);
    }
    long long now = now_ms();
    if (now >= next_sweep) {
      next_sweep = now + sweep_every;
      for (struct tunnel *t = tunnels, *next; t; t = next) {
        next = t->next;
        if (t->started && now - t->last >= idle_ms) close_tunnel(t, "idle-timeout");
      }
    }
  }
}
