// The sluice binary under test as a child process: config, start-up wait, signals, /proc probes.
#pragma once

#include <sys/types.h>

#include <chrono>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "tests/support/process.h"
#include "tests/support/temp_dir.h"

namespace sluice::test {

// The YAML config a test runs sluice with. Either built from the fields (one
// listener on free ports in front of `upstream_ports`, with test defaults), or
// given whole as `yaml`.
struct SluiceConfig {
  // Verbatim YAML; when set, the builder fields below except the ports are
  // ignored. "${LISTEN_PORT}" and "${METRICS_PORT}" in it are replaced with the
  // ports chosen below, "${UPSTREAM_PORT}" with upstream_ports[0].
  std::string yaml;

  std::vector<int> upstream_ports;  // each becomes 127.0.0.1:<port>
  int listen_port = 0;              // 0: a free port
  int metrics_port = 0;             // 0: a free port
  std::string listener_name = "main";
  // Extra keys for the listener and for the top level, as YAML scalars or flow
  // values, e.g. {"max_allowed_packet", "1M"}, {"workers", "1"}. A top-level
  // key given here replaces the harness default of the same name.
  std::vector<std::pair<std::string, std::string>> listener;
  std::vector<std::pair<std::string, std::string>> top;
  // Appended at the end, e.g. an `errors:` section.
  std::string extra_yaml;

  // Test defaults: shutdown_timeout 5s (so stop() rarely needs SIGKILL),
  // log level info, text format.
  std::string render() const;  // ports must be resolved (non-zero) first
};

struct SluiceStartOptions {
  std::vector<std::string> extra_args;  // after `--config PATH`, e.g. {"--set", "k=v"}
  // How long the listener (and the metrics port) may take to accept.
  std::chrono::milliseconds start_timeout{10000};
};

// Runs SLUICE_BINARY (or $SLUICE_BINARY from the environment, e.g. a sanitizer
// build) with the config, stderr captured to a file. The constructor returns
// once the listen port and the metrics port are in LISTEN state (seen in
// /proc/net/tcp, so no probe connection shows up in sluice's metrics), and throws
// (with sluice's stderr) when sluice exits or does not listen in time. The
// destructor stops it (SIGTERM, SIGKILL after 10 s) and prints the tail of its
// stderr when it ended badly, an assertion failed while it ran, or
// SLUICE_TEST_VERBOSE=1.
class SluiceProcess {
 public:
  explicit SluiceProcess(SluiceConfig config, SluiceStartOptions options = {});
  ~SluiceProcess();
  SluiceProcess(const SluiceProcess&) = delete;
  SluiceProcess& operator=(const SluiceProcess&) = delete;

  int port() const { return config_.listen_port; }
  int metrics_port() const { return config_.metrics_port; }
  pid_t pid() const { return process_.pid(); }
  const std::string& config_text() const { return config_text_; }
  std::string config_path() const { return (dir_ / "sluice.yaml").string(); }
  bool running() { return process_.running(); }

  void send_signal(int signal_number) const { process_.send_signal(signal_number); }
  // nullopt while still running after `timeout`.
  std::optional<ExitStatus> wait_exit(std::chrono::milliseconds timeout) {
    return process_.wait_exit(timeout);
  }
  // SIGTERM, then SIGKILL when it has not exited within 10 s.
  ExitStatus stop();

  std::string stderr_text() const { return read_file(dir_ / "sluice.stderr"); }
  // Resident set size (VmRSS) and open descriptors, from /proc/<pid>.
  long rss_kib() const;
  int fd_count() const;

 private:
  // Writes the config, spawns sluice and waits for its ports; false when it
  // exited or did not listen in time.
  bool start(const SluiceStartOptions& options);
  bool wait_listening(const SluiceStartOptions& options);

  SluiceConfig config_;
  TempDir dir_{"sluice-proc"};
  std::string config_text_;
  int failed_assertions_at_start_;
  std::vector<std::string> argv_;
  ChildProcess process_;
};

// The test runner calls this when an assertion fails (see the integration
// tests' doctest listener), so that a SluiceProcess ending afterwards prints
// its stderr even though nothing threw.
void note_assertion_failed();

// The sluice executable the tests run.
std::string sluice_binary();
// Runs sluice with `args` to completion (for --version, --check, bad configs).
ProcessResult run_sluice(const std::vector<std::string>& args,
                         std::chrono::milliseconds timeout = std::chrono::seconds(30));

}  // namespace sluice::test
