// A Syscalls implementation that injects EINTR, EAGAIN, short transfers and errors on a script.
#pragma once

#include <algorithm>
#include <cerrno>
#include <deque>
#include <functional>
#include <mutex>
#include <vector>

#include "proxy/io.h"

namespace sluice::testing {

// One scripted outcome for the next call of an operation. `error` != 0 makes
// the call fail with that errno; otherwise the real call runs, capped to
// `max_bytes` (a short read or write) when that is non-zero.
struct Fault {
  int error = 0;
  std::size_t max_bytes = 0;
  int repeat = 1;  // how many consecutive calls it applies to; -1 = forever
};

// Wraps the real system calls. Each operation has its own script; calls
// beyond the script behave normally. Counts every call made. The worker's
// thread calls it while a test thread scripts it, hence the lock.
class FaultSyscalls final : public Syscalls {
 public:
  std::deque<Fault> reads, writes, accepts, connects;
  int read_calls = 0, write_calls = 0, accept_calls = 0, connect_calls = 0;
  std::size_t largest_read = 0;      // the most bytes one readv asked for
  int writes_would_block = 0;        // real writes that found the socket full (EAGAIN)
  int writes_incomplete = 0;         // real writes that did not take everything (EAGAIN or short)
  std::vector<std::size_t> batches;  // the size of each writev_batch call
  // Called (once, then cleared) at the start of the next readv, on the
  // worker's thread and outside the lock: a test can hold the worker there
  // while it makes several sockets ready for one wakeup.
  std::function<void()> on_next_read;
  std::mutex mu;

  // Scripts from another thread.
  void script(std::deque<Fault>& which, Fault f) {
    std::lock_guard lock(mu);
    which.push_back(f);
  }
  void clear() {
    std::lock_guard lock(mu);
    reads.clear();
    writes.clear();
    accepts.clear();
    connects.clear();
  }

  ssize_t readv(int fd, const iovec* iov, int count) override {
    std::function<void()> hook;
    {
      std::lock_guard lock(mu);
      hook.swap(on_next_read);
    }
    if (hook) hook();
    std::unique_lock lock(mu);
    ++read_calls;
    std::size_t asked = 0;
    for (int i = 0; i < count; ++i) asked += iov[i].iov_len;
    largest_read = std::max(largest_read, asked);
    return apply(reads, iov, count, [&](const iovec* v, int c) { return ::readv(fd, v, c); });
  }
  ssize_t writev(int fd, const iovec* iov, int count) override {
    std::unique_lock lock(mu);
    ++write_calls;
    return apply(writes, iov, count, [&](const iovec* v, int c) {
      // MSG_NOSIGNAL as the real calls: a peer gone is EPIPE, not SIGPIPE.
      msghdr msg{};
      msg.msg_iov = const_cast<iovec*>(v);
      msg.msg_iovlen = static_cast<std::size_t>(c);
      const ssize_t n = ::sendmsg(fd, &msg, MSG_NOSIGNAL);
      std::size_t total = 0;
      for (int i = 0; i < c; ++i) total += v[i].iov_len;
      if (n < 0 && errno == EAGAIN) ++writes_would_block;
      if ((n < 0 && errno == EAGAIN) || (n >= 0 && static_cast<std::size_t>(n) < total)) {
        ++writes_incomplete;
      }
      return n;
    });
  }
  // One by one through writev() (so its script applies), as on a kernel
  // without io_uring; the batch's size is recorded.
  void writev_batch(WriteOp* ops, std::size_t n) override {
    {
      std::lock_guard lock(mu);
      batches.push_back(n);
    }
    Syscalls::writev_batch(ops, n);
  }
  int accept4(int fd, sockaddr* addr, socklen_t* len, int flags) override {
    std::lock_guard lock(mu);
    ++accept_calls;
    if (const int e = take(accepts)) return fail(e);
    return ::accept4(fd, addr, len, flags);
  }
  int connect(int fd, const sockaddr* addr, socklen_t len) override {
    std::lock_guard lock(mu);
    ++connect_calls;
    if (const int e = take(connects)) return fail(e);
    return ::connect(fd, addr, len);
  }

 private:
  static int fail(int e) {
    errno = e;
    return -1;
  }
  // Returns the scripted errno for this call (0 = none) and advances the script.
  static int take(std::deque<Fault>& script, std::size_t* cap = nullptr) {
    if (script.empty()) return 0;
    Fault& f = script.front();
    const int e = f.error;
    if (cap != nullptr) *cap = f.max_bytes;
    if (f.repeat > 0 && --f.repeat == 0) script.pop_front();
    return e;
  }
  template <typename Real>
  static ssize_t apply(std::deque<Fault>& script, const iovec* iov, int count, Real real) {
    std::size_t cap = 0;
    if (const int e = take(script, &cap)) return fail(e);
    if (cap == 0 || count == 0) return real(iov, count);
    iovec one{iov[0].iov_base, std::min(cap, iov[0].iov_len)};
    return real(&one, 1);
  }
};

}  // namespace sluice::testing
