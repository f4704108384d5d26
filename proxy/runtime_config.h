// A loaded config plus what the runtime derives from it once: resolved upstream addresses.
#pragma once

#include <sys/socket.h>

#include <memory>
#include <string>
#include <vector>

#include "common/config.h"

namespace sluice {

struct ResolvedAddress {
  sockaddr_storage addr{};
  socklen_t len = 0;    // 0: not resolved (yet)
  std::string text;     // as configured, for logs and the `upstream` label
  HostPort where;       // as configured
  bool numeric = true;  // an address, not a name: never looked up again
};

// Immutable once built; workers share it through shared_ptr and swap it on reload.
struct RuntimeConfig {
  Config config;
  // upstreams[listener][i], in config order.
  std::vector<std::vector<ResolvedAddress>> upstreams;
};

// Resolves host:port (numeric or a name, via getaddrinfo). Returns false and
// sets `error` when it cannot.
bool resolve_address(const HostPort& hp, ResolvedAddress* out, std::string* error);

// Builds the runtime view. An upstream name that does not resolve yet is kept
// unresolved (workers keep trying) and reported in `warnings`.
std::shared_ptr<const RuntimeConfig> make_runtime_config(Config config,
                                                         std::vector<std::string>* warnings);

}  // namespace sluice
