// MariaDB's mariadb-client-test program passes through sluice exactly as it does direct.
#include <doctest/doctest.h>

#include <filesystem>
#include <regex>
#include <string>
#include <vector>

#include "tests/support/mariadb_server.h"
#include "tests/support/process.h"
#include "tests/support/target.h"
#include "tests/support/temp_dir.h"

namespace sluice::test {
namespace {

namespace fs = std::filesystem;

const fs::path kMysqlTestDir = "/usr/share/mysql/mysql-test";
const char* kClientTest = "/usr/bin/mariadb-client-test";

void replace_all(std::string* text, const std::string& from, const std::string& to) {
  for (auto pos = text->find(from); pos != std::string::npos;
       pos = text->find(from, pos + to.size())) {
    text->replace(pos, from.size(), to);
  }
}

// A server configured the way mysql-test-run configures one for
// main.mysql_client_test: include/default_mysqld.cnf as the my.cnf (latin1,
// MyISAM, local-infile, secure-file-priv = vardir, ...) and the test's
// -master.opt on the command line (general log to FILE,TABLE in
// vardir/log/master.log, max_allowed_packet 32000000,
// proxy_protocol_networks=*, sequence=on). Name resolution stays on, so
// 127.0.0.1 (sluice's address as the server sees it) is root@localhost, and
// there are no anonymous users. The `test` database mtr's bootstrap creates
// is created here too.
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
  options.fast_io = false;  // as close to mtr's server as we can
  return options;
}

struct SuiteRun {
  ProcessResult process;
  int tests_started = 0;      // "N of (1/1): test_name" headers seen
  std::string last_test;      // the name in the last such header
  int tests_successful = -1;  // from "All 'N' tests were successful"
  std::string log;            // stdout + stderr
  std::string command;
};

// Runs the whole program once, as mtr's main.mysql_client_test does
// (--testcase --getopt-ll-test=25600M), against 127.0.0.1:port over TCP.
// It stops at the first failing test, and later tests depend on earlier ones,
// so it is always run whole.
SuiteRun run_suite(int port, const fs::path& vardir) {
  fs::create_directories(vardir / "log");
  fs::create_directories(vardir / "tmp");
  const std::vector<std::string> argv = {kClientTest,
                                         "--no-defaults",
                                         "--testcase",
                                         "--user=root",
                                         "--host=127.0.0.1",
                                         "--port=" + std::to_string(port),
                                         "--vardir=" + vardir.string(),
                                         "--getopt-ll-test=25600M"};
  SuiteRun run;
  run.command = "MYSQL_TMP_DIR=" + (vardir / "tmp").string() + " " + shell_quote(argv);
  run.process = run_process(argv, std::chrono::minutes(4),
                            {.env = {"MYSQL_TMP_DIR=" + (vardir / "tmp").string()}});
  run.log = run.process.out + run.process.err;
  const std::regex header("\\n[0-9]+ of \\(1/1\\): ([^\\n]*?) *\\n");
  for (auto it = std::sregex_iterator(run.log.begin(), run.log.end(), header);
       it != std::sregex_iterator(); ++it) {
    ++run.tests_started;
    run.last_test = (*it)[1];
  }
  std::smatch match;
  if (std::regex_search(run.log, match, std::regex("All '([0-9]+)' tests were successful"))) {
    run.tests_successful = std::stoi(match[1]);
  }
  return run;
}

std::string summary(const SuiteRun& run) {
  return run.process.status.describe() + (run.process.timed_out ? " (timed out)" : "") + ", " +
         std::to_string(run.tests_started) + " tests started, " +
         std::to_string(run.tests_successful) + " reported successful, last: " + run.last_test +
         "; command: " + run.command;
}

std::string log_tail(const SuiteRun& run) {
  return "last lines:\n" + tail_lines(run.log, 80);
}

TEST_CASE("client test suite: mariadb-client-test passes through sluice as it does direct") {
  REQUIRE_MESSAGE(fs::exists(kClientTest), "mariadb-test is not installed (scripts/deps.sh test)");

  // Direct first: a failure here is the environment's, not sluice's.
  TempDir direct_vardir("sluice-mct");
  SuiteRun direct;
  {
    MariaDbServer server(client_test_server(direct_vardir.path()));
    direct = run_suite(server.port(), direct_vardir.path());
  }
  MESSAGE("direct: ", summary(direct));
  {
    INFO(log_tail(direct));
    REQUIRE(direct.process.status.success());
    REQUIRE(direct.tests_successful > 0);
    CHECK(direct.tests_successful == direct.tests_started);
  }
  if (direct_mode()) return;

  // Then through sluice, against a fresh server configured the same way.
  TempDir vardir("sluice-mct");
  MariaDbServer server(client_test_server(vardir.path()));
  // One worker: some tests KILL their main connection from a second one and
  // then use the first again, relying on auto-reconnect. Direct, the killed
  // connection's FIN reaches the client before the KILL's OK; through sluice
  // the two connections may sit on different workers, and a worker delayed
  // by a loaded machine delivers the FIN late (README: ordering across
  // connections). On one worker the events keep the server's order.
  Target target(server, {.top = {{"workers", "1"}}});
  const SuiteRun proxied = run_suite(target.port(), vardir.path());
  MESSAGE("through sluice: ", summary(proxied));
  INFO(log_tail(proxied));
  CHECK(proxied.process.status.success());
  CHECK(proxied.tests_successful == direct.tests_successful);
  CHECK(proxied.tests_started == direct.tests_started);
}

}  // namespace
}  // namespace sluice::test
