// The only caller of readv/writev (recvfrom/sendto for one buffer), accept4 and connect: the
// EINTR retry budget, counting, errno mapping.
#include "proxy/io.h"

#include "proxy/write_ring.h"

#include <sys/syscall.h>
#include <unistd.h>

#include <cerrno>

namespace sluice {
namespace {

// readv/writev go through syscall(2), not libc's wrappers: those are thread
// cancellation points, and in a multi-threaded process each call brackets the
// system call with two atomic read-modify-writes of the thread's cancel state
// (about 4 % of sluice's CPU per point select, measured with perf). sluice
// never cancels threads. A single buffer (nearly every call) goes to
// recvfrom/sendto: they skip the VFS layer that read/write and readv/writev
// pass through (file permission hooks, fsnotify, the kiocb) and go straight to
// the socket, about 400 fewer kernel instructions per write-read pair on
// loopback TCP (Linux 6.18, measured with perf stat). Every fd sluice reads or
// writes here is a socket.
// tests/fault/eintr_shim.c intercepts syscall() to match.
class RealSyscalls final : public Syscalls {
 public:
  ssize_t readv(int fd, const iovec* iov, int count) override {
    if (count == 1) {
      return ::syscall(SYS_recvfrom, fd, iov[0].iov_base, iov[0].iov_len, 0, nullptr, nullptr);
    }
    return ::syscall(SYS_readv, fd, iov, count);
  }
  ssize_t writev(int fd, const iovec* iov, int count) override {
    if (count == 1) {
      return ::syscall(SYS_sendto, fd, iov[0].iov_base, iov[0].iov_len, MSG_NOSIGNAL, nullptr, 0);
    }
    // sendmsg rather than writev: MSG_NOSIGNAL, as for every other write, so
    // a peer gone away is EPIPE whatever the process's SIGPIPE disposition.
    msghdr msg{};
    msg.msg_iov = const_cast<iovec*>(iov);
    msg.msg_iovlen = static_cast<std::size_t>(count);
    return ::syscall(SYS_sendmsg, fd, &msg, MSG_NOSIGNAL);
  }
  int accept4(int fd, sockaddr* addr, socklen_t* len, int flags) override {
    return ::accept4(fd, addr, len, flags);
  }
  int connect(int fd, const sockaddr* addr, socklen_t len) override {
    return ::connect(fd, addr, len);
  }
  // A batch of one is a plain sendto: a ring costs more than it saves there.
  void writev_batch(WriteOp* ops, std::size_t n) override {
    if (n > 1) {
      WriteRing& r = ring();
      if (r.ok() && r.send(ops, n)) return;
    }
    Syscalls::writev_batch(ops, n);  // what the ring did not make
  }
  void thread_started() override { ring(); }

 private:
  // Each worker thread has its own ring (a ring belongs to one thread).
  static WriteRing& ring() {
    thread_local WriteRing r(kRingEntries);
    return r;
  }
  static constexpr unsigned kRingEntries = 64;
};

bool would_block(int e) {
  return e == EAGAIN || e == EWOULDBLOCK;
}

// Runs `call` until it returns something other than EINTR or the budget is
// spent. `classify(ret, errno)` turns a non-EINTR outcome into an IoResult.
template <typename Call, typename Classify>
IoResult with_retries(std::uint32_t budget, Call call, Classify classify) {
  std::uint32_t retries = 0;
  for (;;) {
    const auto ret = call(retries);
    const int e = ret < 0 ? errno : 0;  // errno is thread-local: read it only on failure
    if (!(ret < 0 && e == EINTR)) {
      IoResult r = classify(ret, e);
      r.retries = retries;
      return r;
    }
    if (retries == budget) {
      IoResult r{IoStatus::kExhausted};
      r.error = EINTR;
      r.retries = retries;
      return r;
    }
    ++retries;
  }
}

IoResult transfer_result(ssize_t ret, int e, bool is_read) {
  if (ret > 0) return {IoStatus::kOk, static_cast<std::size_t>(ret)};
  if (ret == 0) return {is_read ? IoStatus::kEof : IoStatus::kOk, 0};
  if (would_block(e)) return {IoStatus::kWouldBlock};
  IoResult r{IoStatus::kError};
  r.error = e;
  return r;
}

}  // namespace

void Syscalls::writev_batch(WriteOp* ops, std::size_t n) {
  for (std::size_t i = 0; i < n; ++i) {
    WriteOp& op = ops[i];
    if (op.made) continue;
    op.ret = writev(op.fd, op.iov, op.count);
    op.error = op.ret < 0 ? errno : 0;
    op.made = true;
  }
}

Syscalls& real_syscalls() {
  static RealSyscalls real;
  return real;
}

IoResult Io::read(int fd, const iovec* iov, int count) {
  return with_retries(
      budget_, [&](std::uint32_t) { return sys_->readv(fd, iov, count); },
      [](ssize_t ret, int e) { return transfer_result(ret, e, true); });
}

IoResult Io::write(int fd, const iovec* iov, int count) {
  return with_retries(
      budget_, [&](std::uint32_t) { return sys_->writev(fd, iov, count); },
      [](ssize_t ret, int e) { return transfer_result(ret, e, false); });
}

IoResult Io::finish(const WriteOp& op) {
  if (!op.made) return write(op.fd, op.iov, op.count);
  if (!(op.ret < 0 && op.error == EINTR)) return transfer_result(op.ret, op.error, false);
  // Interrupted in the batch: that was the first call; the retries follow.
  if (budget_ == 0) {
    IoResult r{IoStatus::kExhausted};
    r.error = EINTR;
    return r;
  }
  Io rest(*sys_, budget_ - 1);
  IoResult r = rest.write(op.fd, op.iov, op.count);
  ++r.retries;
  return r;
}

IoResult Io::accept(int listen_fd) {
  return with_retries(
      budget_,
      [&](std::uint32_t) {
        return sys_->accept4(listen_fd, nullptr, nullptr, SOCK_NONBLOCK | SOCK_CLOEXEC);
      },
      [](int ret, int e) {
        IoResult r;
        if (ret >= 0) {
          r.fd = ret;
        } else if (would_block(e)) {
          r.status = IoStatus::kWouldBlock;
        } else {
          r.status = IoStatus::kError;
          r.error = e;
        }
        return r;
      });
}

IoResult Io::connect(int fd, const sockaddr* addr, socklen_t len) {
  return with_retries(
      budget_, [&](std::uint32_t) { return sys_->connect(fd, addr, len); },
      [](int ret, int e) {
        IoResult r;
        if (ret == 0 || e == EISCONN) return r;
        if (e == EINPROGRESS || e == EALREADY) {
          r.status = IoStatus::kInProgress;
        } else {
          r.status = IoStatus::kError;
          r.error = e;
        }
        return r;
      });
}

}  // namespace sluice
