/*
 * bt_server.h: a private redis-server owned by one test program, for the faults the shared
 * fixture server must never see (SIGSTOP, SIGKILL, restarts, CLIENT KILL TYPE normal): other
 * test programs use the fixture server in parallel. The program is bt_server_program():
 * redis-server, or $BRISK_TEST_SERVER (e.g. a valkey-server).
 *
 *   bt_server_start_or_exit(&s)  bt_server_start, saying where it runs; stops the program
 *                           when it does not come up
 *   bt_server_config(&s)    a new brisk_config for it
 *   bt_server_start(&s)     fork/exec `redis-server --port <free> --bind 127.0.0.1 --save ""
 *                           --appendonly no --dir <fresh tmp dir>`, wait (deadline) until it
 *                           answers PING; returns 1 when up, 0 (after reporting why) if not
 *   bt_server_kill(&s)      SIGKILL and reap it (no-op when not running)
 *   bt_server_restart(&s)   kill, then start again on the same port
 *   bt_server_pause(&s)     SIGSTOP: the kernel still accepts connections and buffers
 *                           requests, the server answers nothing
 *   bt_server_resume(&s)    SIGCONT
 *   bt_server_ping(port, ms) a raw PING over a plain socket (no brisk involved): 1 on +PONG
 *   bt_server_cleanup(&s)   kill it and remove its directory
 *
 * Every server started is also killed at exit (atexit, so REQUIRE's exit(1) is covered) and
 * by the kernel if the test dies any other way (PR_SET_PDEATHSIG: SIGKILL when the thread that
 * forked it, the main thread, ends), so no redis-server outlives its test.
 * Use these from the main thread only.
 */
#ifndef BT_SERVER_H
#define BT_SERVER_H

#include "brisk_test.h"

#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <arpa/inet.h>

#define BT_SERVER_START_DEADLINE_MS 20000
#define BT_SERVER_MAX 4

typedef struct bt_server {
  pid_t pid;      /* 0 when not running */
  uint16_t port;  /* kept across restarts */
  int paused;     /* SIGSTOPped by us */
  char dir[256];  /* its --dir, made by mkdtemp */
} bt_server;

static bt_server *bt_servers[BT_SERVER_MAX];
static int bt_servers_registered = 0;

static inline void bt_server_kill(bt_server *s) {
  if (s->pid <= 0) return;
  kill(s->pid, SIGKILL); /* SIGKILL also ends a stopped process */
  while (waitpid(s->pid, NULL, 0) < 0 && errno == EINTR) {
  }
  s->pid = 0;
  s->paused = 0;
}

static inline void bt_server_cleanup(bt_server *s) {
  char path[320];
  bt_server_kill(s);
  if (s->dir[0] != '\0') {
    snprintf(path, sizeof path, "%s/redis.log", s->dir);
    unlink(path);
    rmdir(s->dir);
    s->dir[0] = '\0';
  }
}

static void bt_servers_atexit(void) {
  int i;
  for (i = 0; i < BT_SERVER_MAX; i++)
    if (bt_servers[i] != NULL) bt_server_cleanup(bt_servers[i]);
}

static inline void bt_server_register(bt_server *s) {
  int i;
  if (!bt_servers_registered) {
    atexit(bt_servers_atexit);
    bt_servers_registered = 1;
  }
  for (i = 0; i < BT_SERVER_MAX; i++)
    if (bt_servers[i] == s) return;
  for (i = 0; i < BT_SERVER_MAX; i++)
    if (bt_servers[i] == NULL) {
      bt_servers[i] = s;
      return;
    }
  fprintf(stderr, "bt_server: more than %d private servers\n", BT_SERVER_MAX);
  exit(1);
}

/* A port that was free a moment ago (the kernel's pick for port 0); 0 on failure. */
static inline uint16_t bt_free_port(void) {
  struct sockaddr_in a;
  socklen_t len = sizeof a;
  uint16_t port = 0;
  int fd = socket(AF_INET, SOCK_STREAM, 0);
  if (fd < 0) return 0;
  memset(&a, 0, sizeof a);
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  if (bind(fd, (struct sockaddr *)&a, sizeof a) == 0 &&
      getsockname(fd, (struct sockaddr *)&a, &len) == 0)
    port = ntohs(a.sin_port);
  close(fd);
  return port;
}

/* A raw PING to 127.0.0.1:port with a total budget of `ms`; 1 when it answered +PONG. */
static inline int bt_server_ping(uint16_t port, int ms) {
  struct sockaddr_in a;
  struct pollfd p;
  char buf[16];
  size_t got = 0;
  int64_t deadline = bt_now_ms() + ms;
  int ok = 0;
  int fd = socket(AF_INET, SOCK_STREAM, 0);
  if (fd < 0) return 0;
  memset(&a, 0, sizeof a);
  a.sin_family = AF_INET;
  a.sin_port = htons(port);
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  /* Loopback connects finish at once (or are refused); the kernel completes the handshake
   * even for a stopped server, which then never answers: the poll below bounds that. */
  if (connect(fd, (struct sockaddr *)&a, sizeof a) != 0) goto out;
  if (write(fd, "PING\r\n", 6) != 6) goto out;
  while (got < 7) {
    int left = (int)(deadline - bt_now_ms());
    ssize_t n;
    if (left <= 0) goto out;
    p.fd = fd;
    p.events = POLLIN;
    p.revents = 0;
    if (poll(&p, 1, left) <= 0) goto out;
    n = read(fd, buf + got, sizeof buf - 1 - got);
    if (n <= 0) goto out;
    got += (size_t)n;
  }
  ok = memcmp(buf, "+PONG\r\n", 7) == 0;
out:
  close(fd);
  return ok;
}

/* Where the server program (bt_server_program(): redis-server, or $BRISK_TEST_SERVER) is,
 * resolved before fork (the child may only call async-signal-safe functions: the parent has
 * brisk's threads). A program given with a '/' is used as it is, as execvp would. */
static inline int bt_find_server_program(char *out, size_t size) {
  const char *program = bt_server_program();
  const char *path = getenv("PATH");
  const char *p;
  if (strchr(program, '/') != NULL) {
    snprintf(out, size, "%s", program);
    return access(out, X_OK) == 0;
  }
  if (path == NULL || *path == '\0') path = "/usr/local/bin:/usr/bin:/bin";
  p = path;
  while (*p != '\0') {
    size_t n = strcspn(p, ":");
    snprintf(out, size, "%.*s/%s", (int)n, p, program);
    if (n > 0 && access(out, X_OK) == 0) return 1;
    p += n;
    if (*p == ':') p++;
  }
  return 0;
}

/* Starts redis-server on s->port (0: a free port, retried if taken meanwhile). */
static inline int bt_server_start_on(bt_server *s, uint16_t port) {
  char exe[512], port_text[16], log_path[320];
  int attempt;
  bt_server_register(s);
  if (!bt_find_server_program(exe, sizeof exe)) {
    fprintf(stderr, "bt_server: %s not found (PATH, or $BRISK_TEST_SERVER)\n",
            bt_server_program());
    return 0;
  }
  if (s->dir[0] == '\0') {
    const char *tmp = getenv("TMPDIR");
    snprintf(s->dir, sizeof s->dir, "%s/brisk-ct-XXXXXX", tmp && *tmp ? tmp : "/tmp");
    if (mkdtemp(s->dir) == NULL) {
      fprintf(stderr, "bt_server: mkdtemp %s: %s\n", s->dir, strerror(errno));
      s->dir[0] = '\0';
      return 0;
    }
  }
  snprintf(log_path, sizeof log_path, "%s/redis.log", s->dir);
  for (attempt = 0; attempt < 5; attempt++) {
    uint16_t p = port ? port : bt_free_port();
    const char *argv[16];
    int64_t deadline;
    pid_t pid;
    int up = 0;
    snprintf(port_text, sizeof port_text, "%u", (unsigned)p);
    argv[0] = exe;
    argv[1] = "--port";
    argv[2] = port_text;
    argv[3] = "--bind";
    argv[4] = "127.0.0.1";
    argv[5] = "--save";
    argv[6] = "";
    argv[7] = "--appendonly";
    argv[8] = "no";
    argv[9] = "--dir";
    argv[10] = s->dir;
    argv[11] = "--logfile";
    argv[12] = log_path;
    argv[13] = NULL;
    pid = fork();
    if (pid < 0) {
      fprintf(stderr, "bt_server: fork: %s\n", strerror(errno));
      return 0;
    }
    if (pid == 0) { /* child: async-signal-safe calls only */
      int devnull;
      pid_t parent = getppid();
      prctl(PR_SET_PDEATHSIG, SIGKILL);
      if (getppid() != parent) _exit(126); /* the test already died */
      devnull = open("/dev/null", O_RDWR);
      if (devnull >= 0) {
        dup2(devnull, 0);
        dup2(devnull, 1);
        dup2(devnull, 2);
      }
      execv(exe, (char *const *)argv);
      _exit(127);
    }
    s->pid = pid;
    s->port = p;
    s->paused = 0;
    deadline = bt_now_ms() + BT_SERVER_START_DEADLINE_MS;
    while (bt_now_ms() < deadline) {
      int status;
      if (bt_server_ping(p, 1000)) {
        up = 1;
        break;
      }
      if (waitpid(pid, &status, WNOHANG) == pid) { /* died: port taken? */
        s->pid = 0;
        break;
      }
      bt_sleep_ms(20); /* polling interval */
    }
    if (up) return 1;
    bt_server_kill(s);
  }
  fprintf(stderr, "bt_server: %s did not answer PING on port %u; see %s\n", exe,
          (unsigned)s->port, log_path);
  return 0;
}

static inline int bt_server_start(bt_server *s) {
  s->pid = 0;
  s->port = 0;
  s->paused = 0;
  s->dir[0] = '\0';
  return bt_server_start_on(s, 0);
}

static inline void bt_server_start_or_exit(bt_server *s) {
  REQUIRE(bt_server_start(s));
  fprintf(stderr, "private %s on port %u%s\n", bt_server_program(), (unsigned)s->port,
          bt_under_valgrind() ? " (valgrind: reduced load)" : "");
}

static inline brisk_config *bt_server_config(const bt_server *s) { return bt_config_at(s->port); }

static inline int bt_server_restart(bt_server *s) {
  bt_server_kill(s);
  return bt_server_start_on(s, s->port);
}

static inline void bt_server_pause(bt_server *s) {
  if (s->pid > 0 && kill(s->pid, SIGSTOP) == 0) s->paused = 1;
}

static inline void bt_server_resume(bt_server *s) {
  if (s->pid > 0) kill(s->pid, SIGCONT);
  s->paused = 0;
}

#endif /* BT_SERVER_H */
