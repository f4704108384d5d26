// A loaded config plus what the runtime derives from it once: resolved upstream addresses.
#include "proxy/runtime_config.h"

#include <arpa/inet.h>

#include "common/socket_address.h"

namespace sluice {

bool resolve_address(const HostPort& hp, ResolvedAddress* out, std::string* error) {
  SocketAddress address;
  if (!resolve_host_port(hp, &address, error)) return false;
  out->addr = address.storage;
  out->len = address.len;
  out->text = hp.text();
  return true;
}

std::shared_ptr<const RuntimeConfig> make_runtime_config(Config config,
                                                         std::vector<std::string>* warnings) {
  auto rc = std::make_shared<RuntimeConfig>();
  for (std::size_t i = 0; i < config.listeners.size(); ++i) {
    const ListenerConfig& l = config.listeners[i];
    std::vector<ResolvedAddress> list;
    for (const HostPort& hp : l.upstreams) {
      ResolvedAddress a;
      std::string error;
      in6_addr probe{};
      a.numeric = ::inet_pton(AF_INET, hp.host.c_str(), &probe) == 1 ||
                  ::inet_pton(AF_INET6, hp.host.c_str(), &probe) == 1;
      if (!resolve_address(hp, &a, &error)) {
        a.len = 0;
        // Named as config errors name keys.
        warnings->push_back("listeners[" + std::to_string(i) + "].upstreams: " + error +
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
