// The sluice binary under test as a child process: config, start-up wait, signals, /proc probes.
#include "tests/support/sluice_process.h"

#include <atomic>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <sstream>
#include <stdexcept>
#include <thread>

#include "tests/support/free_port.h"

#ifndef SLUICE_BINARY
#define SLUICE_BINARY "sluice"
#endif

namespace sluice::test {
namespace {

using Clock = std::chrono::steady_clock;

void replace_all(std::string* text, const std::string& from, const std::string& to) {
  for (std::size_t pos = text->find(from); pos != std::string::npos;
       pos = text->find(from, pos + to.size())) {
    text->replace(pos, from.size(), to);
  }
}

std::atomic<int> g_failed_assertions{0};

bool verbose() {
  const char* v = std::getenv("SLUICE_TEST_VERBOSE");
  return v != nullptr && std::string_view(v) == "1";
}

}  // namespace

void note_assertion_failed() {
  ++g_failed_assertions;
}

std::string sluice_binary() {
  const char* override_path = std::getenv("SLUICE_BINARY");
  return override_path != nullptr && *override_path != '\0' ? override_path : SLUICE_BINARY;
}

ProcessResult run_sluice(const std::vector<std::string>& args, std::chrono::milliseconds timeout) {
  std::vector<std::string> argv = {sluice_binary()};
  argv.insert(argv.end(), args.begin(), args.end());
  return run_process(argv, timeout);
}

std::string SluiceConfig::render() const {
  std::vector<std::pair<std::string, std::string>> top_keys = {
      {"shutdown_timeout", "5s"},
      {"log", "{ level: info, format: text }"},
  };
  auto merge = [](std::vector<std::pair<std::string, std::string>>* into,
                  const std::vector<std::pair<std::string, std::string>>& from) {
    for (const auto& [key, value] : from) {
      bool replaced = false;
      for (auto& entry : *into) {
        if (entry.first == key) {
          entry.second = value;
          replaced = true;
        }
      }
      if (!replaced) into->emplace_back(key, value);
    }
  };
  merge(&top_keys, top);

  std::ostringstream yaml_out;
  yaml_out << "# Written by the sluice test harness.\n";
  for (const auto& [key, value] : top_keys) yaml_out << key << ": " << value << "\n";
  yaml_out << "metrics:\n  listen: 127.0.0.1:" << metrics_port << "\n  path: /metrics\n";
  yaml_out << "listeners:\n  - name: " << listener_name << "\n";
  yaml_out << "    listen: 127.0.0.1:" << listen_port << "\n";
  yaml_out << "    upstreams: [";
  for (std::size_t i = 0; i < upstream_ports.size(); ++i) {
    yaml_out << (i == 0 ? "" : ", ") << "127.0.0.1:" << upstream_ports[i];
  }
  yaml_out << "]\n";
  for (const auto& [key, value] : listener) yaml_out << "    " << key << ": " << value << "\n";
  yaml_out << extra_yaml;
  return yaml_out.str();
}

SluiceProcess::SluiceProcess(SluiceConfig config, SluiceStartOptions options)
    : config_(std::move(config)), failed_assertions_at_start_(g_failed_assertions.load()) {
  const bool pick_listen_port = config_.listen_port == 0;
  const bool pick_metrics_port = config_.metrics_port == 0;
  // A port picked here can be taken by another test process before sluice
  // binds it; sluice then exits at once, and new ports are tried.
  for (int attempt = 1;; ++attempt) {
    if (pick_listen_port) config_.listen_port = free_port();
    if (pick_metrics_port) config_.metrics_port = free_port();
    if (start(options)) return;
    const bool exited = !process_.running();
    const std::string stderr_tail = tail_lines(stderr_text(), 40);
    const bool port_taken = exited && stderr_tail.find("in use") != std::string::npos;
    if (port_taken && (pick_listen_port || pick_metrics_port) && attempt < 3) continue;
    const std::string why =
        exited ? "exited during start-up (" + process_.exit_status()->describe() + ")"
               : "not listening on 127.0.0.1:" + std::to_string(port()) + " after " +
                     std::to_string(options.start_timeout.count()) + " ms";
    process_.kill();
    throw std::runtime_error("sluice " + why + "\ncommand: " + shell_quote(argv_) + "\nconfig:\n" +
                             config_text_ + "stderr:\n" + stderr_tail);
  }
}

bool SluiceProcess::start(const SluiceStartOptions& options) {
  if (config_.yaml.empty()) {
    config_text_ = config_.render();
  } else {
    config_text_ = config_.yaml;
    replace_all(&config_text_, "${LISTEN_PORT}", std::to_string(config_.listen_port));
    replace_all(&config_text_, "${METRICS_PORT}", std::to_string(config_.metrics_port));
    if (!config_.upstream_ports.empty()) {
      replace_all(&config_text_, "${UPSTREAM_PORT}", std::to_string(config_.upstream_ports[0]));
    }
  }
  write_file(config_path(), config_text_);
  argv_ = {sluice_binary(), "--config", config_path()};
  argv_.insert(argv_.end(), options.extra_args.begin(), options.extra_args.end());
  write_file(dir_ / "command", shell_quote(argv_) + "\n");

  SpawnOptions spawn;
  spawn.stdout_path = (dir_ / "sluice.stdout").string();
  spawn.stderr_path = (dir_ / "sluice.stderr").string();
  std::filesystem::remove(spawn.stdout_path);
  std::filesystem::remove(spawn.stderr_path);
  process_ = ChildProcess(argv_, spawn);
  return wait_listening(options);
}

bool SluiceProcess::wait_listening(const SluiceStartOptions& options) {
  const auto deadline = Clock::now() + options.start_timeout;
  bool listening = false;
  bool metrics = false;
  while (Clock::now() < deadline) {
    if (!process_.running()) return false;
    listening = listening || port_listening(port());
    metrics = metrics || port_listening(metrics_port());
    if (listening && metrics) return true;
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  return false;
}

SluiceProcess::~SluiceProcess() {
  ExitStatus status;
  if (process_.running()) {
    status = stop();
  } else if (process_.exit_status()) {
    status = *process_.exit_status();
  }
  const bool assertion_failed = g_failed_assertions.load() != failed_assertions_at_start_;
  if (verbose() || !status.success() || std::uncaught_exceptions() > 0 || assertion_failed) {
    std::cerr << "---- sluice (" << shell_quote(argv_) << ") ended with " << status.describe()
              << "; stderr tail:\n"
              << tail_lines(stderr_text(), 30) << "----\n";
  }
}

ExitStatus SluiceProcess::stop() {
  if (!process_.running()) return process_.exit_status().value_or(ExitStatus{});
  return process_.terminate(std::chrono::seconds(10));
}

long SluiceProcess::rss_kib() const {
  std::ifstream status("/proc/" + std::to_string(pid()) + "/status");
  std::string line;
  while (std::getline(status, line)) {
    if (line.rfind("VmRSS:", 0) == 0) return std::strtol(line.c_str() + 6, nullptr, 10);
  }
  return -1;
}

int SluiceProcess::fd_count() const {
  std::error_code error;
  int count = 0;
  for (std::filesystem::directory_iterator it("/proc/" + std::to_string(pid()) + "/fd", error), end;
       !error && it != end; it.increment(error)) {
    ++count;
  }
  return error ? -1 : count;
}

}  // namespace sluice::test
