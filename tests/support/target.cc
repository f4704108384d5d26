// What a test's clients connect to: sluice in front of a server, or the server in direct mode.
#include "tests/support/target.h"

#include <cstdlib>
#include <string_view>

namespace sluice::test {

bool direct_mode() {
  const char* value = std::getenv("SLUICE_TEST_DIRECT");
  return value != nullptr && std::string_view(value) == "1";
}

Target::Target(const MariaDbServer& server, SluiceConfig config, SluiceStartOptions options)
    : server_port_(server.port()) {
  if (direct_mode()) return;
  if (config.upstream_ports.empty()) config.upstream_ports.push_back(server.port());
  sluice_ = std::make_unique<SluiceProcess>(std::move(config), std::move(options));
}

ConnectOptions Target::options() const {
  ConnectOptions options;
  options.host = "127.0.0.1";
  options.port = port();
  return options;
}

}  // namespace sluice::test
