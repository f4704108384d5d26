/* LD_PRELOAD shim that injects EINTR into readv/writev/accept4/connect of a real binary.
 *
 * sluice issues readv/writev through syscall(2) (libc's wrappers are thread
 * cancellation points and cost two atomics a call), as SYS_recvfrom/SYS_sendto for
 * a single buffer and SYS_readv/SYS_sendmsg for several, so those are caught in
 * syscall() and counted as readv and writev; the libc wrappers are caught too,
 * for any other caller. io_uring_setup
 * fails (ENOSYS), so sluice's batched writes are made one by one, as writev.
 *
 * Each call first fails with EINTR SLUICE_EINTR_BURST times in a row (the
 * caller's immediate retries see them), then goes through; the count restarts
 * for the next call. Only every SLUICE_EINTR_EVERY-th call is hit (default 1:
 * all of them). SLUICE_EINTR_OPS picks the operations (default
 * "readv,writev,accept4,connect"). The number of EINTRs injected per operation
 * is written to SLUICE_EINTR_REPORT at exit, as "readv N\nwritev N\n...", so a
 * test can compare it with sluice_eintr_retries_total. */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <errno.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/uio.h>

enum { OP_READV, OP_WRITEV, OP_ACCEPT4, OP_CONNECT, OP_COUNT };
static const char* const kNames[OP_COUNT] = {"readv", "writev", "accept4", "connect"};

static _Atomic unsigned long injected[OP_COUNT];
static _Atomic unsigned long calls[OP_COUNT];
static int enabled[OP_COUNT];
static unsigned burst = 3;
static unsigned every = 1;
/* Per thread: EINTRs still owed to the call in progress, per op. */
static __thread unsigned pending[OP_COUNT];
static __thread int in_call[OP_COUNT];

static void report(void) {
  const char* path = getenv("SLUICE_EINTR_REPORT");
  if (path == NULL) return;
  FILE* f = fopen(path, "w");
  if (f == NULL) return;
  for (int i = 0; i < OP_COUNT; ++i) fprintf(f, "%s %lu\n", kNames[i], atomic_load(&injected[i]));
  fclose(f);
}

__attribute__((constructor)) static void init(void) {
  const char* b = getenv("SLUICE_EINTR_BURST");
  const char* e = getenv("SLUICE_EINTR_EVERY");
  const char* ops = getenv("SLUICE_EINTR_OPS");
  if (b != NULL) burst = (unsigned)strtoul(b, NULL, 10);
  if (e != NULL && strtoul(e, NULL, 10) > 0) every = (unsigned)strtoul(e, NULL, 10);
  for (int i = 0; i < OP_COUNT; ++i) enabled[i] = ops == NULL || strstr(ops, kNames[i]) != NULL;
  atexit(report);
}

/* Returns 1 when this call must fail with EINTR. A call is "in progress"
 * from its first EINTR until it is let through. */
static int inject(int op) {
  if (!enabled[op] || burst == 0) return 0;
  if (!in_call[op]) {
    if (atomic_fetch_add(&calls[op], 1) % every != 0) return 0;
    in_call[op] = 1;
    pending[op] = burst;
  }
  if (pending[op] > 0) {
    --pending[op];
    atomic_fetch_add(&injected[op], 1);
    errno = EINTR;
    return 1;
  }
  in_call[op] = 0;
  return 0;
}

#define REAL(name, type) ((type)dlsym(RTLD_NEXT, name))

ssize_t readv(int fd, const struct iovec* iov, int n) {
  if (inject(OP_READV)) return -1;
  return REAL("readv", ssize_t (*)(int, const struct iovec*, int))(fd, iov, n);
}

ssize_t writev(int fd, const struct iovec* iov, int n) {
  if (inject(OP_WRITEV)) return -1;
  return REAL("writev", ssize_t (*)(int, const struct iovec*, int))(fd, iov, n);
}

int accept4(int fd, struct sockaddr* addr, socklen_t* len, int flags) {
  if (inject(OP_ACCEPT4)) return -1;
  return REAL("accept4", int (*)(int, struct sockaddr*, socklen_t*, int))(fd, addr, len, flags);
}

int connect(int fd, const struct sockaddr* addr, socklen_t len) {
  if (inject(OP_CONNECT)) return -1;
  return REAL("connect", int (*)(int, const struct sockaddr*, socklen_t))(fd, addr, len);
}

long syscall(long number, ...) {
  /* x86-64 and aarch64 pass up to six register arguments; reading all six is
   * what glibc's own syscall() does. */
  va_list ap;
  va_start(ap, number);
  long a[6];
  for (int i = 0; i < 6; ++i) a[i] = va_arg(ap, long);
  va_end(ap);
  /* Writes batched through io_uring are never interrupted by a signal, so
   * there would be nothing to inject into: the shim stands for a kernel
   * without io_uring, and sluice then makes every write with its own call. */
  if (number == SYS_io_uring_setup) {
    errno = ENOSYS;
    return -1;
  }
  const int is_read = number == SYS_readv || number == SYS_recvfrom;
  const int is_write = number == SYS_sendmsg || number == SYS_sendto;
  if ((is_read && inject(OP_READV)) || (is_write && inject(OP_WRITEV))) {
    return -1;
  }
  return REAL("syscall", long (*)(long, ...))(number, a[0], a[1], a[2], a[3], a[4], a[5]);
}
