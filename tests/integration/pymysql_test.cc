// PyMySQL through sluice sees exactly what it sees directly: the same transcript of one fixed
// workload.
#include <doctest/doctest.h>

#include <chrono>
#include <filesystem>
#include <sstream>
#include <string>
#include <vector>

#include "tests/support/mariadb_server.h"
#include "tests/support/metrics_scrape.h"
#include "tests/support/process.h"
#include "tests/support/target.h"

namespace sluice::test {
namespace {

using namespace std::chrono_literals;

std::vector<std::string> lines(const std::string& text) {
  std::vector<std::string> out;
  std::istringstream in(text);
  for (std::string line; std::getline(in, line);) out.push_back(line);
  return out;
}

// tests/integration/pymysql_transcript.py against `port`: one JSON line per step.
std::vector<std::string> transcript(int port, const std::string& how) {
  const std::string script =
      (std::filesystem::path(SLUICE_SOURCE_DIR) / "tests" / "integration" / "pymysql_transcript.py")
          .string();
  const auto result =
      run_process({"/usr/bin/python3", script, std::to_string(port), "pymysql_app"}, 5min);
  INFO("PyMySQL ", how, " stderr:\n", result.err);
  REQUIRE_MESSAGE(result.status.success(), "the PyMySQL script failed ", how, " (",
                  result.status.describe(), ")");
  return lines(result.out);
}

TEST_CASE(
    "pymysql: a whole PyMySQL session through sluice gives the client what it gets directly") {
  // Queries with warnings and errors, executemany, several result sets in one
  // query, a stored procedure, an unbuffered result abandoned half-read, LOAD
  // DATA LOCAL INFILE, a 20 MiB value both ways, transactions, ping, logins
  // with a password, a wrong one and an unknown database: the same server,
  // first directly, then through sluice.
  MariaDbServer server({.args = {"--max-allowed-packet=64M", "--local-infile=1"}});
  Target target(server);
  const auto direct = transcript(server.port(), "directly");
  REQUIRE(direct.size() >= 40);
  CHECK(direct.back() == R"({"open": false, "step": "closed"})");

  const std::string before = target.direct() ? "" : http_get(target.sluice()->metrics_port());
  const auto proxied = transcript(target.port(), "through " + target.name());
  REQUIRE(proxied.size() == direct.size());
  for (std::size_t i = 0; i < direct.size(); ++i) {
    INFO("step ", i + 1);
    CHECK(proxied[i] == direct[i]);
  }
  if (target.direct()) return;

  // sluice followed every exchange: no sequence error, and every command it
  // counted also completed (a command whose response the tracker lost would
  // have no duration).
  const std::string after = http_get(target.sluice()->metrics_port());
  const auto delta = [&](std::string_view name, const Labels& labels) {
    return metric_value(after, name, labels) - metric_value(before, name, labels);
  };
  CHECK(delta("sluice_sequence_errors_total", {}) == 0);
  for (const char* command : {"COM_QUERY", "COM_INIT_DB", "COM_PING", "COM_QUIT"}) {
    INFO(command);
    const Labels labels{{"command", command}};
    CHECK(delta("sluice_commands_total", labels) > 0);
  }
  for (const char* command : {"COM_QUERY", "COM_INIT_DB", "COM_PING"}) {
    INFO(command);
    const Labels labels{{"command", command}};
    CHECK(delta("sluice_command_duration_seconds_count", labels) ==
          delta("sluice_commands_total", labels));
  }
  for (const char* direction : {"client_to_server", "server_to_client"}) {
    INFO(direction);
    CHECK(delta("sluice_oversized_packets_total",
                {{"direction", direction}, {"action", "close"}}) == 0);
  }
}

}  // namespace
}  // namespace sluice::test
