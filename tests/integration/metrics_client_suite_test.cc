// The response tracker under mariadb-client-test: every command it sends is timed, none lost.
#include <doctest/doctest.h>

#include <filesystem>
#include <regex>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "tests/support/mariadb_server.h"
#include "tests/support/metrics_scrape.h"
#include "tests/support/process.h"
#include "tests/support/prometheus_server.h"
#include "tests/support/sluice_process.h"
#include "tests/support/temp_dir.h"

namespace sluice::test {
namespace {

namespace fs = std::filesystem;
using namespace std::chrono_literals;
using Clock = std::chrono::steady_clock;

const fs::path kMysqlTestDir = "/usr/share/mysql/mysql-test";
const char* kClientTest = "/usr/bin/mariadb-client-test";

void replace_all(std::string* text, const std::string& from, const std::string& to) {
  for (auto pos = text->find(from); pos != std::string::npos;
       pos = text->find(from, pos + to.size())) {
    text->replace(pos, from.size(), to);
  }
}

// The server mysql-test-run starts for main.mysql_client_test (as in
// client_test_suite_test.cc).
MariaDbOptions client_test_server(const fs::path& vardir) {
  MariaDbOptions options;
  options.my_cnf = read_file(kMysqlTestDir / "include/default_mysqld.cnf");
  replace_all(&options.my_cnf, "@ENV.MYSQLTEST_VARDIR", vardir.string());
  replace_all(&options.my_cnf, "@ENV.MYSQL_TEST_DIR", kMysqlTestDir.string());
  std::string opt = read_file(kMysqlTestDir / "main/mysql_client_test-master.opt");
  replace_all(&opt, "$MYSQLTEST_VARDIR", vardir.string());
  std::istringstream words(opt);
  for (std::string word; words >> word;) options.args.push_back(word);
  options.bootstrap_sql = "CREATE DATABASE IF NOT EXISTS test";
  options.fast_io = false;
  return options;
}

TEST_CASE("metrics: mariadb-client-test through sluice never loses response tracking") {
  REQUIRE_MESSAGE(fs::exists(kClientTest), "mariadb-test is not installed (scripts/deps.sh test)");
  TempDir vardir("sluice-mct");
  MariaDbServer server(client_test_server(vardir.path()));
  // One worker, as in client_test_suite_test.cc: the suite's KILL-then-
  // reconnect tests rely on the order of events across two connections.
  SluiceProcess sluice({.upstream_ports = {server.port()}, .top = {{"workers", "1"}}});
  const std::string before = scrape_metrics(sluice.metrics_port());

  fs::create_directories(vardir / "log");
  fs::create_directories(vardir / "tmp");
  const std::vector<std::string> argv = {kClientTest,
                                         "--no-defaults",
                                         "--testcase",
                                         "--user=root",
                                         "--host=127.0.0.1",
                                         "--port=" + std::to_string(sluice.port()),
                                         "--vardir=" + vardir.str(),
                                         "--getopt-ll-test=25600M"};
  const ProcessResult run = run_process(argv, std::chrono::minutes(6),
                                        {.env = {"MYSQL_TMP_DIR=" + (vardir / "tmp").string()}});
  const std::string log = run.out + run.err;
  CHECK_MESSAGE(run.status.success(), "mariadb-client-test: ", run.status.describe(), "\n",
                tail_lines(log, 40));
  CHECK_MESSAGE(log.find("tests were successful") != std::string::npos, tail_lines(log, 40));

  // Wait until every session is closed, then compare.
  const auto deadline = Clock::now() + 30s;
  std::string after = scrape_metrics(sluice.metrics_port());
  while (metric_value(after, "sluice_connections_active", {{"listener", "main"}}) != 0 &&
         Clock::now() < deadline) {
    std::this_thread::sleep_for(50ms);
    after = scrape_metrics(sluice.metrics_port());
  }
  CHECK(metric_value(after, "sluice_connections_active", {{"listener", "main"}}) == 0);
  const Labels main = {{"listener", "main"}};
  const double lost = metric_value(after, "sluice_response_tracking_lost_total", main) -
                      metric_value(before, "sluice_response_tracking_lost_total", main);
  std::string summary;
  double total = 0;
  for (const Sample& s : parse_samples(after)) {
    if (s.name != "sluice_commands_total") continue;
    const std::string& command = s.labels.at("command");
    const Labels labels = {{"listener", "main"}, {"command", command}};
    const double commands = s.value - metric_value(before, "sluice_commands_total", labels);
    const double timed = metric_value(after, "sluice_command_duration_seconds_count", labels) -
                         metric_value(before, "sluice_command_duration_seconds_count", labels);
    total += commands;
    if (commands != 0 || timed != 0) {
      summary += "\n  " + command + ": " + std::to_string(static_cast<long long>(commands)) +
                 " commands, " + std::to_string(static_cast<long long>(timed)) + " timed";
    }
    CHECK_MESSAGE(timed == commands, command, ": ", commands, " commands, ", timed, " timed");
  }
  MESSAGE("mariadb-client-test through sluice: ", total, " commands, tracking lost in ", lost,
          " sessions:", summary);
  CHECK(total > 1000);
  CHECK(lost == 0);
}

}  // namespace
}  // namespace sluice::test
