// probe_listen_addresses / probe_metrics_address: a port held by a SO_REUSEPORT listener, or
// twice in one config, fails.
#include "proxy/listen_probe.h"

#include <doctest/doctest.h>

#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <string>
#include <vector>

namespace sluice {
namespace {

// A loopback listener with SO_REUSEADDR and SO_REUSEPORT, as a worker (of this or another
// sluice) opens it, on a port the kernel picks.
class ReuseportListener {
 public:
  ReuseportListener() {
    fd_ = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    REQUIRE(fd_ >= 0);
    const int one = 1;
    ::setsockopt(fd_, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    ::setsockopt(fd_, SOL_SOCKET, SO_REUSEPORT, &one, sizeof one);
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    REQUIRE(::bind(fd_, reinterpret_cast<const sockaddr*>(&addr), sizeof addr) == 0);
    REQUIRE(::listen(fd_, 8) == 0);
    socklen_t len = sizeof addr;
    REQUIRE(::getsockname(fd_, reinterpret_cast<sockaddr*>(&addr), &len) == 0);
    port_ = ntohs(addr.sin_port);
  }
  ~ReuseportListener() { ::close(fd_); }
  ReuseportListener(const ReuseportListener&) = delete;
  ReuseportListener& operator=(const ReuseportListener&) = delete;
  std::uint16_t port() const { return port_; }

 private:
  int fd_ = -1;
  std::uint16_t port_ = 0;
};

ListenerConfig listener_on(std::string host, std::uint16_t port) {
  ListenerConfig l;
  l.listen = {std::move(host), port};
  return l;
}

TEST_CASE("a port another SO_REUSEPORT listener holds is in use") {
  std::uint16_t port = 0;
  {
    const ReuseportListener other;
    port = other.port();
    std::string error;
    CHECK_FALSE(probe_listen_addresses({listener_on("127.0.0.1", port)}, &error));
    CHECK(error ==
          "listeners[0].listen 127.0.0.1:" + std::to_string(port) + ": Address already in use");
    // The wildcard covers it too.
    CHECK_FALSE(probe_listen_addresses({listener_on("0.0.0.0", port)}, &error));
    // The metrics endpoint is probed the same way, and named by its key.
    CHECK_FALSE(probe_metrics_address({"127.0.0.1", port}, &error));
    CHECK(error == "metrics.listen 127.0.0.1:" + std::to_string(port) + ": Address already in use");
  }
  // Once it is closed the port is free, and the probe leaves it free for the workers.
  std::string error;
  CHECK_MESSAGE(probe_listen_addresses({listener_on("127.0.0.1", port)}, &error), error);
  CHECK_MESSAGE(probe_listen_addresses({listener_on("127.0.0.1", port)}, &error), error);
}

TEST_CASE("two listeners of one config on one address collide, port 0 never does") {
  std::uint16_t port = 0;
  {
    const ReuseportListener free_now;
    port = free_now.port();
  }
  std::string error;
  CHECK_FALSE(probe_listen_addresses(
      {listener_on("127.0.0.1", port), listener_on("127.0.0.1", port)}, &error));
  CHECK(error.starts_with("listeners[1].listen 127.0.0.1:"));
  CHECK_MESSAGE(
      probe_listen_addresses({listener_on("127.0.0.1", 0), listener_on("127.0.0.1", 0)}, &error),
      error);
}

}  // namespace
}  // namespace sluice
