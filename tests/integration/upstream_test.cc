// Upstream failover and admission end to end: closed ports, an upstream that hangs up before its
// greeting, a dropping (full-backlog) upstream against connect_timeout, all upstreams down, and
// max_connections. Loopback only: "unroutable" is a local listener whose accept queue is full.
#include <doctest/doctest.h>

#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "tests/support/fault_peers.h"
#include "tests/support/limits_support.h"
#include "tests/support/mariadb_server.h"
#include "tests/support/metrics_scrape.h"
#include "tests/support/mysql_conn.h"
#include "tests/support/probes.h"
#include "tests/support/raw_mysql.h"
#include "tests/support/sluice_process.h"
#include "tests/support/target.h"

namespace sluice::test {
namespace {

using namespace fault;  // tests/support/fault_peers.h, probes.h

using namespace std::chrono_literals;
using Clock = std::chrono::steady_clock;
using std::chrono::milliseconds;

const Labels kMain = {{"listener", "main"}};

Labels main_and(const std::string& key, const std::string& value) {
  return {{"listener", "main"}, {key, value}};
}

Labels upstream_label(int port) {
  return main_and("upstream", "127.0.0.1:" + std::to_string(port));
}

void check_err(const ReadResult& read, int code, const std::string& sqlstate, int seq) {
  INFO("client received: ", describe(read));
  REQUIRE(read.ok());
  const auto err = parse_err(read.packet);
  REQUIRE(err.has_value());
  CHECK(err->code == code);
  CHECK(err->sqlstate == sqlstate);
  CHECK(static_cast<int>(err->seq) == seq);
}

// One session through `port` that logs in and runs a query; returns how long
// the login took. Fails the test when anything goes wrong.
Clock::duration working_session(int port) {
  RawMysqlClient client;
  const auto started = Clock::now();
  REQUIRE_MESSAGE(client.connect(port), client.last_error());
  const HandshakeResult login = client.handshake();
  const auto took = Clock::now() - started;
  REQUIRE_MESSAGE(login.logged_in, login.failure,
                  login.error ? " ERR " + std::to_string(login.error->code) : "");
  const QueryResult r = client.query("SELECT 'through'");
  REQUIRE_MESSAGE(r.ok(), r.failure);
  CHECK(r.rows()[0][0] == "through");
  return took;
}

// Config for sluice in front of `upstreams`, one worker so the round-robin
// order is the listener's.
SluiceConfig one_worker(std::vector<int> upstreams,
                        std::vector<std::pair<std::string, std::string>> listener = {}) {
  SluiceConfig config;
  config.upstream_ports = std::move(upstreams);
  config.listener = std::move(listener);
  config.top = {{"workers", "1"}};
  return config;
}

TEST_CASE("upstream: a closed first upstream fails over to the real one, and is counted") {
  if (direct_mode()) return;
  MariaDbServer server;
  ClosedPort closed;
  SluiceProcess sluice(one_worker({closed.port(), server.port()}));

  // Round robin: of two sessions, one starts at each upstream; both must work.
  for (int i = 0; i < 2; ++i) {
    const auto took = working_session(sluice.port());
    CHECK(took < 1s);
  }
  const std::string text = http_get(sluice.metrics_port());
  CHECK(metric_value(text, "sluice_upstream_connect_errors_total", upstream_label(closed.port())) ==
        1);
  CHECK(metric_value(text, "sluice_upstream_connect_errors_total", upstream_label(server.port())) ==
        0);
  CHECK(metric_value(text, "sluice_connections_rejected_total",
                     main_and("reason", "upstream_unavailable")) == 0);
}

TEST_CASE("upstream: every upstream closed gets 2003 HY000 seq 0 in under a second") {
  if (direct_mode()) return;
  ClosedPort first;
  ClosedPort second;
  SluiceProcess sluice(one_worker({first.port(), second.port()}));

  RawMysqlClient client;
  const auto started = Clock::now();
  REQUIRE_MESSAGE(client.connect(sluice.port()), client.last_error());
  const ReadResult read = client.read_packet(10s);
  const auto elapsed = Clock::now() - started;
  check_err(read, 2003, "HY000", 0);
  MESSAGE("ERR 2003 after ", seconds(elapsed), " s");
  CHECK(elapsed < 1s);
  const ReadStatus end = client.wait_closed(5s);
  CHECK_MESSAGE((end == ReadStatus::kEof || end == ReadStatus::kReset),
                std::string(to_string(end)));

  const std::string text = http_get(sluice.metrics_port());
  CHECK(metric_value(text, "sluice_upstream_connect_errors_total", upstream_label(first.port())) ==
        1);
  CHECK(metric_value(text, "sluice_upstream_connect_errors_total", upstream_label(second.port())) ==
        1);
  CHECK(metric_value(text, "sluice_connections_rejected_total",
                     main_and("reason", "upstream_unavailable")) == 1);
  CHECK(metric_value(text, "sluice_timeouts_total", main_and("kind", "connect")) == 0);
}

TEST_CASE("upstream: a dropping upstream is abandoned at connect_timeout for the next one") {
  if (direct_mode()) return;
  MariaDbServer server;
  DroppingUpstream dropping;
  SluiceProcess sluice(one_worker({dropping.port(), server.port()}, {{"connect_timeout", "1s"}}));

  // Of two sessions one starts at the dropping upstream: it waits
  // connect_timeout, then gets the real server; the other goes straight there.
  std::vector<double> took;
  for (int i = 0; i < 2; ++i) took.push_back(seconds(working_session(sluice.port())));
  MESSAGE("logins took ", took[0], " s and ", took[1], " s");
  const double slow = std::max(took[0], took[1]);
  const double fast = std::min(took[0], took[1]);
  CHECK(slow >= 0.8);
  CHECK(slow <= 2.0 + 0.5);  // connect_timeout + 1 s, plus the login itself
  CHECK(fast < 1.0);

  const std::string text = http_get(sluice.metrics_port());
  CHECK(metric_value(text, "sluice_timeouts_total", main_and("kind", "connect")) == 1);
  CHECK(metric_value(text, "sluice_upstream_connect_errors_total",
                     upstream_label(dropping.port())) == 1);
  CHECK(metric_value(text, "sluice_upstream_connect_errors_total", upstream_label(server.port())) ==
        0);
}

TEST_CASE("upstream: only a dropping upstream gets 2003 seq 0 at connect_timeout") {
  if (direct_mode()) return;
  DroppingUpstream dropping;
  SluiceProcess sluice(one_worker({dropping.port()}, {{"connect_timeout", "1s"}}));

  RawMysqlClient client;
  const auto started = Clock::now();
  REQUIRE_MESSAGE(client.connect(sluice.port()), client.last_error());
  const ReadResult read = client.read_packet(10s);
  const auto elapsed = Clock::now() - started;
  check_err(read, 2003, "HY000", 0);
  INFO("ERR 2003 after ", seconds(elapsed), " s");
  CHECK(elapsed >= 800ms);
  CHECK(elapsed <= 2s);

  const std::string text = http_get(sluice.metrics_port());
  CHECK(metric_value(text, "sluice_timeouts_total", main_and("kind", "connect")) == 1);
  CHECK(metric_value(text, "sluice_connections_rejected_total",
                     main_and("reason", "upstream_unavailable")) == 1);
  CHECK(wait_until(
      [&] { return scrape(sluice.metrics_port(), "sluice_connections_active", kMain) == 0; }, 5s));

  // The timeout is logged once: the failed attempt names the upstream and the
  // error, the close gives the reason; no third line repeats either.
  CHECK(wait_until([&] { return sluice.stderr_text().find("session_close") != std::string::npos; },
                   5s));
  const std::string log = sluice.stderr_text();
  INFO("sluice stderr:\n", log);
  auto lines_with = [&](const std::string& needle) {
    std::size_t n = 0;
    for (std::size_t at = log.find(needle); at != std::string::npos; at = log.find(needle, at + 1))
      ++n;
    return n;
  };
  CHECK(lines_with("connect timeout") == 1);
  CHECK(lines_with("upstream_unavailable") == 1);
  CHECK(lines_with(" warn ") == 1);
}

TEST_CASE(
    "upstream: an upstream that accepts and hangs up before its greeting is a failed "
    "attempt, and the next one is tried") {
  if (direct_mode()) return;
  MariaDbServer server;
  FakeUpstream hangs_up(FakeUpstream::Mode::kAcceptClose);
  // handshake_timeout only bounds how long a broken failover takes to show.
  SluiceProcess sluice(one_worker({hangs_up.port(), server.port()}, {{"handshake_timeout", "3s"}}));

  for (int i = 0; i < 2; ++i) CHECK(working_session(sluice.port()) < 1s);
  CHECK(hangs_up.accepted() == 1);
  const std::string text = http_get(sluice.metrics_port());
  CHECK(metric_value(text, "sluice_upstream_connect_errors_total",
                     upstream_label(hangs_up.port())) == 1);
  CHECK(metric_value(text, "sluice_connections_rejected_total",
                     main_and("reason", "upstream_unavailable")) == 0);

  {  // Alone, it leaves the client with 2003 seq 0.
    SluiceProcess alone(one_worker({hangs_up.port()}));
    RawMysqlClient client;
    REQUIRE_MESSAGE(client.connect(alone.port()), client.last_error());
    const ReadResult read = client.read_packet(10s);
    check_err(read, 2003, "HY000", 0);
  }
}

TEST_CASE(
    "upstream: an upstream that accepts and never greets is a failed attempt at connect_timeout "
    "while another is left to try") {
  if (direct_mode()) return;
  MariaDbServer server;
  FakeUpstream silent(FakeUpstream::Mode::kBlackHole);
  SluiceProcess sluice(one_worker({silent.port(), server.port()},
                                  {{"connect_timeout", "1s"}, {"handshake_timeout", "10s"}}));
  // The first session meets the silent one first, and fails over after 1 s
  // (not at handshake_timeout); the second starts at the real one.
  const auto first = working_session(sluice.port());
  CHECK(first >= 900ms);
  CHECK(first < 5s);
  CHECK(working_session(sluice.port()) < 1s);
  CHECK(silent.accepted() == 1);
  CHECK(wait_until([&] { return silent.open_now() == 0; }, 5s));
  const std::string text = http_get(sluice.metrics_port());
  CHECK(metric_value(text, "sluice_upstream_connect_errors_total", upstream_label(silent.port())) ==
        1);
  CHECK(metric_value(text, "sluice_timeouts_total", main_and("kind", "connect")) == 1);
  CHECK(metric_value(text, "sluice_timeouts_total", main_and("kind", "handshake")) == 0);
  CHECK(metric_value(text, "sluice_connections_rejected_total",
                     main_and("reason", "upstream_unavailable")) == 0);
  // The last upstream left gets the whole handshake_timeout, as a direct
  // connection to a slow server would: see the black-hole test in timeouts.
}

TEST_CASE(
    "upstream: a client's PROXY header reaches the upstream a failover lands on, after one that "
    "hung up") {
  if (direct_mode()) return;
  MariaDbServer server({.args = {"--proxy-protocol-networks=*", "--skip-name-resolve"},
                        .bootstrap_sql = "CREATE USER 'p'@'%'; GRANT ALL ON *.* TO 'p'@'%';"});
  FakeUpstream hangs_up(FakeUpstream::Mode::kAcceptClose);
  SluiceProcess sluice(one_worker({hangs_up.port(), server.port()}));
  RawMysqlClient client;
  REQUIRE_MESSAGE(client.connect(sluice.port()), client.last_error());
  // The header goes to the first upstream as soon as it accepts; that one
  // hangs up before greeting, and the next must get the header too.
  REQUIRE(client.send_raw("PROXY TCP4 10.9.8.7 127.0.0.1 40000 3306\r\n"));
  const HandshakeResult login = client.handshake("p");
  REQUIRE_MESSAGE(login.logged_in, login.failure);
  CHECK(hangs_up.accepted() == 1);
  const QueryResult r =
      client.query("SELECT host FROM information_schema.processlist WHERE id = CONNECTION_ID()");
  REQUIRE_MESSAGE(r.ok(), r.failure);
  CHECK(r.rows()[0][0] == "10.9.8.7:40000");
  const std::string text = http_get(sluice.metrics_port());
  CHECK(metric_value(text, "sluice_upstream_connect_errors_total",
                     upstream_label(hangs_up.port())) == 1);
  CHECK(metric_value(text, "sluice_connections_rejected_total",
                     main_and("reason", "upstream_unavailable")) == 0);
}

TEST_CASE(
    "upstream: max_connections 2 refuses the third client with 1040 08004 seq 0 and keeps "
    "the two sessions") {
  if (direct_mode()) return;
  MariaDbServer server;
  Target target(server, {.listener = {{"max_connections", "2"}}});
  SluiceProcess& sluice = *target.sluice();
  MysqlConn monitor(server.socket_options());
  const long long server_connections_before =
      std::stoll(monitor.scalar("SELECT VARIABLE_VALUE FROM information_schema.GLOBAL_STATUS "
                                "WHERE VARIABLE_NAME = 'CONNECTIONS'"));

  RawMysqlClient one;
  RawMysqlClient two;
  for (RawMysqlClient* c : {&one, &two}) {
    REQUIRE(c->connect(target.port()));
    const HandshakeResult login = c->handshake();
    REQUIRE_MESSAGE(login.logged_in, login.failure);
  }

  RawMysqlClient third;
  REQUIRE_MESSAGE(third.connect(target.port()), third.last_error());
  const ReadResult read = third.read_packet(10s);
  check_err(read, 1040, "08004", 0);
  const ReadStatus end = third.wait_closed(5s);
  CHECK_MESSAGE((end == ReadStatus::kEof || end == ReadStatus::kReset),
                std::string(to_string(end)));

  // The two open sessions are unaffected.
  for (RawMysqlClient* c : {&one, &two}) {
    const QueryResult r = c->query("SELECT 'still here'");
    CHECK_MESSAGE(r.ok(), r.failure);
  }
  // No upstream connection was made for the refused client.
  const long long server_connections_after =
      std::stoll(monitor.scalar("SELECT VARIABLE_VALUE FROM information_schema.GLOBAL_STATUS "
                                "WHERE VARIABLE_NAME = 'CONNECTIONS'"));
  CHECK(server_connections_after - server_connections_before == 2);
  const std::string text = http_get(sluice.metrics_port());
  CHECK(metric_value(text, "sluice_connections_rejected_total",
                     main_and("reason", "max_connections")) == 1);
  CHECK(metric_value(text, "sluice_connections_total", kMain) == 3);
  CHECK(metric_value(text, "sluice_connections_active", kMain) == 2);

  // Once one leaves, a new client gets in. Its slot is freed when the server
  // has read its FIN and closed (as mysqld frees the thread), a few ms after
  // sluice_connections_active drops: until then a client may still get 1040.
  one.close();
  CHECK(wait_until(
      [&] { return scrape(sluice.metrics_port(), "sluice_connections_active", kMain) == 1; }, 5s));
  std::unique_ptr<RawMysqlClient> next;
  REQUIRE(wait_until(
      [&] {
        next = std::make_unique<RawMysqlClient>();
        return next->connect(target.port()) && next->handshake().logged_in;
      },
      5s));
  const QueryResult r = next->query("SELECT 'through'");
  REQUIRE_MESSAGE(r.ok(), r.failure);
  CHECK(r.rows()[0][0] == "through");
}

TEST_CASE(
    "upstream: a client's COM_QUIT frees its max_connections slot at once, before it closes "
    "its socket (as mysqld)") {
  if (direct_mode()) return;
  MariaDbServer server;
  Target target(server, {.listener = {{"max_connections", "1"}}});
  SluiceProcess& sluice = *target.sluice();
  const auto quitter = limits::raw_login(target.port());
  REQUIRE(quitter->send_packet(0, std::string(1, '\x01')));  // COM_QUIT; the socket stays open
  CHECK(wait_until(
      [&] { return scrape(sluice.metrics_port(), "sluice_connections_active", kMain) == 0; }, 5s));
  // Well within the 2 s a closing session lingers for its client.
  const auto next = limits::raw_login(target.port());
  CHECK(scrape(sluice.metrics_port(), "sluice_connections_rejected_total",
               main_and("reason", "max_connections")) == 0);
}

}  // namespace
}  // namespace sluice::test
