// Command line: sluice [--config PATH] [--set key=value ...] [--check] | --version.
#include <cstdio>
#include <cstring>
#include <string>
#include <string_view>

#include "common/config_loader.h"
#include "proxy/server.h"

namespace {

constexpr const char* kUsage =
    "usage: sluice [--config PATH] [--set key=value ...] [--check]\n"
    "       sluice --version\n"
    "\n"
    "  --config PATH    configuration file (default: conf/sluice.yaml)\n"
    "  --set KEY=VALUE  override one key, e.g. --set listeners.0.max_allowed_packet=16M\n"
    "                   (also --set=KEY=VALUE; validated like the file; repeatable)\n"
    "  --check          validate the configuration, print problems, exit 0 or 1\n"
    "  --version        print the version\n";

}  // namespace

int main(int argc, char** argv) {
  // A SIGTERM during start-up (config loading included) must drain, not
  // kill: the signals are held until the server's handlers exist.
  sluice::hold_control_signals();
  sluice::ServerOptions options;
  options.config_path = "conf/sluice.yaml";
  bool check = false;
  for (int i = 1; i < argc; ++i) {
    const std::string_view arg = argv[i];
    auto value = [&](std::string_view name) -> const char* {
      if (i + 1 >= argc) {
        std::fprintf(stderr, "sluice: %.*s needs a value\n%s", static_cast<int>(name.size()),
                     name.data(), kUsage);
        std::exit(2);
      }
      return argv[++i];
    };
    if (arg == "--version" || arg == "-V") {
      std::printf("sluice %s\n", SLUICE_VERSION);
      return 0;
    } else if (arg == "--help" || arg == "-h") {
      std::fputs(kUsage, stdout);
      return 0;
    } else if (arg == "--config" || arg == "-c") {
      options.config_path = value(arg);
    } else if (arg.starts_with("--config=")) {
      options.config_path = std::string(arg.substr(9));
    } else if (arg == "--set") {
      options.overrides.emplace_back(value(arg));
    } else if (arg.starts_with("--set=")) {
      options.overrides.emplace_back(arg.substr(6));
    } else if (arg == "--check") {
      check = true;
    } else {
      std::fprintf(stderr, "sluice: unknown argument '%s'\n%s", argv[i], kUsage);
      return 2;
    }
  }
  sluice::LoadedConfig loaded = sluice::load_config_file(options.config_path, options.overrides);
  if (check) {
    // A running sluice logs its warnings in its own log format instead.
    for (const std::string& w : loaded.config.warnings) {
      std::fprintf(stderr, "%s: warning: %s\n", options.config_path.c_str(), w.c_str());
    }
  }
  if (!loaded.ok()) {
    for (const sluice::ConfigProblem& p : loaded.problems) {
      std::fprintf(stderr, "%s: %s\n", options.config_path.c_str(), p.text().c_str());
    }
    return 1;
  }
  if (check) {
    std::printf("%s: configuration ok\n", options.config_path.c_str());
    return 0;
  }
  return sluice::run_server(options, std::move(loaded.config));
}
