// Resolves host:port to the socket address sluice binds or connects to, and compares listening
// addresses by what they bind rather than by how they are written.
#pragma once

#include <sys/socket.h>

#include <string>

#include "common/config.h"

namespace sluice {

struct SocketAddress {
  sockaddr_storage storage{};
  socklen_t len = 0;
  const sockaddr* get() const { return reinterpret_cast<const sockaddr*>(&storage); }
};

// The first address getaddrinfo gives for `hp` (a numeric address or a name). Listeners bind
// it and upstreams connect to it, so the configuration checks use the same rule. Returns false
// and sets `error` ("host:port: <reason>") when it cannot.
bool resolve_host_port(const HostPort& hp, SocketAddress* out, std::string* error);

// Whether two listening addresses would take each other's connections: the same address and
// port (an IPv4-mapped IPv6 address being its IPv4 address), or a wildcard that covers the
// other (0.0.0.0 every IPv4 address, :: every address, as IPV6_V6ONLY is never set). Port 0
// asks the kernel for a free port, so it never collides.
bool listen_overlaps(const SocketAddress& a, const SocketAddress& b);

// Whether connecting to `upstream` would reach a socket listening on `listen`: the same address
// and port, or a loopback address on the port of a wildcard listener. (A wildcard listener also
// takes the host's other addresses, but which those are is not known here.)
bool connects_to_listener(const SocketAddress& upstream, const SocketAddress& listen);

}  // namespace sluice
