// One thread's io_uring, used for one thing: sending a wakeup's socket writes in one system call.
#pragma once

#include <sys/socket.h>

#include <cstddef>
#include <vector>

#include "proxy/io.h"

// The kernel's ring entries (linux/io_uring.h), used only in write_ring.cc.
struct io_uring_sqe;
struct io_uring_cqe;

namespace sluice {

// A worker that wakes up to several ready sockets writes to several others.
// Made one by one, each write is a system call, and on a loaded machine the
// process woken by one of them often preempts sluice before the next: every
// later packet of the wakeup then waits a full context switch. Submitted
// together through io_uring, they are one entry into the kernel, made in
// order, each as a non-blocking send (sendmsg for two buffers; MSG_DONTWAIT:
// a full socket returns EAGAIN, as the plain call would, instead of being
// queued in the kernel), and the ring is waited on until every one has
// completed, which on a non-blocking socket is at once. The ring belongs to the thread that made
// it (IORING_SETUP_SINGLE_ISSUER) and runs completion work only when that
// thread enters it (DEFER_TASKRUN), so it adds no interrupts and no threads.
class WriteRing {
 public:
  // `entries`: the most writes one system call carries (larger batches take
  // several). ok() is false when the kernel refuses a ring (no io_uring, or
  // a seccomp profile that forbids it): the caller writes one by one.
  explicit WriteRing(unsigned entries);
  ~WriteRing();
  WriteRing(const WriteRing&) = delete;
  WriteRing& operator=(const WriteRing&) = delete;

  bool ok() const { return ring_fd_ >= 0; }
  // Makes every write of `ops`, filling `ret`/`error` and setting `made`.
  // False when the ring failed before making them all: those not made keep
  // `made` false, and the ring is closed for good (ok() turns false).
  bool send(WriteOp* ops, std::size_t n);

 private:
  bool send_chunk(WriteOp* ops, std::size_t n);
  void shut();

  int ring_fd_ = -1;
  unsigned entries_ = 0;
  // The shared rings (kernel memory mapped here).
  void* sq_map_ = nullptr;
  std::size_t sq_map_len_ = 0;
  void* cq_map_ = nullptr;  // == sq_map_ with IORING_FEAT_SINGLE_MMAP
  std::size_t cq_map_len_ = 0;
  io_uring_sqe* sqes_ = nullptr;
  std::size_t sqes_len_ = 0;
  unsigned* sq_tail_ = nullptr;
  unsigned sq_mask_ = 0;
  unsigned* sq_array_ = nullptr;
  unsigned* cq_head_ = nullptr;
  unsigned* cq_tail_ = nullptr;
  unsigned cq_mask_ = 0;
  io_uring_cqe* cqes_ = nullptr;
  std::vector<msghdr> msgs_;  // one per write in flight: sendmsg reads it while it runs
};

}  // namespace sluice
