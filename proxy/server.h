// The process: workers, the metrics endpoint, signals (drain on TERM/INT, reload on HUP).
#pragma once

#include <string>
#include <vector>

#include "common/config_loader.h"

namespace sluice {

struct ServerOptions {
  std::string config_path;
  std::vector<std::string> overrides;  // --set key=value, re-applied on reload
};

// Runs until drained; returns the process exit code.
int run_server(const ServerOptions& options, Config config);

}  // namespace sluice
