/* uring_floor: the bare forwarder of shared/bench/floorproxy.c on io_uring instead of epoll, a
 * second measuring stick: what a proxy would save by submitting its reads and writes in batches
 * (one io_uring_enter per batch instead of a read, a write and a share of an epoll_wait per
 * packet). One thread, no parsing: a recv on each end; each completed recv becomes a send of
 * those bytes to the other end, whose completion re-arms the recv.
 * Usage: uring_floor LISTEN_PORT UPSTREAM_PORT   (127.0.0.1 only; needs liburing) */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <liburing.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/socket.h>
#include <unistd.h>

#define BUF (64 * 1024)
/* An end's buffer holds what was read from it until the peer has been sent all of it. */
struct end { int fd; struct end *peer; char *buf; unsigned off, len; int dead, inflight; };
enum { ACCEPT = 1, RECV = 2, SEND = 3 }; /* user_data = end pointer | kind (ends are 8-aligned) */

static struct io_uring ring;
static int one = 1;

static struct io_uring_sqe *next_sqe(void) {
  struct io_uring_sqe *s = io_uring_get_sqe(&ring);
  if (!s) { io_uring_submit(&ring); s = io_uring_get_sqe(&ring); }
  return s;
}
static void post(struct end *e, int kind) {
  struct io_uring_sqe *s = next_sqe();
  if (kind == RECV) io_uring_prep_recv(s, e->fd, e->buf, BUF, 0);
  else io_uring_prep_send(s, e->peer->fd, e->buf + e->off, e->len - e->off, MSG_NOSIGNAL);
  io_uring_sqe_set_data64(s, (uint64_t)(uintptr_t)e | (uint64_t)kind);
  e->inflight++;
}
static void post_accept(int ls) {
  struct io_uring_sqe *s = next_sqe();
  io_uring_prep_accept(s, ls, NULL, NULL, 0);
  io_uring_sqe_set_data64(s, ACCEPT);
}
/* A pair is freed once neither end has an operation in flight: shutdown makes pending recvs
 * complete, so that happens soon after either side ends. */
static void end_pair(struct end *e) {
  struct end *p = e->peer;
  if (!e->dead) {
    e->dead = p->dead = 1;
    shutdown(e->fd, SHUT_RDWR);
    shutdown(p->fd, SHUT_RDWR);
  }
  if (e->inflight || p->inflight) return;
  close(e->fd); close(p->fd);
  free(e->buf); free(p->buf); free(e); free(p);
}
static void new_pair(int cfd, int uport) {
  int u = socket(AF_INET, SOCK_STREAM, 0);
  struct sockaddr_in ua = {.sin_family = AF_INET, .sin_port = htons(uport)};
  inet_pton(AF_INET, "127.0.0.1", &ua.sin_addr);
  if (u < 0 || connect(u, (void *)&ua, sizeof ua)) { close(cfd); if (u >= 0) close(u); return; }
  setsockopt(cfd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
  setsockopt(u, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
  struct end *x = calloc(1, sizeof *x), *y = calloc(1, sizeof *y);
  x->fd = cfd; y->fd = u; x->peer = y; y->peer = x; x->buf = malloc(BUF); y->buf = malloc(BUF);
  post(x, RECV); post(y, RECV);
}
int main(int argc, char **argv) {
  if (argc != 3) { fprintf(stderr, "usage: %s LISTEN_PORT UPSTREAM_PORT\n", argv[0]); return 2; }
  int lport = atoi(argv[1]), uport = atoi(argv[2]);
  /* Completions' task work runs only when this thread enters the ring: no interrupts, no IPIs. */
  struct io_uring_params p = {.flags = IORING_SETUP_SINGLE_ISSUER | IORING_SETUP_DEFER_TASKRUN};
  int rc = io_uring_queue_init_params(4096, &ring, &p);
  if (rc) { fprintf(stderr, "io_uring_queue_init: %d\n", rc); return 1; }
  int ls = socket(AF_INET, SOCK_STREAM, 0);
  setsockopt(ls, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
  struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons(lport)};
  inet_pton(AF_INET, "127.0.0.1", &a.sin_addr);
  if (bind(ls, (void *)&a, sizeof a) || listen(ls, 4096)) { perror("listen"); return 1; }
  post_accept(ls);
  for (;;) {
    io_uring_submit_and_wait(&ring, 1);
    struct io_uring_cqe *c;
    unsigned head, n = 0;
    io_uring_for_each_cqe(&ring, head, c) {
      n++;
      int kind = (int)(c->user_data & 7), res = c->res;
      struct end *e = (struct end *)(uintptr_t)(c->user_data & ~(uint64_t)7);
      if (kind == ACCEPT) {
        post_accept(ls);
        if (res >= 0) new_pair(res, uport);
        continue;
      }
      e->inflight--;
      if (res <= 0 || e->dead) { end_pair(e); continue; }
      if (kind == RECV) { e->off = 0; e->len = (unsigned)res; post(e, SEND); continue; }
      e->off += (unsigned)res;
      post(e, e->off < e->len ? SEND : RECV);
    }
    io_uring_cq_advance(&ring, n);
  }
}
