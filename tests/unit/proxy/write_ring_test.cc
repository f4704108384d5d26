// WriteRing and Syscalls::writev_batch on real sockets: order, EAGAIN at once, errors, fallback.
#include <doctest/doctest.h>

#include <cerrno>
#include <cstring>
#include <string>
#include <vector>

#include "proxy/io.h"
#include "proxy/write_ring.h"
#include "socket_pair.h"

namespace sluice {
namespace {

using testing::SocketPair;

WriteOp op_for(int fd, const std::string& a, const std::string& b = {}) {
  WriteOp op;
  op.fd = fd;
  op.iov[0] = {const_cast<char*>(a.data()), a.size()};
  op.count = 1;
  if (!b.empty()) op.iov[op.count++] = {const_cast<char*>(b.data()), b.size()};
  return op;
}

std::string drain(int fd) {
  std::string out;
  char buf[65536];
  for (;;) {
    const ssize_t n = ::read(fd, buf, sizeof buf);
    if (n <= 0) break;
    out.append(buf, static_cast<std::size_t>(n));
  }
  return out;
}

// Fills `fd`'s send path until a write would block; returns the bytes taken.
std::size_t fill(int fd) {
  std::vector<char> junk(65536, 'j');
  std::size_t total = 0;
  for (;;) {
    const ssize_t n = ::send(fd, junk.data(), junk.size(), MSG_DONTWAIT);
    if (n <= 0) break;
    total += static_cast<std::size_t>(n);
  }
  return total;
}

TEST_CASE("write ring: a batch to several sockets lands whole and in order, iovecs joined") {
  WriteRing ring(4);
  // Linux 6.1+ (this project's platform) has io_uring; a kernel or seccomp
  // profile without it takes the fallback tested below.
  REQUIRE(ring.ok());
  SocketPair x, y;
  const std::string a = "alpha", b = "-beta", c = "gamma", d = "delta";
  // Six writes through a ring of four: two system calls, in order.
  std::vector<WriteOp> ops = {op_for(x.a, a, b), op_for(y.a, c), op_for(x.a, d),
                              op_for(y.a, a),    op_for(x.a, c), op_for(y.a, d, b)};
  REQUIRE(ring.send(ops.data(), ops.size()));
  for (const WriteOp& op : ops) {
    CHECK(op.made);
    CHECK(op.error == 0);
    CHECK(op.ret ==
          static_cast<ssize_t>(op.iov[0].iov_len + (op.count > 1 ? op.iov[1].iov_len : 0)));
  }
  CHECK(drain(x.b) == "alpha-betadeltagamma");
  CHECK(drain(y.b) == "gammaalphadelta-beta");
}

TEST_CASE("write ring: a full socket returns EAGAIN at once, a closed peer EPIPE, no signal") {
  WriteRing ring(8);
  REQUIRE(ring.ok());
  SocketPair full, gone, fine;
  fill(full.a);
  ::close(gone.b);
  gone.b = ::socket(AF_UNIX, SOCK_STREAM, 0);  // the pair's destructor closes something valid
  const std::string s = "payload";
  std::vector<WriteOp> ops = {op_for(full.a, s), op_for(gone.a, s), op_for(fine.a, s)};
  REQUIRE(ring.send(ops.data(), ops.size()));  // returns: nothing waited for the full socket
  CHECK(ops[0].ret == -1);
  CHECK(ops[0].error == EAGAIN);
  CHECK(ops[1].ret == -1);
  CHECK(ops[1].error == EPIPE);  // and SIGPIPE was not raised (the test would have died)
  CHECK(ops[2].ret == static_cast<ssize_t>(s.size()));
  CHECK(drain(fine.b) == s);
}

TEST_CASE("write ring: a short write reports the bytes taken, like writev") {
  WriteRing ring(2);
  REQUIRE(ring.ok());
  SocketPair p;
  const std::size_t room = fill(p.a);
  drain(p.b);  // room for about what fill() took again
  const std::string big(room * 4, 'b');
  std::vector<WriteOp> ops = {op_for(p.a, big), op_for(p.a, "x")};
  REQUIRE(ring.send(ops.data(), ops.size()));
  CHECK(ops[0].ret > 0);
  CHECK(static_cast<std::size_t>(ops[0].ret) < big.size());
}

TEST_CASE("writev_batch: the real calls make every write of a batch, a batch of one too") {
  SocketPair x, y;
  const std::string a = "one", b = "two", c = "three";
  std::vector<WriteOp> ops = {op_for(x.a, a), op_for(y.a, b, c)};
  real_syscalls().writev_batch(ops.data(), ops.size());
  CHECK(ops[0].made);
  CHECK(ops[1].made);
  CHECK(ops[0].ret == 3);
  CHECK(ops[1].ret == 8);
  WriteOp lone = op_for(x.a, c);
  real_syscalls().writev_batch(&lone, 1);
  CHECK(lone.ret == 5);
  CHECK(drain(x.b) == "onethree");
  CHECK(drain(y.b) == "twothree");
}

// The default writev_batch (what a kernel without io_uring gets) and
// Io::finish: an EINTR in the batch is the first call, retried within the
// budget and counted; an exhausted budget is reported as such.
class InterruptFirst final : public Syscalls {
 public:
  int interrupts = 0;  // EINTRs still to give
  ssize_t readv(int, const iovec*, int) override { return -1; }
  ssize_t writev(int fd, const iovec* iov, int count) override {
    if (interrupts > 0) {
      --interrupts;
      errno = EINTR;
      return -1;
    }
    return ::writev(fd, iov, count);
  }
  int accept4(int, sockaddr*, socklen_t*, int) override { return -1; }
  int connect(int, const sockaddr*, socklen_t) override { return -1; }
};

TEST_CASE("writev_batch fallback + Io::finish: EINTR in a batch is retried within the budget") {
  SocketPair p;
  const std::string s = "data";
  InterruptFirst sys;
  Io io(sys, 3);

  sys.interrupts = 3;  // the batch's call and two retries
  WriteOp op = op_for(p.a, s);
  sys.writev_batch(&op, 1);
  CHECK(op.made);
  CHECK(op.error == EINTR);
  IoResult r = io.finish(op);
  CHECK(r.status == IoStatus::kOk);
  CHECK(r.bytes == s.size());
  CHECK(r.retries == 3);

  sys.interrupts = 10;  // more than the budget of 3 retries
  op = op_for(p.a, s);
  sys.writev_batch(&op, 1);
  r = io.finish(op);
  CHECK(r.status == IoStatus::kExhausted);
  CHECK(r.retries == 3);

  sys.interrupts = 0;
  op = op_for(p.a, s);  // not made by the batch: finish() makes it
  op.made = false;
  r = io.finish(op);
  CHECK(r.status == IoStatus::kOk);
  CHECK(drain(p.b) == s + s);
}

}  // namespace
}  // namespace sluice
