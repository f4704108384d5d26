// Refuses a listen address that another socket already listens on, before sluice binds it.
#include "proxy/listen_probe.h"

#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include "proxy/runtime_config.h"

namespace sluice {
namespace {

// The probes bound so far, closed together: each must still hold its address while the next
// is bound, so two listeners on one address collide.
class Probes {
 public:
  Probes() = default;
  Probes(const Probes&) = delete;
  Probes& operator=(const Probes&) = delete;
  ~Probes() {
    for (const int fd : fds_) ::close(fd);
  }
  void hold(int fd) { fds_.push_back(fd); }

 private:
  std::vector<int> fds_;
};

// Binds and listens on `listen` (port 0 skipped), kept open in `probes`.
bool probe(const std::string& key, const HostPort& listen, Probes& probes, std::string* error) {
  if (listen.port == 0) return true;
  ResolvedAddress addr;
  std::string why;
  if (!resolve_address(listen, &addr, &why)) {
    *error = key + " " + why;
    return false;
  }
  const int fd = ::socket(addr.addr.ss_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) {
    *error = key + " " + addr.text + ": " + std::strerror(errno);
    return false;
  }
  probes.hold(fd);
  // SO_REUSEADDR, as the workers set it: connections of an earlier run left in TIME_WAIT
  // must not count as the address being in use. It never admits a second listening socket.
  const int one = 1;
  if (::setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one) != 0 ||
      ::bind(fd, reinterpret_cast<const sockaddr*>(&addr.addr), addr.len) != 0 ||
      ::listen(fd, 1) != 0) {
    *error = key + " " + addr.text + ": " + std::strerror(errno);
    return false;
  }
  return true;
}

}  // namespace

bool probe_listen_addresses(const std::vector<ListenerConfig>& listeners, std::string* error) {
  Probes probes;
  for (std::size_t i = 0; i < listeners.size(); ++i) {
    const std::string key = "listeners[" + std::to_string(i) + "].listen";
    if (!probe(key, listeners[i].listen, probes, error)) return false;
  }
  return true;
}

bool probe_metrics_address(const HostPort& listen, std::string* error) {
  Probes probes;
  return probe("metrics.listen", listen, probes, error);
}

}  // namespace sluice
