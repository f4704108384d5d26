// A connected, non-blocking AF_UNIX stream socket pair for unit tests, closed on scope exit.
#pragma once

#include <doctest/doctest.h>

#include <sys/socket.h>
#include <unistd.h>

namespace sluice::testing {

struct SocketPair {
  int a = -1, b = -1;
  SocketPair() {
    int fds[2];
    REQUIRE(::socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK, 0, fds) == 0);
    a = fds[0];
    b = fds[1];
  }
  ~SocketPair() {
    ::close(a);
    ::close(b);
  }
  SocketPair(const SocketPair&) = delete;
  SocketPair& operator=(const SocketPair&) = delete;
};

}  // namespace sluice::testing
