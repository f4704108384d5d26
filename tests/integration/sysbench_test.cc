// sysbench oltp_read_write through sluice: 8 threads for 20 s without a protocol error or
// reconnect.
#include <doctest/doctest.h>

#include <regex>
#include <string>
#include <vector>

#include "tests/support/mariadb_server.h"
#include "tests/support/process.h"
#include "tests/support/target.h"

namespace sluice::test {
namespace {

// The number after `label` in sysbench's report ("    reconnects:   0   (0.00 per sec.)").
long long report_number(const std::string& report, const std::string& label) {
  const std::regex line("\\n\\s*" + label + ":\\s+([0-9]+)");
  std::smatch match;
  if (!std::regex_search(report, match, line)) return -1;
  return std::stoll(match[1]);
}

TEST_CASE("sysbench: oltp_read_write, 8 threads, 20 s, zero errors") {
  MariaDbServer server({.args = {"--max-connections=500", "--innodb-log-file-size=64M"},
                        .bootstrap_sql = "CREATE DATABASE sbtest"});
  Target target(server);
  // 8 tables of 10,000 rows keep row-lock contention between 8 threads low
  // enough that the server itself reports no deadlocks; any error sysbench
  // sees is then the proxy's doing.
  const std::vector<std::string> common = {"oltp_read_write",
                                           "--db-driver=mysql",
                                           "--mysql-host=127.0.0.1",
                                           "--mysql-port=" + std::to_string(target.port()),
                                           "--mysql-user=root",
                                           "--mysql-db=sbtest",
                                           "--tables=8",
                                           "--table-size=10000"};

  std::vector<std::string> prepare = {"sysbench"};
  prepare.insert(prepare.end(), common.begin(), common.end());
  prepare.insert(prepare.end(), {"--threads=4", "prepare"});
  const auto prepared = run_process(prepare, std::chrono::minutes(5));
  REQUIRE_MESSAGE(prepared.status.success(), "sysbench prepare failed (",
                  prepared.status.describe(), "):\n", prepared.out, prepared.err);

  std::vector<std::string> run = {"sysbench"};
  run.insert(run.end(), common.begin(), common.end());
  // Only InnoDB's own transaction conflicts (1213 deadlock, 1205 lock wait
  // timeout) are retried: oltp_read_write's random DELETE + INSERT pairs
  // collide now and then, direct or proxied, and the server's answer is
  // correct. Any other error (a protocol or connection error above all)
  // aborts the run and fails the test.
  run.insert(run.end(), {"--threads=8", "--time=20", "--report-interval=0",
                         "--mysql-ignore-errors=1213,1205", "run"});
  const auto result = run_process(run, std::chrono::minutes(3));
  const std::string report = result.out + result.err;
  const long long transactions = report_number(report, "transactions");
  MESSAGE("sysbench oltp_read_write via ", target.name(), ": ", transactions,
          " transactions in 20 s");
  INFO("sysbench through ", target.name(), ":\n", report);
  REQUIRE(result.status.success());
  CHECK(report.find("FATAL") == std::string::npos);
  MESSAGE("transaction conflicts retried: ", report_number(report, "ignored errors"));
  CHECK(report_number(report, "reconnects") == 0);
  CHECK(transactions > 1000);
}

}  // namespace
}  // namespace sluice::test
