// A loaded config plus what the runtime derives from it once: resolved upstream addresses.
#include "proxy/runtime_config.h"

#include <arpa/inet.h>
#include <netdb.h>

#include <cstring>

namespace sluice {

bool resolve_address(const HostPort& hp, ResolvedAddress* out, std::string* error) {
  addrinfo hints{};
  hints.ai_family = AF_UNSPEC;
  hints.ai_socktype = SOCK_STREAM;
  addrinfo* res = nullptr;
  const std::string port = std::to_string(hp.port);
  const int rc = getaddrinfo(hp.host.c_str(), port.c_str(), &hints, &res);
  if (rc != 0 || res == nullptr) {
    *error = hp.text() + ": " + gai_strerror(rc);
    return false;
  }
  std::memcpy(&out->addr, res->ai_addr, res->ai_addrlen);
  out->len = res->ai_addrlen;
  out->text = hp.text();
  freeaddrinfo(res);
  return true;
}

std::shared_ptr<const RuntimeConfig> make_runtime_config(Config config,
                                                         std::vector<std::string>* warnings) {
  auto rc = std::make_shared<RuntimeConfig>();
  for (const ListenerConfig& l : config.listeners) {
    std::vector<ResolvedAddress> list;
    for (const HostPort& hp : l.upstreams) {
      ResolvedAddress a;
      std::string error;
      in6_addr probe{};
      a.numeric = ::inet_pton(AF_INET, hp.host.c_str(), &probe) == 1 ||
                  ::inet_pton(AF_INET6, hp.host.c_str(), &probe) == 1;
      if (!resolve_address(hp, &a, &error)) {
        a.len = 0;
        warnings->push_back("listeners." + l.name + ".upstreams: " + error +
                            " (counted as a failed attempt until it resolves)");
      }
      a.text = hp.text();
      a.where = hp;
      list.push_back(std::move(a));
    }
    rc->upstreams.push_back(std::move(list));
  }
  rc->config = std::move(config);
  return rc;
}

}  // namespace sluice
