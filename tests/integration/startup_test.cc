// Start-up: names that do not resolve yet, SIGTERM during start-up, listeners on port 0, a port
// already served, too few file descriptors.
#include <doctest/doctest.h>

#include <chrono>
#include <csignal>
#include <regex>
#include <string>
#include <thread>

#include "tests/support/free_port.h"
#include "tests/support/mariadb_server.h"
#include "tests/support/metrics_scrape.h"
#include "tests/support/process.h"
#include "tests/support/raw_mysql.h"
#include "tests/support/sluice_process.h"
#include "tests/support/temp_dir.h"

namespace sluice::test {
namespace {

using namespace std::chrono_literals;

// Polls `file` until `pattern` matches it; returns the first capture group.
std::string wait_for_log(const std::filesystem::path& file, const std::regex& pattern,
                         std::chrono::milliseconds timeout) {
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  while (std::chrono::steady_clock::now() < deadline) {
    std::smatch m;
    const std::string text = std::filesystem::exists(file) ? read_file(file) : "";
    if (std::regex_search(text, m, pattern)) return m.size() > 1 ? m[1].str() : m[0].str();
    std::this_thread::sleep_for(20ms);
  }
  return {};
}

TEST_CASE("startup: an upstream name that does not resolve is not fatal and fails over") {
  MariaDbServer server;
  SluiceConfig config;
  config.yaml =
      "metrics:\n  listen: 127.0.0.1:${METRICS_PORT}\n"
      "listeners:\n  - name: main\n    listen: 127.0.0.1:${LISTEN_PORT}\n"
      "    upstreams: [no-such-host.invalid:3306, 127.0.0.1:${UPSTREAM_PORT}]\n";
  config.upstream_ports = {server.port()};
  SluiceProcess sluice(config);
  // Round robin starts each session at the next upstream: two sessions make
  // sure one of them starts at the unresolved name and fails over.
  for (int i = 0; i < 2; ++i) {
    RawMysqlClient client;
    REQUIRE_MESSAGE(client.connect(sluice.port()), client.last_error());
    const auto login = client.handshake();
    CHECK_MESSAGE(login.logged_in, login.failure);
  }
  const std::string m = http_get(sluice.metrics_port());
  CHECK(metric_value(m, "sluice_upstream_connect_errors_total",
                     {{"upstream", "no-such-host.invalid:3306"}}) >= 1);
  CHECK(sluice.stderr_text().find("upstream_unresolved") != std::string::npos);
  // Named as a config error names the key.
  CHECK(sluice.stderr_text().find("listeners[0].upstreams: ") != std::string::npos);
}

TEST_CASE("startup: SIGTERM during start-up drains and exits 0") {
  TempDir dir("sluice-startup");
  // Signals are held from the first line of main(). Before main runs (exec,
  // dynamic loading) a signal kills any program, so the rounds start there.
  for (int round = 0; round < 10; ++round) {
    CAPTURE(round);
    write_file(dir / "sluice.yaml",
               "metrics:\n  listen: 127.0.0.1:" + std::to_string(free_port()) +
                   "\nlisteners:\n  - listen: 127.0.0.1:" + std::to_string(free_port()) +
                   "\n    upstreams: [127.0.0.1:9]\n");
    ChildProcess sluice({sluice_binary(), "--config", (dir / "sluice.yaml").string()});
    // Into start-up: past exec and dynamic loading, then 0..9 ms further.
    for (int i = 0; i < 500; ++i) {
      const std::string status = read_file("/proc/" + std::to_string(sluice.pid()) + "/status");
      if (status.find("SigBlk:\t0000000000004003") != std::string::npos) break;  // HUP INT TERM
      std::this_thread::sleep_for(std::chrono::microseconds(200));
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(round));
    sluice.send_signal(SIGTERM);
    const auto status = sluice.wait_exit(10s);
    REQUIRE(status.has_value());
    CHECK_MESSAGE(status->success(), status->describe());
  }
}

TEST_CASE(
    "startup: a listener on port 0 gets one port, shared by every worker, and the log names it and "
    "the metrics port the kernel chose") {
  MariaDbServer server;
  TempDir dir("sluice-port0");
  write_file(dir / "sluice.yaml",
             "workers: 2\nmetrics:\n  listen: 127.0.0.1:0"
             "\nlisteners:\n  - listen: 127.0.0.1:0\n"
             "    upstreams: [127.0.0.1:" +
                 std::to_string(server.port()) + "]\n");
  ChildProcess sluice({sluice_binary(), "--config", (dir / "sluice.yaml").string()},
                      {.stderr_path = (dir / "sluice.stderr").string()});
  const std::string port_text =
      wait_for_log(dir / "sluice.stderr", std::regex(R"(listen=127\.0\.0\.1:(\d+))"), 10s);
  REQUIRE_FALSE(port_text.empty());
  const int port = std::stoi(port_text);
  CHECK(port != 0);
  const std::string metrics_text =
      wait_for_log(dir / "sluice.stderr", std::regex(R"(metrics=127\.0\.0\.1:(\d+)/metrics)"), 10s);
  REQUIRE_FALSE(metrics_text.empty());
  const int metrics_port = std::stoi(metrics_text);
  REQUIRE(metrics_port != 0);
  // With SO_REUSEPORT the kernel spreads connections over both workers'
  // sockets: every login must land on a socket bound to that same port.
  for (int i = 0; i < 8; ++i) {
    RawMysqlClient client;
    REQUIRE_MESSAGE(client.connect(port), client.last_error());
    const auto login = client.handshake();
    CHECK_MESSAGE(login.logged_in, login.failure);
  }
  const std::string m = http_get(metrics_port);
  CHECK(metric_value(m, "sluice_connections_total") == 8);
  CHECK(sluice.terminate(10s).success());
}

TEST_CASE(
    "startup: a port (or metrics port) another sluice serves is address in use and exit 1, the "
    "first keeps it") {
  MariaDbServer server;
  SluiceProcess first({.upstream_ports = {server.port()}});
  TempDir dir("sluice-second");
  write_file(dir / "sluice.yaml",
             "metrics:\n  listen: 127.0.0.1:" + std::to_string(free_port()) +
                 "\nlisteners:\n  - listen: 127.0.0.1:" + std::to_string(first.port()) +
                 "\n    upstreams: [127.0.0.1:" + std::to_string(server.port()) + "]\n");
  // SO_REUSEPORT would let the second bind too and take part of the connections.
  const ProcessResult second = run_sluice({"--config", (dir / "sluice.yaml").string()}, 10s);
  CHECK_FALSE(second.timed_out);
  CHECK_MESSAGE((second.status.exited && second.status.code == 1), second.status.describe(), "\n",
                second.err);
  CHECK_MESSAGE(second.err.find("listen_failed error=\"listeners[0].listen 127.0.0.1:" +
                                std::to_string(first.port()) + ": Address already in use\"") !=
                    std::string::npos,
                second.err);
  CHECK(second.err.find(" started ") == std::string::npos);
  // Every connection still reaches the first one.
  REQUIRE(first.running());
  for (int i = 0; i < 4; ++i) {
    RawMysqlClient client;
    REQUIRE_MESSAGE(client.connect(first.port()), client.last_error());
    const auto login = client.handshake();
    CHECK_MESSAGE(login.logged_in, login.failure);
  }
  CHECK(metric_value(http_get(first.metrics_port()), "sluice_connections_total") == 4);

  // The same for the first one's metrics address, named by its key.
  write_file(dir / "sluice.yaml",
             "metrics:\n  listen: 127.0.0.1:" + std::to_string(first.metrics_port()) +
                 "\nlisteners:\n  - listen: 127.0.0.1:" + std::to_string(free_port()) +
                 "\n    upstreams: [127.0.0.1:" + std::to_string(server.port()) + "]\n");
  const ProcessResult third = run_sluice({"--config", (dir / "sluice.yaml").string()}, 10s);
  CHECK_MESSAGE((third.status.exited && third.status.code == 1), third.status.describe(), "\n",
                third.err);
  CHECK_MESSAGE(third.err.find("metrics_listen_failed error=\"metrics.listen 127.0.0.1:" +
                               std::to_string(first.metrics_port()) +
                               ": Address already in use\"") != std::string::npos,
                third.err);
  CHECK(metric_value(http_get(first.metrics_port()), "sluice_connections_total") == 4);
}

TEST_CASE("startup: too few file descriptors is an error and exit 1, never a crash") {
  // 16 workers each take an epoll fd, an eventfd and a timerfd before any
  // listener, the metrics server some more: limits across that range run
  // out at a different one of them each (below 32 sluice refuses at once,
  // before libuv's own set-up, which would abort).
  TempDir dir("sluice-fds");
  write_file(dir / "sluice.yaml",
             "workers: 16\nmetrics:\n  listen: 127.0.0.1:0\nlisteners:\n"
             "  - listen: 127.0.0.1:0\n    upstreams: [127.0.0.1:1]\n");
  auto run_with = [&](int limit) {
    const std::string nofile = "--nofile=" + std::to_string(limit) + ":" + std::to_string(limit);
    return run_process(
        {"prlimit", nofile, sluice_binary(), "--config", (dir / "sluice.yaml").string()}, 1500ms);
  };
  for (int limit = 8; limit <= 72; limit += 4) {
    CAPTURE(limit);
    const ProcessResult r = run_with(limit);
    CHECK_FALSE(r.timed_out);
    CHECK_MESSAGE((r.status.exited && r.status.code == 1), r.status.describe(), "\n", r.err);
    CHECK(r.err.find(" error ") != std::string::npos);
  }
  // With enough, the same configuration runs.
  CHECK(run_with(4096).timed_out);
}

}  // namespace
}  // namespace sluice::test
