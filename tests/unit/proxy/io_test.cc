// Io: the EINTR retry budget, retry counting and errno mapping, with injected faults.
#include <doctest/doctest.h>

#include <fcntl.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cstring>
#include <string>

#include "fault_syscalls.h"
#include "proxy/io.h"
#include "socket_pair.h"

namespace sluice {
namespace {

using testing::Fault;
using testing::FaultSyscalls;

using testing::SocketPair;

TEST_CASE("io: EINTR n times then success retries n times and moves the bytes") {
  FaultSyscalls sys;
  Io io(sys, 10);
  SocketPair sp;
  REQUIRE(::write(sp.b, "hello", 5) == 5);
  sys.reads.push_back({EINTR, 0, 3});
  char buf[16];
  iovec iov{buf, sizeof buf};
  const IoResult r = io.read(sp.a, &iov, 1);
  CHECK(r.status == IoStatus::kOk);
  CHECK(r.bytes == 5);
  CHECK(r.retries == 3);
  CHECK(sys.read_calls == 4);
  CHECK(std::memcmp(buf, "hello", 5) == 0);
}

TEST_CASE("io: EINTR forever fails after exactly the budget's retries") {
  FaultSyscalls sys;
  Io io(sys, 10);
  SocketPair sp;
  sys.writes.push_back({EINTR, 0, -1});
  iovec iov{const_cast<char*>("x"), 1};
  const IoResult r = io.write(sp.a, &iov, 1);
  CHECK(r.status == IoStatus::kExhausted);
  CHECK(r.retries == 10);
  CHECK(sys.write_calls == 11);  // the call, then ten retries
}

TEST_CASE("io: a budget of 0 never retries - EINTR budget exactly spent still succeeds") {
  FaultSyscalls sys;
  SocketPair sp;
  REQUIRE(::write(sp.b, "z", 1) == 1);
  char c;
  iovec iov{&c, 1};
  Io strict(sys, 0);
  sys.reads.push_back({EINTR, 0, 1});
  CHECK(strict.read(sp.a, &iov, 1).status == IoStatus::kExhausted);
  Io io(sys, 2);
  sys.reads.push_back({EINTR, 0, 2});
  const IoResult r = io.read(sp.a, &iov, 1);
  CHECK(r.status == IoStatus::kOk);
  CHECK(r.retries == 2);
}

TEST_CASE("io: EAGAIN is not a retry - EOF and errors are mapped") {
  FaultSyscalls sys;
  Io io(sys, 10);
  SocketPair sp;
  char buf[8];
  iovec iov{buf, sizeof buf};
  IoResult r = io.read(sp.a, &iov, 1);  // nothing there: the real EAGAIN
  CHECK(r.status == IoStatus::kWouldBlock);
  CHECK(r.retries == 0);
  sys.reads.push_back({ECONNRESET});
  r = io.read(sp.a, &iov, 1);
  CHECK(r.status == IoStatus::kError);
  CHECK(r.error == ECONNRESET);
  sys.writes.push_back({EPIPE});
  r = io.write(sp.a, &iov, 1);
  CHECK(r.status == IoStatus::kError);
  CHECK(r.error == EPIPE);
  ::shutdown(sp.b, SHUT_WR);
  r = io.read(sp.a, &iov, 1);
  CHECK(r.status == IoStatus::kEof);
}

TEST_CASE("io: short writes of one byte report one byte") {
  FaultSyscalls sys;
  Io io(sys, 10);
  SocketPair sp;
  sys.writes.push_back({0, 1, 3});
  const char* msg = "abcdef";
  std::size_t sent = 0;
  while (sent < 6) {
    iovec iov{const_cast<char*>(msg + sent), 6 - sent};
    const IoResult r = io.write(sp.a, &iov, 1);
    REQUIRE(r.status == IoStatus::kOk);
    sent += r.bytes;
  }
  CHECK(sys.write_calls == 4);  // three 1-byte writes, then the rest
  char buf[8] = {};
  REQUIRE(::read(sp.b, buf, sizeof buf) == 6);
  CHECK(std::string(buf, 6) == "abcdef");
}

TEST_CASE("io: accept and connect retry EINTR - a retried connect reports progress or done") {
  FaultSyscalls sys;
  Io io(sys, 5);
  const int lfd = ::socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  REQUIRE(::bind(lfd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) == 0);
  REQUIRE(::listen(lfd, 8) == 0);
  socklen_t len = sizeof addr;
  ::getsockname(lfd, reinterpret_cast<sockaddr*>(&addr), &len);

  const int cfd = ::socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0);
  sys.connects.push_back({EINTR, 0, 2});
  IoResult r = io.connect(cfd, reinterpret_cast<sockaddr*>(&addr), sizeof addr);
  CHECK(r.retries == 2);
  CHECK((r.status == IoStatus::kOk || r.status == IoStatus::kInProgress));

  sys.accepts.push_back({EINTR, 0, 4});
  for (int i = 0; i < 100; ++i) {
    r = io.accept(lfd);
    if (r.status != IoStatus::kWouldBlock) break;
    ::usleep(1000);
  }
  CHECK(r.status == IoStatus::kOk);
  CHECK(r.retries == 4);
  ::close(r.fd);
  ::close(cfd);

  // EINTR beyond the budget fails the connect attempt.
  const int c2 = ::socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0);
  sys.connects.push_back({EINTR, 0, -1});
  r = io.connect(c2, reinterpret_cast<sockaddr*>(&addr), sizeof addr);
  CHECK(r.status == IoStatus::kExhausted);
  CHECK(r.retries == 5);
  sys.connects.clear();
  ::close(c2);
  ::close(lfd);
}

}  // namespace
}  // namespace sluice
