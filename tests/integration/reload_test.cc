// SIGHUP reload of keys that need a restart: the reload logs each one and the running value stays.
#include <doctest/doctest.h>

#include <chrono>
#include <csignal>
#include <string>
#include <thread>

#include "tests/support/free_port.h"
#include "tests/support/metrics_scrape.h"
#include "tests/support/sluice_process.h"
#include "tests/support/temp_dir.h"

namespace sluice::test {
namespace {

using namespace std::chrono_literals;

// Waits until sluice's stderr holds `text`; false after `timeout`.
bool wait_for_log(SluiceProcess& sluice, const std::string& text,
                  std::chrono::milliseconds timeout) {
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  while (sluice.stderr_text().find(text) == std::string::npos) {
    if (std::chrono::steady_clock::now() >= deadline) return false;
    std::this_thread::sleep_for(20ms);
  }
  return true;
}

std::string replaced(std::string text, const std::string& from, const std::string& to) {
  const std::size_t at = text.find(from);
  REQUIRE(at != std::string::npos);
  return text.replace(at, from.size(), to);
}

TEST_CASE("reload: a changed metrics.path needs a restart, is logged, and the old path serves") {
  // Nothing listens on the upstream: no client connects in this test.
  SluiceProcess sluice({.upstream_ports = {free_port()}});
  REQUIRE(http_request(sluice.metrics_port(), "/metrics").status == 200);
  write_file(sluice.config_path(),
             replaced(sluice.config_text(), "path: /metrics\n", "path: /elsewhere\n"));
  sluice.send_signal(SIGHUP);
  REQUIRE_MESSAGE(wait_for_log(sluice, "info reloaded", 10s), sluice.stderr_text());
  const std::string log = sluice.stderr_text();
  CHECK_MESSAGE(log.find("warn reload_needs_restart key=metrics.path") != std::string::npos, log);
  CHECK(http_request(sluice.metrics_port(), "/metrics").status == 200);
  CHECK(http_request(sluice.metrics_port(), "/elsewhere").status == 404);
}

TEST_CASE("reload: metrics basic auth added by a reload needs a restart and is logged") {
  SluiceProcess sluice({.upstream_ports = {free_port()}});
  TempDir dir("sluice-reload");
  write_file(dir / "password", "secret\n");
  write_file(sluice.config_path(), replaced(sluice.config_text(), "path: /metrics\n",
                                            "path: /metrics\n  username: prom\n  password_file: " +
                                                (dir / "password").string() + "\n"));
  sluice.send_signal(SIGHUP);
  REQUIRE_MESSAGE(wait_for_log(sluice, "info reloaded", 10s), sluice.stderr_text());
  const std::string log = sluice.stderr_text();
  CHECK_MESSAGE(log.find("reload_needs_restart key=metrics.username") != std::string::npos, log);
  CHECK_MESSAGE(log.find("reload_needs_restart key=metrics.password_file") != std::string::npos,
                log);
  CHECK(http_request(sluice.metrics_port(), "/metrics").status == 200);  // still no auth
}

}  // namespace
}  // namespace sluice::test
