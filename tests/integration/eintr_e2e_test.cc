// EINTR end to end: the real sluice binary under tests/fault/eintr_shim.so (LD_PRELOAD), which
// makes readv/writev/accept4/connect fail with EINTR in bursts. A 40 MiB blob must round-trip
// bit-exact through Connector/C, sluice_eintr_retries_total must equal what the shim injected,
// and a storm beyond net_retry_count must end sessions with read_error (1158), not hang them.
#include <doctest/doctest.h>
#include <mysql.h>
#include <signal.h>

#include <cerrno>
#include <cstring>
#include <filesystem>
#include <map>
#include <memory>
#include <random>
#include <sstream>
#include <string>
#include <vector>

#include "tests/support/fault_peers.h"
#include "tests/support/mariadb_server.h"
#include "tests/support/metrics_scrape.h"
#include "tests/support/mysql_conn.h"
#include "tests/support/probes.h"
#include "tests/support/raw_mysql.h"
#include "tests/support/sha1.h"
#include "tests/support/sluice_process.h"
#include "tests/support/target.h"
#include "tests/support/temp_dir.h"

namespace sluice::test {
namespace {

using namespace fault;  // tests/support/fault_peers.h, probes.h

using namespace std::chrono_literals;
using Clock = std::chrono::steady_clock;

const Labels kMain = {{"listener", "main"}};

// The shim built beside the sluice under test: <build>/proxy/sluice ->
// <build>/tests/fault/eintr_shim.so (the `eintr_shim` target, part of `all`).
// $SLUICE_EINTR_SHIM overrides it.
std::filesystem::path shim_path() {
  if (const char* p = std::getenv("SLUICE_EINTR_SHIM"); p != nullptr && *p != '\0') return p;
  const std::filesystem::path binary = std::filesystem::absolute(sluice_binary());
  return binary.parent_path().parent_path() / "tests" / "fault" / "eintr_shim.so";
}

// Starts sluice with the shim preloaded and the given shim settings. Only the
// sluice child sees the variables (the test process itself is already loaded).
std::unique_ptr<SluiceProcess> start_under_shim(
    SluiceConfig config, const std::vector<std::pair<std::string, std::string>>& shim_env) {
  const std::filesystem::path shim = shim_path();
  REQUIRE_MESSAGE(std::filesystem::exists(shim), "EINTR shim not built: ", shim.string(),
                  " (cmake --build <build> --target eintr_shim)");
  std::vector<std::pair<std::string, std::string>> env = {{"LD_PRELOAD", shim.string()}};
  env.insert(env.end(), shim_env.begin(), shim_env.end());
  const ScopedEnv scoped(env);
  return std::make_unique<SluiceProcess>(std::move(config));
}

// "readv 12\nwritev 3\n..." -> {"readv": 12, ...}
std::map<std::string, double> read_report(const std::filesystem::path& path) {
  std::map<std::string, double> counts;
  std::istringstream in(read_file(path));
  std::string op;
  double n = 0;
  while (in >> op >> n) counts[op] = n;
  return counts;
}

std::string hex(const Sha1Digest& digest) {
  static const char* kDigits = "0123456789abcdef";
  std::string out;
  for (std::uint8_t b : digest) {
    out.push_back(kDigits[b >> 4]);
    out.push_back(kDigits[b & 15]);
  }
  return out;
}

std::string random_blob(std::size_t size, std::uint32_t seed) {
  std::mt19937_64 rng(seed);
  std::string out(size, '\0');
  for (std::size_t i = 0; i + 8 <= size; i += 8) {
    const std::uint64_t v = rng();
    std::memcpy(out.data() + i, &v, 8);
  }
  return out;
}

// INSERT INTO app.blobs VALUES (id, blob) as one prepared-statement execute.
void insert_blob(MysqlConn& conn, int id, const std::string& blob) {
  MYSQL_STMT* stmt = mysql_stmt_init(conn.get());
  REQUIRE(stmt != nullptr);
  const std::string sql = "INSERT INTO app.blobs VALUES (" + std::to_string(id) + ", ?)";
  REQUIRE_MESSAGE(mysql_stmt_prepare(stmt, sql.data(), sql.size()) == 0, mysql_stmt_error(stmt));
  MYSQL_BIND bind{};
  unsigned long length = blob.size();
  bind.buffer_type = MYSQL_TYPE_LONG_BLOB;
  bind.buffer = const_cast<char*>(blob.data());
  bind.buffer_length = blob.size();
  bind.length = &length;
  REQUIRE_MESSAGE(mysql_stmt_bind_param(stmt, &bind) == 0, mysql_stmt_error(stmt));
  const bool ok = mysql_stmt_execute(stmt) == 0;
  const std::string error = ok ? "" : mysql_stmt_error(stmt);
  mysql_stmt_close(stmt);
  REQUIRE_MESSAGE(ok, error);
}

TEST_CASE(
    "eintr: a 40 MiB blob round-trips bit-exact under EINTR bursts, and every injected "
    "EINTR is counted") {
  if (direct_mode()) return;
  MariaDbServer server({.args = {"--max-allowed-packet=64M"}});
  TempDir scratch("sluice-eintr");
  const std::filesystem::path report = scratch / "report";
  SluiceConfig config;
  config.upstream_ports = {server.port()};
  config.listener = {{"net_retry_count", "10"}, {"max_allowed_packet", "64M"}};
  auto sluice = start_under_shim(
      config, {{"SLUICE_EINTR_BURST", "3"}, {"SLUICE_EINTR_REPORT", report.string()}});
  const int metrics = sluice->metrics_port();

  constexpr int kSessions = 21;  // the blob's, then 20 short ones
  const std::size_t kSize = 40u << 20;
  const std::string blob = random_blob(kSize, 4031);
  const std::string want = hex(sha1(blob));
  {
    ConnectOptions options;
    options.port = sluice->port();
    MysqlConn conn(options);
    conn.exec("CREATE DATABASE app; CREATE TABLE app.blobs (id INT PRIMARY KEY, b LONGBLOB)");
    insert_blob(conn, 1, blob);
    // In: the server's own checksum of what it stored.
    CHECK(conn.scalar("SELECT LENGTH(b) FROM app.blobs WHERE id = 1") == std::to_string(kSize));
    CHECK(conn.scalar("SELECT SHA1(b) FROM app.blobs WHERE id = 1") == want);
    // Out: one ~40 MiB row packet (three continuation frames).
    const auto back = conn.value("SELECT b FROM app.blobs WHERE id = 1");
    REQUIRE(back.has_value());
    CHECK(back->size() == kSize);
    CHECK(hex(sha1(*back)) == want);
  }
  // A few more short sessions, so accept and connect are interrupted many times too.
  for (int i = 0; i < kSessions - 1; ++i) {
    ConnectOptions options;
    options.port = sluice->port();
    MysqlConn conn(options);
    CHECK(conn.scalar("SELECT " + std::to_string(i)) == std::to_string(i));
  }
  REQUIRE(
      wait_until([&] { return scrape(metrics, "sluice_connections_active", kMain) == 0; }, 10s));

  const std::string text = http_get(metrics);
  std::map<std::string, double> counted;
  for (const char* op : {"read", "write", "accept", "connect"}) {
    counted[op] =
        metric_value(text, "sluice_eintr_retries_total", {{"listener", "main"}, {"op", op}});
  }
  const double io_errors = metric_sum(text, "sluice_io_errors_total", kMain);

  sluice->send_signal(SIGTERM);
  const auto status = sluice->wait_exit(20s);
  REQUIRE_MESSAGE(status.has_value(), "sluice still running 20 s after SIGTERM");
  CHECK_MESSAGE(status->success(), status->describe());

  const auto injected = read_report(report);
  REQUIRE_MESSAGE(injected.size() == 4, "shim report: ", read_file(report));
  MESSAGE("injected readv ", injected.at("readv"), " writev ", injected.at("writev"), " accept4 ",
          injected.at("accept4"), " connect ", injected.at("connect"), "; counted read ",
          counted["read"], " write ", counted["write"], " accept ", counted["accept"], " connect ",
          counted["connect"]);
  CHECK(injected.at("readv") > 0);
  CHECK(injected.at("writev") > 0);
  CHECK(injected.at("accept4") > 0);
  CHECK(injected.at("connect") > 0);
  CHECK(counted["read"] == injected.at("readv"));
  CHECK(counted["write"] == injected.at("writev"));
  CHECK(counted["accept"] == injected.at("accept4"));
  // Every upstream connect is one call that gets exactly one burst (3), then
  // EINPROGRESS. The shim also hits connects outside the proxy's I/O path:
  // at shutdown sluice's metrics server wakes its own HTTP listener by
  // connecting to it (MetricsServer::~MetricsServer, every 20 ms until it
  // stops), which no listener's metric can count. So: sessions x 3 counted,
  // and whatever else the shim injected comes in whole bursts.
  CHECK(counted["connect"] == 3 * kSessions);
  const double outside = injected.at("connect") - counted["connect"];
  CHECK(outside >= 0);
  CHECK(static_cast<long>(outside) % 3 == 0);
  CHECK(io_errors == 0);
}

TEST_CASE("eintr: reads while a closing session lingers after its ERR are counted too") {
  if (direct_mode()) return;
  // After sending an ERR (here: wait_timeout's 4031) sluice keeps reading the
  // client until its FIN, so that the client reads the ERR rather than a
  // reset. Those reads are interrupted like any other and must be counted.
  MariaDbServer server;
  TempDir scratch("sluice-eintr");
  const std::filesystem::path report = scratch / "report";
  SluiceConfig config;
  config.upstream_ports = {server.port()};
  config.listener = {{"net_retry_count", "10"}, {"wait_timeout", "1s"}};
  auto sluice = start_under_shim(config, {{"SLUICE_EINTR_BURST", "3"},
                                          {"SLUICE_EINTR_OPS", "readv"},
                                          {"SLUICE_EINTR_REPORT", report.string()}});
  const int metrics = sluice->metrics_port();
  {
    RawMysqlClient client;
    REQUIRE_MESSAGE(client.connect(sluice->port()), client.last_error());
    const HandshakeResult login = client.handshake();
    REQUIRE_MESSAGE(login.logged_in, login.failure);
    const ReadResult read = client.read_packet(10s);
    const auto err = read.ok() ? parse_err(read.packet) : std::nullopt;
    REQUIRE_MESSAGE(err.has_value(), describe(read));
    CHECK(err->code == 4031);
    client.close();  // sluice, lingering, reads this FIN
  }
  REQUIRE(
      wait_until([&] { return scrape(metrics, "sluice_connections_active", kMain) == 0; }, 10s));
  const double counted =
      scrape(metrics, "sluice_eintr_retries_total", {{"listener", "main"}, {"op", "read"}});
  sluice->send_signal(SIGTERM);
  const auto status = sluice->wait_exit(20s);
  REQUIRE(status.has_value());
  const auto injected = read_report(report);
  REQUIRE_MESSAGE(injected.count("readv") == 1, "shim report: ", read_file(report));
  MESSAGE("readv: injected ", injected.at("readv"), ", counted ", counted);
  CHECK(counted == injected.at("readv"));
}

TEST_CASE("eintr: a readv storm beyond net_retry_count ends sessions with 1158, never a hang") {
  if (direct_mode()) return;
  MariaDbServer server;
  SluiceConfig config;
  config.upstream_ports = {server.port()};
  config.listener = {{"net_retry_count", "10"}};
  auto sluice =
      start_under_shim(config, {{"SLUICE_EINTR_BURST", "20"}, {"SLUICE_EINTR_OPS", "readv"}});
  const int metrics = sluice->metrics_port();

  int read_errors = 0;
  int completed = 0;
  std::vector<std::string> unexpected;
  for (int i = 0; i < 8; ++i) {
    RawMysqlClient client;
    REQUIRE_MESSAGE(client.connect(sluice->port()), client.last_error());
    const auto started = Clock::now();
    std::optional<ServerError> err;
    std::string outcome;
    const HandshakeResult login = client.handshake("root", "", "", 0, 10s);
    if (!login.logged_in) {
      err = login.error;
      outcome = login.failure;
    } else {
      for (int q = 0; q < 5 && !err; ++q) {
        const QueryResult r = client.query("SELECT " + std::to_string(q), 10s);
        if (r.error) {
          err = r.error;
        } else if (!r.ok()) {
          outcome = r.failure;
          break;
        }
      }
    }
    const auto took = Clock::now() - started;
    CHECK_MESSAGE(took < 5s, "session ", i, " took ", seconds(took), " s");
    if (err && err->code == 1158 && err->sqlstate == "08S01") {
      ++read_errors;
      // And then the connection ends.
      const ReadStatus end = client.wait_closed(5s);
      CHECK_MESSAGE((end == ReadStatus::kEof || end == ReadStatus::kReset),
                    std::string(to_string(end)));
    } else if (!err && outcome.empty()) {
      ++completed;
    } else {
      unexpected.push_back("session " + std::to_string(i) + ": " +
                           (err ? "ERR " + std::to_string(err->code) + " seq " +
                                      std::to_string(err->seq) + " " + err->message
                                : outcome));
    }
  }
  std::string all;
  for (const auto& u : unexpected) all += u + "\n";
  MESSAGE(read_errors, " sessions ended with 1158, ", completed, " completed");
  CHECK_MESSAGE(unexpected.empty(), all);
  CHECK(read_errors > 0);
  REQUIRE(
      wait_until([&] { return scrape(metrics, "sluice_connections_active", kMain) == 0; }, 10s));
  const std::string text = http_get(metrics);
  const double failed_reads =
      metric_value(text, "sluice_io_errors_total", {{"listener", "main"}, {"op", "read"}});
  CHECK(failed_reads >= read_errors);
  // Each failed call was retried exactly net_retry_count times.
  CHECK(metric_value(text, "sluice_eintr_retries_total", {{"listener", "main"}, {"op", "read"}}) >=
        10 * failed_reads);
  CHECK(sluice->running());
}

TEST_CASE("eintr: a writev storm beyond net_retry_count ends sessions, never a hang") {
  if (direct_mode()) return;
  // A failed write to the upstream sends 1160; a failed write to the client
  // (its ERR included: that is a writev too) closes without one.
  MariaDbServer server;
  SluiceConfig config;
  config.upstream_ports = {server.port()};
  config.listener = {{"net_retry_count", "10"}};
  auto sluice =
      start_under_shim(config, {{"SLUICE_EINTR_BURST", "20"}, {"SLUICE_EINTR_OPS", "writev"}});
  const int metrics = sluice->metrics_port();

  std::map<std::string, int> outcomes;
  for (int i = 0; i < 8; ++i) {
    RawMysqlClient client;
    if (!client.connect(sluice->port())) {
      // A loaded machine may let sluice accept, fail the greeting's writev
      // and reset before this thread looks at its connect: the same outcome
      // as a reset during the login.
      REQUIRE_MESSAGE(client.last_errno() == ECONNRESET, client.last_error());
      ++outcomes["login: reset"];
      continue;
    }
    const auto started = Clock::now();
    std::string outcome = "completed";
    const HandshakeResult login = client.handshake("root", "", "", 0, 10s);
    if (!login.logged_in) {
      outcome = login.error ? "ERR " + std::to_string(login.error->code)
                            : std::string("login: ") + to_string(login.status);
    } else {
      for (int q = 0; q < 5; ++q) {
        const QueryResult r = client.query("SELECT " + std::to_string(q), 10s);
        if (r.error) {
          outcome = "ERR " + std::to_string(r.error->code);
          break;
        }
        if (!r.ok()) {
          outcome = std::string("query: ") + to_string(r.status);
          break;
        }
      }
    }
    const auto took = Clock::now() - started;
    CHECK_MESSAGE(took < 5s, "session ", i, " took ", seconds(took), " s: ", outcome);
    ++outcomes[outcome];
  }
  std::string all;
  for (const auto& [outcome, n] : outcomes) all += outcome + " x" + std::to_string(n) + "; ";
  MESSAGE("outcomes: ", all);
  for (const auto& [outcome, n] : outcomes) {
    const bool expected = outcome == "completed" || outcome == "ERR 1160" ||
                          outcome == "login: eof" || outcome == "login: reset" ||
                          outcome == "query: eof" || outcome == "query: reset";
    CHECK_MESSAGE(expected, "unexpected outcome: ", outcome);
  }
  CHECK(outcomes["completed"] < 8);
  REQUIRE(
      wait_until([&] { return scrape(metrics, "sluice_connections_active", kMain) == 0; }, 10s));
  CHECK(scrape(metrics, "sluice_io_errors_total", {{"listener", "main"}, {"op", "write"}}) >= 1);
  CHECK(sluice->running());
}

TEST_CASE("eintr: accept4 and connect storms beyond the budget lose no client") {
  if (direct_mode()) return;
  // A failed accept4 is tried again on the next readiness; a connect that
  // exhausts the budget fails that attempt and the next upstream is tried
  // (here: the same server listed twice).
  MariaDbServer server;
  SluiceConfig config;
  config.upstream_ports = {server.port(), server.port()};
  config.listener = {{"net_retry_count", "10"}};
  config.top = {{"workers", "1"}};
  auto sluice = start_under_shim(
      config, {{"SLUICE_EINTR_BURST", "20"}, {"SLUICE_EINTR_OPS", "accept4,connect"}});
  const int metrics = sluice->metrics_port();

  for (int i = 0; i < 10; ++i) {
    RawMysqlClient client;
    REQUIRE_MESSAGE(client.connect(sluice->port()), client.last_error());
    const auto started = Clock::now();
    const HandshakeResult login = client.handshake("root", "", "", 0, 10s);
    CHECK_MESSAGE(login.logged_in, "session ", i, ": ", login.failure,
                  login.error ? " ERR " + std::to_string(login.error->code) : "");
    CHECK(Clock::now() - started < 2s);
    if (login.logged_in) CHECK(client.query("SELECT 1").ok());
  }
  REQUIRE(
      wait_until([&] { return scrape(metrics, "sluice_connections_active", kMain) == 0; }, 10s));
  const std::string text = http_get(metrics);
  const double accept_failures =
      metric_value(text, "sluice_io_errors_total", {{"listener", "main"}, {"op", "accept"}});
  const double connect_failures =
      metric_value(text, "sluice_io_errors_total", {{"listener", "main"}, {"op", "connect"}});
  MESSAGE("failed accept4 calls ", accept_failures, ", failed connect attempts ", connect_failures);
  CHECK(accept_failures >= 1);
  CHECK(connect_failures >= 1);
  CHECK(metric_value(
            text, "sluice_upstream_connect_errors_total",
            {{"listener", "main"}, {"upstream", "127.0.0.1:" + std::to_string(server.port())}}) ==
        connect_failures);
  CHECK(metric_value(text, "sluice_connections_total", kMain) == 10);
}

}  // namespace
}  // namespace sluice::test
