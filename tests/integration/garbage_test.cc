// Garbage from a client (an HTTP request, a malformed HandshakeResponse, random bytes): a clear
// ERR and a close, nothing of it reaching the server or counted as forwarded, the rest unaffected.
#include <doctest/doctest.h>

#include <random>
#include <string>

#include "tests/support/fault_peers.h"
#include "tests/support/limits_support.h"
#include "tests/support/mariadb_server.h"
#include "tests/support/metrics_scrape.h"
#include "tests/support/mysql_conn.h"
#include "tests/support/probes.h"
#include "tests/support/raw_mysql.h"
#include "tests/support/sluice_process.h"
#include "tests/support/target.h"

namespace sluice::test::limits {
namespace {

using namespace std::chrono_literals;
using namespace fault;  // tests/support/fault_peers.h, probes.h

const Labels kClientToServer = {{"listener", "main"}, {"direction", "client_to_server"}};

// What garbage sessions must leave untouched: the server's bytes received
// from clients, and sluice's client-to-server packets and bytes (forwarded
// ones only).
struct Untouched {
  long long server_bytes = 0;
  double packets = 0;
  double bytes = 0;
};

// A server, sluice in front of it, and what was untouched when it started.
class GarbageBench {
 public:
  explicit GarbageBench(SluiceConfig config = {})
      : target_(server_, std::move(config)), monitor_(server_.socket_options()), before_(now()) {}

  int port() const { return target_.port(); }

  // Nothing moved since the start, and sluice still serves a real login.
  void check_untouched_and_serving() {
    const Untouched after = now();
    CHECK(after.server_bytes == before_.server_bytes);
    CHECK(after.packets == before_.packets);
    CHECK(after.bytes == before_.bytes);
    CHECK(fault::wait_until(
        [&] {
          return scrape(metrics_port(), "sluice_connections_active", {{"listener", "main"}}) == 0;
        },
        5s));
    auto client = raw_login(port());
    CHECK(client->query("SELECT 1").ok());
  }

 private:
  int metrics_port() { return target_.sluice()->metrics_port(); }
  Untouched now() {
    const std::string text = http_get(metrics_port());
    return {server_bytes_from_others(monitor_),
            metric_value(text, "sluice_packets_total", kClientToServer),
            metric_value(text, "sluice_bytes_total", kClientToServer)};
  }

  MariaDbServer server_;
  Target target_;
  MysqlConn monitor_;
  Untouched before_;
};

// A client that read the greeting, for sending garbage as its answer.
std::unique_ptr<RawMysqlClient> greeted(int port) {
  auto client = std::make_unique<RawMysqlClient>();
  REQUIRE_MESSAGE(client->connect(port), client->last_error());
  const ReadResult greeting = client->read_packet(10s);
  REQUIRE_MESSAGE(greeting.ok(), fault::describe(greeting));
  CHECK(greeting.packet.seq == 0);
  return client;
}

TEST_CASE("garbage: an HTTP request answering the greeting gets 1043 and a close") {
  if (direct_mode()) return;
  GarbageBench bench;

  auto client = greeted(bench.port());
  REQUIRE(client->send_raw("GET / HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n"));
  // "GET " reads as a frame header with sequence id 0x20, not the 1 that
  // answers a greeting: the ERR goes one past it, as mysqld's does.
  expect_err(*client, 1043, "08S01", "Bad handshake", 0x21);
  expect_closed(*client);
  bench.check_untouched_and_serving();
}

TEST_CASE("garbage: a framed but malformed HandshakeResponse gets 1043 and is not counted") {
  if (direct_mode()) return;
  GarbageBench bench;

  // Seq 1 as it should be, but two bytes are no HandshakeResponse: sluice
  // refuses it itself, so it is never forwarded, nor counted as forwarded.
  for (const std::string& payload : {std::string(2, '\0'), std::string()}) {
    CAPTURE(payload.size());
    auto client = greeted(bench.port());
    REQUIRE(client->send_packet(1, payload));
    expect_err(*client, 1043, "08S01", "Bad handshake", 2);
    expect_closed(*client);
  }
  bench.check_untouched_and_serving();
}

TEST_CASE("garbage: random bytes after the greeting get an ERR and a close, never a hang") {
  if (direct_mode()) return;
  GarbageBench bench({.listener = {{"net_read_timeout", "2s"}}});

  for (unsigned seed = 1; seed <= 20; ++seed) {
    CAPTURE(seed);
    std::mt19937 rng(seed);
    std::string bytes(1 + rng() % 4096, '\0');
    for (char& c : bytes) c = static_cast<char>(rng());
    // The first frame must not claim sequence id 1, or it could be a short
    // but well-formed HandshakeResponse that the server itself judges.
    if (bytes.size() > 3 && bytes[3] == '\x01') bytes[3] = '\x02';
    auto client = greeted(bench.port());
    REQUIRE(client->send_raw(bytes));
    const ReadResult read = client->read_packet(10s);
    // A header cut short waits for net_read_timeout (1159); anything else is
    // refused at once (1043). Either way an ERR, then the close.
    INFO("client received: ", fault::describe(read));
    REQUIRE(read.ok());
    const auto err = parse_err(read.packet);
    REQUIRE(err.has_value());
    CHECK((err->code == 1043 || err->code == 1159));
    expect_closed(*client);
  }
  bench.check_untouched_and_serving();
}

}  // namespace
}  // namespace sluice::test::limits
