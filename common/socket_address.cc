// Resolves host:port to the socket address sluice binds or connects to, and compares listening
// addresses by what they bind rather than by how they are written.
#include "common/socket_address.h"

#include <netdb.h>
#include <netinet/in.h>

#include <cstdint>
#include <cstring>

namespace sluice {
namespace {

// An address reduced to what identifies it: IPv4-mapped IPv6 addresses become IPv4.
struct Canonical {
  int family = AF_UNSPEC;
  unsigned char bytes[16]{};  // IPv4: the first 4
  std::uint16_t port = 0;

  bool any() const {
    static constexpr unsigned char kZero[16]{};
    return std::memcmp(bytes, kZero, sizeof bytes) == 0;
  }
};

Canonical canonical(const SocketAddress& a) {
  Canonical c;
  if (a.storage.ss_family == AF_INET) {
    const auto* in = reinterpret_cast<const sockaddr_in*>(&a.storage);
    c.family = AF_INET;
    std::memcpy(c.bytes, &in->sin_addr, 4);
    c.port = ntohs(in->sin_port);
  } else if (a.storage.ss_family == AF_INET6) {
    const auto* in6 = reinterpret_cast<const sockaddr_in6*>(&a.storage);
    c.port = ntohs(in6->sin6_port);
    if (IN6_IS_ADDR_V4MAPPED(&in6->sin6_addr)) {
      c.family = AF_INET;
      std::memcpy(c.bytes, in6->sin6_addr.s6_addr + 12, 4);
    } else {
      c.family = AF_INET6;
      std::memcpy(c.bytes, in6->sin6_addr.s6_addr, 16);
    }
  }
  return c;
}

}  // namespace

bool resolve_host_port(const HostPort& hp, SocketAddress* out, std::string* error) {
  addrinfo hints{};
  hints.ai_family = AF_UNSPEC;
  hints.ai_socktype = SOCK_STREAM;
  addrinfo* res = nullptr;
  const std::string port = std::to_string(hp.port);
  const int rc = getaddrinfo(hp.host.c_str(), port.c_str(), &hints, &res);
  if (rc != 0 || res == nullptr) {
    *error = hp.text() + ": " + (rc != 0 ? gai_strerror(rc) : "no address");
    if (res != nullptr) freeaddrinfo(res);
    return false;
  }
  std::memcpy(&out->storage, res->ai_addr, res->ai_addrlen);
  out->len = res->ai_addrlen;
  freeaddrinfo(res);
  return true;
}

bool listen_overlaps(const SocketAddress& a, const SocketAddress& b) {
  const Canonical x = canonical(a);
  const Canonical y = canonical(b);
  if (x.family == AF_UNSPEC || y.family == AF_UNSPEC) return false;
  if (x.port == 0 || x.port != y.port) return false;
  if ((x.family == AF_INET6 && x.any()) || (y.family == AF_INET6 && y.any())) return true;
  if (x.family != y.family) return false;
  return x.any() || y.any() || std::memcmp(x.bytes, y.bytes, sizeof x.bytes) == 0;
}

bool connects_to_listener(const SocketAddress& upstream, const SocketAddress& listen) {
  const Canonical u = canonical(upstream);
  const Canonical l = canonical(listen);
  if (u.family == AF_UNSPEC || l.family == AF_UNSPEC || l.port == 0 || u.port != l.port) {
    return false;
  }
  if (u.family == l.family && std::memcmp(u.bytes, l.bytes, sizeof u.bytes) == 0) return true;
  if (!l.any()) return false;
  static constexpr unsigned char kLoopback6[16] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1};
  const bool loopback =
      u.family == AF_INET ? u.bytes[0] == 127 : std::memcmp(u.bytes, kLoopback6, 16) == 0;
  // 0.0.0.0 takes IPv4 only; :: takes both, as IPV6_V6ONLY is never set.
  return loopback && (l.family == AF_INET6 || u.family == AF_INET);
}

}  // namespace sluice
