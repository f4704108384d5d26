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

// Holds SIGTERM/SIGINT/SIGHUP until run_server's handlers exist; call first
// thing in main, before any thread starts (threads inherit the mask).
void hold_control_signals();

// Runs until drained; returns the process exit code.
int run_server(const ServerOptions& options, Config config);

}  // namespace sluice
