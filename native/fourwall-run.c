/*
 * fourwall-run: `fourwall run` without starting Node. It hands the command, its directory and its
 * environment to the user's box daemon (src/box/daemon-run.ts) over the daemon's private socket,
 * passes the caller's stdin/stdout/stderr (SCM_RIGHTS), forwards signals and exits with the
 * command's status. The daemon plans and supervises the box exactly as the Node path does (proxy,
 * gate and reaper up before the command starts).
 *
 * When there is no daemon, when it declines (a flag or a case it does not take) or goes away before
 * anything ran, this execs the Node CLI: `run` behaves as it always did. A controlling terminal
 * means the gate may ask on it: that is the Node path's job, so it goes there at once.
 *
 * usage: fourwall-run STATE_DIR NODE CLI_JS [up] -- ARGS...    (ARGS: what followed `fourwall run`)
 * The daemon's socket is STATE_DIR/run-KEY.sock, KEY this build's (build_key): a client reaches only
 * a daemon of its own build (after an upgrade, or with two copies of fourwall on one machine).
 * With `up`: `fourwall up ARGS` the same way (the daemon plans and starts the persistent box; no
 * stdio to pass, nothing to forward: src/box/daemon-up.ts).
 * request: u32 length (little endian), then NUL-terminated items, each led by its kind:
 *   'V' protocol version, 'O' the operation (up; none: run), 'C' cwd, 'A' an argument, 'E' an environment entry
 * replies: a kind byte, a u32 length, the payload:
 *   'F' fall back to Node · 'S' send the stdio fds now · 'E' text for stderr · 'O' text for stdout · 'X' exit status
 * from the client after 'S': 'f' + its umask (u16) with SCM_RIGHTS {0,1,2}; then 'k' + a signal number byte.
 * Exit status: the command's (128+N when killed by signal N); 125 when the box could not be built.
 */
#define _GNU_SOURCE
#include <poll.h>
#include <signal.h>
#include <stdint.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>

#define FOURWALL_HELPER "fourwall run"
#include "common.h"

#define PROTOCOL "1"
#define ENV_FALLBACK "FOURWALL_RUN_NO_DAEMON"

static char **fallback_argv;

/*
 * This build's key, as src/core/build-key.ts computes it (the same files, in the same order): the
 * identity (device, inode, size, mtime) of the bundle and of the native helpers, FNV-1a-64 hashed.
 * Found from this program's own path (ROOT/native/build/fourwall-run); stat calls only, no reads.
 */
static const char *const build_files[] = {
    "dist/fourwall.js",           "native/build/fourwall-run",     "native/build/fourwall-pty",
    "native/build/fourwall-netns", "native/build/fourwall-drop",   "native/build/fourwall-overlay",
    "native/build/fourwall-pause", "native/build/fourwall-splice", "native/build/fourwall-enter",
    "native/build/fourwall-bridge", "native/build/fourwall-reaper",
};
static int build_key(char out[17]) {
  char root[PATH_MAX], file[PATH_MAX + 64], item[160];
  ssize_t n = readlink("/proc/self/exe", root, sizeof root - 1);
  if (n <= 0) return -1;
  root[n] = 0;
  for (int up = 0; up < 3; up++) {
    char *slash = strrchr(root, '/');
    if (!slash) return -1;
    *slash = 0;
  }
  uint64_t h = 0xcbf29ce484222325ULL;
  for (size_t i = 0; i < sizeof build_files / sizeof *build_files; i++) {
    struct stat st;
    snprintf(file, sizeof file, "%s/%s", root, build_files[i]);
    if (stat(file, &st) == 0)
      snprintf(item, sizeof item, "%llu:%llu:%lld:%lld.%ld;", (unsigned long long)st.st_dev,
               (unsigned long long)st.st_ino, (long long)st.st_size, (long long)st.st_mtim.tv_sec,
               (long)st.st_mtim.tv_nsec);
    else
      strcpy(item, "-;");
    for (const char *c = item; *c; c++) {
      h ^= (unsigned char)*c;
      h *= 0x100000001b3ULL;
    }
  }
  snprintf(out, 17, "%016llx", (unsigned long long)h);
  return 0;
}

/* The Node CLI, as the shim would have run it. `missing`: tell it no daemon answered, so it starts one. */
__attribute__((noreturn)) static void fall_back(int missing) {
  if (missing) setenv(ENV_FALLBACK, "1", 1);
  execvp(fallback_argv[0], fallback_argv);
  die("exec", fallback_argv[0]);
}

static int sigpipe_w = -1;
static void on_signal(int sig) {
  unsigned char b = (unsigned char)sig;
  int saved = errno;
  if (write(sigpipe_w, &b, 1) < 0) { /* full: the signal is already on its way */ }
  errno = saved;
}

struct buf { char *data; size_t len, cap; };
static void put(struct buf *b, char kind, const char *s) {
  size_t n = strlen(s) + 2;
  if (b->len + n > b->cap) {
    b->cap = (b->len + n) * 2;
    b->data = realloc(b->data, b->cap);
    if (!b->data) die("malloc", NULL);
  }
  b->data[b->len++] = kind;
  memcpy(b->data + b->len, s, n - 1);
  b->len += n - 1;
}

static int write_all(int fd, const void *p, size_t n) {
  const char *c = p;
  while (n > 0) {
    ssize_t w = write(fd, c, n);
    if (w < 0 && errno == EINTR) continue;
    if (w <= 0) return -1;
    c += w;
    n -= (size_t)w;
  }
  return 0;
}

static int read_all(int fd, void *p, size_t n) {
  char *c = p;
  while (n > 0) {
    ssize_t r = read(fd, c, n);
    if (r < 0 && errno == EINTR) continue;
    if (r <= 0) return -1;
    c += r;
    n -= (size_t)r;
  }
  return 0;
}

static int send_stdio(int sock) {
  int fds[3] = {0, 1, 2};
  mode_t mask = umask(0);
  umask(mask);
  /* 'f' and the caller's umask (the box's files are made with it, as on the Node path) */
  unsigned char bytes[3] = {'f', (unsigned char)(mask & 0xff), (unsigned char)((mask >> 8) & 0xff)};
  struct iovec iov = {.iov_base = bytes, .iov_len = 3};
  union { char buf[CMSG_SPACE(sizeof fds)]; struct cmsghdr align; } u;
  memset(&u, 0, sizeof u);
  struct msghdr msg = {.msg_iov = &iov, .msg_iovlen = 1, .msg_control = u.buf, .msg_controllen = sizeof u.buf};
  struct cmsghdr *c = CMSG_FIRSTHDR(&msg);
  c->cmsg_level = SOL_SOCKET;
  c->cmsg_type = SCM_RIGHTS;
  c->cmsg_len = CMSG_LEN(sizeof fds);
  memcpy(CMSG_DATA(c), fds, sizeof fds);
  ssize_t n;
  do n = sendmsg(sock, &msg, MSG_NOSIGNAL); while (n < 0 && errno == EINTR);
  return n == 3 ? 0 : -1;
}

int main(int argc, char **argv, char **envp) {
  int up = argc > 4 && strcmp(argv[4], "up") == 0;
  int dash = up ? 5 : 4;
  if (argc < dash + 1 || strcmp(argv[dash], "--") != 0) {
    fprintf(stderr, "usage: fourwall-run STATE_DIR NODE CLI_JS [up] -- ARGS...\n");
    return 125;
  }
  /* NODE CLI_JS run|up ARGS... */
  fallback_argv = calloc((size_t)argc, sizeof *fallback_argv);
  if (!fallback_argv) die("malloc", NULL);
  fallback_argv[0] = argv[2];
  fallback_argv[1] = argv[3];
  fallback_argv[2] = up ? "up" : "run";
  for (int i = dash + 1; i < argc; i++) fallback_argv[i - dash + 2] = argv[i];

  /* A controlling terminal: the gate asks there (the Node path's terminal approver). A persistent
   * box never asks on a terminal (the daemon has none), so `up` goes on. */
  int tty = up ? -1 : open("/dev/tty", O_RDWR | O_NOCTTY | O_CLOEXEC);
  if (tty >= 0) { close(tty); fall_back(0); }

  int sock = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (sock < 0) fall_back(0);
  struct sockaddr_un addr = {.sun_family = AF_UNIX};
  char key[17];
  if (build_key(key) < 0) fall_back(0);
  int len_path = snprintf(addr.sun_path, sizeof addr.sun_path, "%s/run-%s.sock", argv[1], key);
  if (len_path < 0 || (size_t)len_path >= sizeof addr.sun_path) fall_back(0);
  if (connect(sock, (struct sockaddr *)&addr, sizeof addr) < 0) fall_back(errno == ENOENT || errno == ECONNREFUSED);
  /* Only our own uid's daemon: its directory is 0700, and the peer's credentials say so too. */
  struct ucred cred;
  socklen_t len = sizeof cred;
  if (getsockopt(sock, SOL_SOCKET, SO_PEERCRED, &cred, &len) < 0) die("SO_PEERCRED", addr.sun_path);
  if (cred.uid != getuid()) {
    errno = EPERM;
    die("the daemon socket is not this user's", addr.sun_path);
  }

  char cwd[4096];
  if (!getcwd(cwd, sizeof cwd)) fall_back(0);
  struct buf b = {0};
  b.len = 4;
  b.cap = 0;
  b.data = NULL;
  put(&b, 'V', PROTOCOL);
  memset(b.data, 0, 4);
  if (up) put(&b, 'O', "up");
  put(&b, 'C', cwd);
  for (int i = dash + 1; i < argc; i++) put(&b, 'A', argv[i]);
  for (char **e = envp; *e; e++) put(&b, 'E', *e);
  uint32_t body = (uint32_t)(b.len - 4);
  for (int i = 0; i < 4; i++) b.data[i] = (char)((body >> (8 * i)) & 0xff);
  if (write_all(sock, b.data, b.len) < 0) fall_back(0);
  free(b.data);

  int pipefd[2];
  if (pipe2(pipefd, O_CLOEXEC | O_NONBLOCK) < 0) die("pipe", NULL);
  sigpipe_w = pipefd[1];
  static const int forwarded[] = {SIGINT, SIGTERM, SIGHUP, SIGQUIT, SIGUSR1, SIGUSR2, SIGWINCH};
  struct sigaction sa = {.sa_handler = on_signal, .sa_flags = SA_RESTART};
  sigemptyset(&sa.sa_mask);
  for (size_t i = 0; i < sizeof forwarded / sizeof *forwarded; i++) sigaction(forwarded[i], &sa, NULL);

  int sent = 0; /* once the fds are sent, the command may have run: never fall back after that */
  for (;;) {
    struct pollfd p[2] = {{.fd = sock, .events = POLLIN}, {.fd = pipefd[0], .events = POLLIN}};
    if (poll(p, 2, -1) < 0) {
      if (errno == EINTR) continue;
      die("poll", NULL);
    }
    if (p[1].revents & POLLIN) {
      unsigned char sigs[64];
      ssize_t n = read(pipefd[0], sigs, sizeof sigs);
      for (ssize_t i = 0; i < n && sent; i++) {
        unsigned char frame[2] = {'k', sigs[i]};
        if (write_all(sock, frame, 2) < 0) break;
      }
      /* before the box exists there is no command to signal: end as the Node path would */
      if (n > 0 && !sent && sigs[0] != SIGWINCH) return 128 + sigs[0];
    }
    if (!(p[0].revents & (POLLIN | POLLHUP | POLLERR))) continue;
    unsigned char head[5];
    if (read_all(sock, head, 5) < 0) {
      if (!sent) fall_back(0);
      fprintf(stderr, "fourwall: the box daemon went away; the box was ended\n");
      return 125;
    }
    uint32_t n = (uint32_t)head[1] | (uint32_t)head[2] << 8 | (uint32_t)head[3] << 16 | (uint32_t)head[4] << 24;
    if (n > (1u << 24)) { errno = EPROTO; die("reply", NULL); }
    char *payload = malloc(n + 1);
    if (!payload || read_all(sock, payload, n) < 0) {
      if (!sent) fall_back(0);
      fprintf(stderr, "fourwall: the box daemon went away; the box was ended\n");
      return 125;
    }
    payload[n] = 0;
    switch (head[0]) {
      case 'F': fall_back(0);
      case 'S':
        if (send_stdio(sock) < 0) fall_back(0);
        sent = 1;
        break;
      case 'E': (void)write_all(2, payload, n); break;
      case 'O': (void)write_all(1, payload, n); break;
      case 'X': return atoi(payload);
      default: errno = EPROTO; die("reply", NULL);
    }
    free(payload);
  }
}
