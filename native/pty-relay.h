/*
 * The box's own terminal, shared by fourwall-pty (`run`, every runtime) and fourwall-enter (`exec`).
 *
 * Why: a box that inherits the caller's terminal can read the caller's keystrokes (any process
 * holding a tty fd can read it, foreground or not), take the foreground (TIOCSPGRP, same session)
 * and outlive the command doing so. So the box never gets the caller's terminal: it gets a new
 * session (setsid) and, when fourwall's stdin/stdout/stderr is a terminal, a pty of its own whose
 * master stays here. This process relays bytes between the two; when it ends, the box's pty has no
 * reader and no writer on the caller's side, whatever the box left running.
 *
 *   relay_open()   before fork: which of 0/1/2 are terminals, a new pty with the caller's mode
 *   relay_child()  in the child: setsid, the slave as controlling terminal on those fds
 *   relay_run()    in the parent: raw mode on the caller's terminal, copy both ways, window size,
 *                  pause/resume on the control socket, restore the caller's mode; the child's status
 *
 * Control socket (optional, from fourwall): 'p' pauses (stop drawing box output, stop reading keys,
 * drop type-ahead; answered 'P' once nothing more will be drawn), 'r' resumes (answered 'R'). While
 * paused, box output is held in the pty (the box blocks when it is full) and released on resume.
 * EOF on the control socket resumes: fourwall gone must not freeze the box's output forever.
 */
#ifndef FOURWALL_PTY_RELAY_H
#define FOURWALL_PTY_RELAY_H

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/wait.h>
#include <termios.h>
#include <unistd.h>

struct relay {
  int tty[3];      /* which of fds 0, 1, 2 are terminals (they get the slave) */
  int in;          /* the caller's terminal we read keys from, or -1 */
  int out;         /* the caller's terminal we draw on, or -1 */
  int ref;         /* a caller's terminal for mode and window size */
  int master;
  int control;     /* socket from fourwall, or -1 */
  char slave[128];
  struct termios saved; /* the caller's mode, restored on every exit path */
  int raw;              /* raw mode is set on `in` */
};

static volatile sig_atomic_t relay_sigpipe[2] = {-1, -1};
static void relay_on_signal(int sig) {
  int saved = errno;
  unsigned char c = (unsigned char)sig;
  if (relay_sigpipe[1] >= 0 && write(relay_sigpipe[1], &c, 1) < 0) {}
  errno = saved;
}

/* 0: no terminal on 0/1/2 (setsid only, nothing to relay); 1: a pty is open; -1: error (errno). */
static int relay_open(struct relay *r) {
  memset(r, 0, sizeof *r);
  r->in = r->out = r->ref = r->master = r->control = -1;
  for (int fd = 0; fd < 3; fd++) r->tty[fd] = isatty(fd);
  if (!r->tty[0] && !r->tty[1] && !r->tty[2]) return 0;
  r->ref = r->tty[0] ? 0 : r->tty[1] ? 1 : 2;
  r->in = r->tty[0] ? 0 : -1;
  /* box output goes where it would have gone: stdout's terminal, else stderr's, else (only stdin
   * is a terminal: the echo of what is typed) the terminal we read from */
  r->out = r->tty[1] ? 1 : r->tty[2] ? 2 : 0;
  if (tcgetattr(r->ref, &r->saved) < 0) return -1;
  r->master = posix_openpt(O_RDWR | O_NOCTTY | O_CLOEXEC);
  if (r->master < 0 || grantpt(r->master) < 0 || unlockpt(r->master) < 0) return -1;
  if (ptsname_r(r->master, r->slave, sizeof r->slave) != 0) return -1;
  return 1;
}

/* In the child, before exec: a session of its own whose controlling terminal is the box's pty. */
/*
 * Descriptors above 2 that are a terminal (a launcher hands fourwall's own stderr on, e.g. on fd 7)
 * get `with` instead: no copy of the caller's terminal may reach the box under another number.
 */
static int cover_ttys(int with) {
  for (int fd = 3; fd < 256; fd++)
    if (fd != with && isatty(fd) && dup2(with, fd) < 0) return -1;
  return 0;
}

static int relay_child(struct relay *r) {
  if (setsid() < 0) return -1;
  if (r->master < 0) return 0;
  int slave = open(r->slave, O_RDWR);
  if (slave < 0) return -1;
  if (ioctl(slave, TIOCSCTTY, 0) < 0) return -1;
  tcsetattr(slave, TCSANOW, &r->saved); /* the box starts in the caller's mode */
  struct winsize ws;
  if (ioctl(r->ref, TIOCGWINSZ, &ws) == 0) ioctl(slave, TIOCSWINSZ, &ws);
  for (int fd = 0; fd < 3; fd++)
    if (r->tty[fd] && dup2(slave, fd) < 0) return -1;
  if (cover_ttys(slave) < 0) return -1;
  if (slave > 2) close(slave);
  close(r->master);
  if (r->control >= 0) close(r->control);
  return 0;
}

static void relay_restore(struct relay *r) {
  if (r->raw) tcsetattr(r->in, TCSADRAIN, &r->saved);
  r->raw = 0;
}

static void relay_write_all(int fd, const char *buf, size_t len) {
  while (len > 0) {
    ssize_t n = write(fd, buf, len);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return; /* the caller's terminal is gone: drop */
    buf += n;
    len -= (size_t)n;
  }
}

/* Copies what the box has written so far to the caller's terminal (non-blocking reads). */
static int relay_drain(struct relay *r) {
  char buf[16384];
  for (;;) {
    ssize_t n = read(r->master, buf, sizeof buf);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return n == 0 || errno == EIO ? -1 : 0; /* -1: no slave left open */
    relay_write_all(r->out, buf, (size_t)n);
  }
}

/* What a signal means for the relay: return 1 to end now (the box is killed by the caller). */
typedef int (*relay_signal_fn)(int sig, pid_t child);

/* The parent's loop; returns the child's wait status. */
static int relay_run(struct relay *r, pid_t child, const int *signals, int nsignals, relay_signal_fn on_signal) {
  int sp[2];
  if (pipe2(sp, O_CLOEXEC | O_NONBLOCK) < 0) { kill(child, SIGKILL); return -1; }
  relay_sigpipe[0] = sp[0];
  relay_sigpipe[1] = sp[1];
  struct sigaction sa;
  memset(&sa, 0, sizeof sa);
  sa.sa_handler = relay_on_signal;
  sigemptyset(&sa.sa_mask);
  sa.sa_flags = SA_RESTART;
  sigaction(SIGCHLD, &sa, NULL);
  sigaction(SIGWINCH, &sa, NULL);
  for (int i = 0; i < nsignals; i++) sigaction(signals[i], &sa, NULL);

  if (r->in >= 0) {
    struct termios raw = r->saved;
    cfmakeraw(&raw);
    if (tcsetattr(r->in, TCSANOW, &raw) == 0) r->raw = 1;
  }
  fcntl(r->master, F_SETFL, fcntl(r->master, F_GETFL) | O_NONBLOCK);

  int status = 0, exited = 0, paused = 0, master_open = 1;
  char pending[4096];
  size_t npending = 0;
  if (waitpid(child, &status, WNOHANG) == child) exited = 1;
  for (;;) {
    if (exited && !paused) {
      if (master_open) relay_drain(r);
      break;
    }
    struct pollfd p[4];
    int n = 0, i_sig = n++, i_in = -1, i_master = -1, i_ctl = -1;
    p[i_sig] = (struct pollfd){.fd = sp[0], .events = POLLIN};
    if (master_open && !paused) {
      i_master = n++;
      p[i_master] = (struct pollfd){.fd = r->master, .events = (short)(POLLIN | (npending ? POLLOUT : 0))};
    }
    if (r->in >= 0 && !paused && !npending && master_open) {
      i_in = n++;
      p[i_in] = (struct pollfd){.fd = r->in, .events = POLLIN};
    }
    if (r->control >= 0) {
      i_ctl = n++;
      p[i_ctl] = (struct pollfd){.fd = r->control, .events = POLLIN};
    }
    if (poll(p, (nfds_t)n, -1) < 0) {
      if (errno == EINTR) continue;
      break;
    }
    if (p[i_sig].revents) {
      unsigned char sigs[64];
      ssize_t got = read(sp[0], sigs, sizeof sigs);
      for (ssize_t k = 0; k < got; k++) {
        if (sigs[k] == SIGCHLD) {
          if (waitpid(child, &status, WNOHANG) == child) exited = 1;
        } else if (sigs[k] == SIGWINCH) {
          struct winsize ws;
          if (ioctl(r->ref, TIOCGWINSZ, &ws) == 0) ioctl(r->master, TIOCSWINSZ, &ws);
        } else if (on_signal && on_signal(sigs[k], child)) {
          relay_restore(r);
          kill(child, SIGKILL);
          waitpid(child, &status, 0);
          return status;
        }
      }
    }
    if (i_ctl >= 0 && p[i_ctl].revents) {
      char c;
      ssize_t got = read(r->control, &c, 1);
      if (got <= 0) {
        close(r->control);
        r->control = -1;
        paused = 0;
      } else if (c == 'p') {
        paused = 1;
        if (r->in >= 0) tcflush(r->in, TCIFLUSH); /* keys typed for the box must not answer fourwall */
        relay_write_all(r->control, "P", 1);
      } else if (c == 'r') {
        paused = 0;
        relay_write_all(r->control, "R", 1);
      }
    }
    if (i_master >= 0 && p[i_master].revents) {
      if (p[i_master].revents & (POLLIN | POLLHUP | POLLERR)) {
        if (relay_drain(r) < 0) master_open = 0;
      }
      if (npending && (p[i_master].revents & POLLOUT)) {
        ssize_t w = write(r->master, pending, npending);
        if (w > 0) {
          memmove(pending, pending + w, npending - (size_t)w);
          npending -= (size_t)w;
        }
      }
    }
    if (i_in >= 0 && p[i_in].revents) {
      ssize_t got = read(r->in, pending, sizeof pending);
      if (got == 0 || (got < 0 && errno != EINTR && errno != EAGAIN)) r->in = -1; /* the caller's terminal is gone */
      else if (got > 0) npending = (size_t)got;
    }
  }
  relay_restore(r);
  if (!exited) waitpid(child, &status, 0);
  return status;
}

#endif
