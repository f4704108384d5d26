// The only caller of readv/writev (recvfrom/sendto for one buffer), accept4 and connect: the
// EINTR retry budget, counting, errno mapping.
#pragma once

#include <sys/socket.h>
#include <sys/types.h>
#include <sys/uio.h>

#include <cstddef>
#include <cstdint>

namespace sluice {

// One write of a batch: what writev(fd, iov, count) would be given, and,
// once made, what it would have returned (`ret`, and `error` when ret < 0).
struct WriteOp {
  int fd = -1;
  int count = 0;
  iovec iov[2]{};
  ssize_t ret = 0;
  int error = 0;
  bool made = false;      // the write was made (ret/error are its outcome)
  void* owner = nullptr;  // the caller's: whose write it is
  unsigned tag = 0;       // the caller's: which of its writes
};

// The raw system calls, behind an interface so tests can inject EINTR,
// EAGAIN, short transfers and errors deterministically. Each returns what the
// system call returns and leaves the error in errno.
class Syscalls {
 public:
  virtual ~Syscalls() = default;
  virtual ssize_t readv(int fd, const iovec* iov, int count) = 0;
  virtual ssize_t writev(int fd, const iovec* iov, int count) = 0;
  // Makes the writes of `ops` in order, each as writev(fd, iov, count) would,
  // filling `ret`, `error` and `made`. This default makes them one by one
  // through writev(); the real one submits a batch in one system call (see
  // WriteRing) where the kernel allows it.
  virtual void writev_batch(WriteOp* ops, std::size_t n);
  // Called on each worker thread before its loop runs: the real calls make
  // that thread's write ring there, so that every fd a worker holds exists
  // from start-up, not from its first busy wakeup.
  virtual void thread_started() {}
  virtual int accept4(int fd, sockaddr* addr, socklen_t* len, int flags) = 0;
  virtual int connect(int fd, const sockaddr* addr, socklen_t len) = 0;
};

// The process's real system calls.
Syscalls& real_syscalls();

enum class IoStatus : std::uint8_t {
  kOk,          // `bytes` transferred (accept: `fd` is the new socket)
  kWouldBlock,  // EAGAIN: wait for readiness; not a retry
  kInProgress,  // connect: the attempt is under way (EINPROGRESS/EALREADY)
  kEof,         // read: the peer closed its side
  kError,       // failed with `error`
  kExhausted,   // interrupted by EINTR more than the retry budget allows
};

struct IoResult {
  IoStatus status = IoStatus::kOk;
  std::size_t bytes = 0;
  int fd = -1;                // accept only
  int error = 0;              // errno for kError
  std::uint32_t retries = 0;  // EINTR retries made (each one counted once)
};

// Calls the syscalls with a budget of `retry_budget` consecutive EINTR
// retries per call: the call is made once, then retried after each EINTR
// until it returns something else or the budget is spent (kExhausted).
class Io {
 public:
  Io(Syscalls& sys, std::uint32_t retry_budget) : sys_(&sys), budget_(retry_budget) {}
  void set_retry_budget(std::uint32_t budget) { budget_ = budget; }
  std::uint32_t retry_budget() const { return budget_; }

  [[nodiscard, gnu::hot]] IoResult read(int fd, const iovec* iov, int count);
  [[nodiscard, gnu::hot]] IoResult write(int fd, const iovec* iov, int count);
  // What write() would have returned for `op`, a write of a batch
  // (Syscalls::writev_batch): one interrupted by EINTR there is retried
  // here within the budget, one the batch did not make is made here.
  [[nodiscard, gnu::hot]] IoResult finish(const WriteOp& op);
  [[nodiscard]] IoResult accept(int listen_fd);
  // A non-blocking connect: kOk (connected at once), kInProgress, or kError.
  // Called again after EINTR, where EALREADY/EINPROGRESS mean under way and
  // EISCONN means done.
  [[nodiscard]] IoResult connect(int fd, const sockaddr* addr, socklen_t len);

 private:
  Syscalls* sys_;
  std::uint32_t budget_;
};

}  // namespace sluice
