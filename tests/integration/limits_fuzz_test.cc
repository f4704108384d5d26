// Fuzz-style limit test: random packet sizes around max_allowed_packet, sent in random splits with
// small pauses, from several clients at once, some vanishing mid-packet. sluice must never crash,
// never forward a partial or refused packet (the server's byte count says so exactly), answer
// every refusal with 1153, and give back every descriptor.
#include <doctest/doctest.h>

#include <cstdlib>
#include <memory>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include "tests/support/limits_support.h"
#include "tests/support/mariadb_server.h"
#include "tests/support/metrics_scrape.h"
#include "tests/support/mysql_conn.h"
#include "tests/support/raw_mysql.h"
#include "tests/support/target.h"

namespace sluice::test::limits {
namespace {

using namespace std::chrono_literals;
using Clock = std::chrono::steady_clock;

constexpr std::size_t kLimit = 64 * 1024;

struct FuzzTally {
  int logins = 0;
  int accepted = 0;
  int refused = 0;
  int aborted = 0;
  int aborted_oversized = 0;          // abandoned after the header of an oversized packet was sent
  long long accepted_wire_bytes = 0;  // headers + payloads of the packets the server must get
  std::vector<std::string> failures;
};

// Writes `bytes` in random pieces (1 byte .. 64K, the header often cut up),
// sometimes pausing. False once a write fails.
bool send_split(RawMysqlClient& client, std::string_view bytes, std::mt19937& rng) {
  std::size_t pos = 0;
  while (pos < bytes.size()) {
    std::size_t piece = 0;
    switch (rng() % 4) {
      case 0:
        piece = 1 + rng() % 7;
        break;
      case 1:
        piece = 1 + rng() % 512;
        break;
      case 2:
        piece = 1 + rng() % 8192;
        break;
      default:
        piece = 1 + rng() % 65536;
        break;
    }
    piece = std::min(piece, bytes.size() - pos);
    if (!client.send_raw(bytes.substr(pos, piece), 30s)) return false;
    pos += piece;
    if (rng() % 8 == 0) std::this_thread::sleep_for(std::chrono::microseconds(rng() % 2000));
  }
  return true;
}

void fuzz_client(int port, unsigned seed, int packets, bool reject, FuzzTally* tally) {
  std::mt19937 rng(seed);
  std::unique_ptr<RawMysqlClient> client;
  auto fail = [&](const std::string& what) {
    tally->failures.push_back("seed " + std::to_string(seed) + ": " + what);
  };
  for (int i = 0; i < packets; ++i) {
    if (!client) {
      client = std::make_unique<RawMysqlClient>();
      if (!client->connect(port, 30s)) return fail("connect: " + client->last_error());
      const auto login = client->handshake("root", "", "", 0, 30s);
      if (!login.logged_in) return fail("login: " + login.failure);
      ++tally->logins;
    }
    // Sizes: around the limit mostly, some small, a few multi-frame.
    std::size_t size = 0;
    const unsigned pick = rng() % 100;
    if (pick < 40) {
      size = kLimit - 1 - rng() % 300;
    } else if (pick < 75) {
      size = kLimit + rng() % 300;
    } else if (pick < 85) {
      size = rng() % 2 == 0 ? kLimit - 1 : kLimit;
    } else if (pick < 93) {
      size = 64 + rng() % 4000;
    } else if (pick < 95) {
      size = 0xFFFFFF - 2 + rng() % 5;  // around the frame boundary: 1 or 2 frames
    } else {
      size = 0;  // a client that vanishes mid-packet
    }
    const std::string id = std::to_string(seed) + std::to_string(1000 + i);
    if (size == 0) {
      // Part of a packet (sometimes only part of its header; a legal packet or
      // one being refused), then gone.
      const std::size_t abandoned = rng() % 2 == 0 ? kLimit - 100 : kLimit + 1000;
      const std::string bytes = frames(0, sized_query(abandoned, nullptr, "SELECT " + id + ", "));
      const std::size_t cut = 1 + rng() % (bytes.size() - 1);
      if (abandoned >= kLimit && cut >= 4) ++tally->aborted_oversized;
      send_split(*client, std::string_view(bytes).substr(0, cut), rng);
      if (rng() % 2 == 0) {
        client->reset();
      } else {
        client->close();
      }
      client.reset();
      ++tally->aborted;
      continue;
    }
    std::size_t fill = 0;
    const std::string payload = sized_query(size, &fill, "SELECT " + id + ", ");
    const std::string bytes = frames(0, payload);
    const int frame_count = static_cast<int>(size / kMaxFrame) + 1;
    const bool sent = send_split(*client, bytes, rng);
    if (size < kLimit) {
      if (!sent) return fail("send of a legal packet failed: " + client->last_error());
      const RawResponse response = read_response(*client, 60s);
      if (!response.ok() || response.rows.size() != 1 || response.rows[0].size() != 2 ||
          response.rows[0][0] != id || response.rows[0][1] != std::to_string(fill)) {
        return fail("legal packet of " + std::to_string(size) + " bytes: " + why(response));
      }
      ++tally->accepted;
      tally->accepted_wire_bytes += static_cast<long long>(bytes.size());
      continue;
    }
    // Refused: reject answers one past the last frame, close one past the
    // crossing frame (always the first here: every frame over 64K crosses).
    const ReadResult read = client->read_packet(60s);
    const auto err = read.ok() ? parse_err(read.packet) : std::nullopt;
    const int want_seq = reject ? frame_count : 1;
    if (!err || err->code != 1153 || err->sqlstate != "08S01" || read.packet.seq != want_seq) {
      return fail("oversized packet of " + std::to_string(size) + " bytes: got " + err_text(err) +
                  " seq " + std::to_string(read.packet.seq) + " (read " + to_string(read.status) +
                  "), want 1153 seq " + std::to_string(want_seq));
    }
    ++tally->refused;
    if (!reject) {
      const ReadStatus end = client->wait_closed(15s);
      if (end != ReadStatus::kEof && end != ReadStatus::kReset) {
        return fail("still open after a close-mode refusal");
      }
      client.reset();
    }
  }
  if (client) client->close();
}

void run_fuzz(bool reject) {
  MariaDbServer server({.args = {"--max-allowed-packet=1G", "--max-connect-errors=1000000"}});
  Target target(server, {.listener = {{"max_allowed_packet", std::to_string(kLimit)},
                                      {"on_oversized", reject ? "reject" : "close"},
                                      {"net_read_timeout", "30s"}}});
  if (target.direct()) {
    MESSAGE("direct mode: nothing to compare");
    return;
  }
  SluiceProcess& sluice = *target.sluice();
  MysqlConn monitor(server.socket_options());

  // What one login costs the server in bytes (the HandshakeResponse): the
  // raw client's is the same every time.
  REQUIRE(wait_server_sessions(monitor, 0, 30s));
  long long before = server_bytes_from_others(monitor);
  {
    RawMysqlClient probe;
    REQUIRE_MESSAGE(probe.connect(target.port()), probe.last_error());
    REQUIRE(probe.handshake().logged_in);
    probe.close();
  }
  REQUIRE(wait_server_sessions(monitor, 0, 30s));
  const long long login_bytes = server_bytes_from_others(monitor) - before;
  REQUIRE(login_bytes > 0);
  std::this_thread::sleep_for(300ms);
  const int fds_before = sluice.fd_count();
  const std::string metrics_before = http_get(sluice.metrics_port());
  const double oversized_before = metric_sum(metrics_before, "sluice_oversized_packets_total");
  before = server_bytes_from_others(monitor);

  // Seeds differ per run; they are printed so a failure can be replayed.
  // SLUICE_FUZZ_SEED=<n> replays a run.
  const char* seed_env = std::getenv("SLUICE_FUZZ_SEED");
  const unsigned base_seed = seed_env != nullptr
                                 ? static_cast<unsigned>(std::strtoul(seed_env, nullptr, 10))
                                 : std::random_device{}();
  MESSAGE("fuzz base seed ", base_seed);
  constexpr int kClients = 4;
  constexpr int kPackets = 150;
  std::vector<FuzzTally> tallies(kClients);
  const auto start = Clock::now();
  {
    std::vector<std::thread> threads;
    for (int c = 0; c < kClients; ++c) {
      threads.emplace_back([&, c] {
        fuzz_client(target.port(), base_seed + static_cast<unsigned>(c) * 7919, kPackets, reject,
                    &tallies[c]);
      });
    }
    for (auto& thread : threads) thread.join();
  }
  FuzzTally total;
  for (const auto& tally : tallies) {
    total.logins += tally.logins;
    total.accepted += tally.accepted;
    total.refused += tally.refused;
    total.aborted += tally.aborted;
    total.aborted_oversized += tally.aborted_oversized;
    total.accepted_wire_bytes += tally.accepted_wire_bytes;
    for (const auto& failure : tally.failures) total.failures.push_back(failure);
  }
  const std::string mode = reject ? "reject" : "close";
  MESSAGE("fuzz (", mode, "): ", total.accepted, " accepted, ", total.refused, " refused, ",
          total.aborted, " aborted mid-packet, ", total.logins, " logins in ",
          std::chrono::duration<double>(Clock::now() - start).count(), " s");
  for (const auto& failure : total.failures) FAIL_CHECK(failure);
  CHECK(sluice.running());
  CHECK(total.accepted > 0);
  CHECK(total.refused > 0);

  // Every session ends, on the server too, and sluice gives back every fd.
  // (Promptly: well before net_read_timeout could be what ends them.)
  CHECK(wait_server_sessions(monitor, 0, 10s));
  const auto deadline = Clock::now() + 10s;
  while (sluice.fd_count() > fds_before && Clock::now() < deadline) {
    std::this_thread::sleep_for(50ms);
  }
  CHECK(sluice.fd_count() == fds_before);
  // The server read exactly the logins and the accepted packets: no byte of
  // a refused packet and no part of an abandoned one.
  const long long received = server_bytes_from_others(monitor) - before;
  CHECK(received == total.logins * login_bytes + total.accepted_wire_bytes);
  const std::string metrics = http_get(sluice.metrics_port());
  // close decides at the header, so a client gone after an oversized header
  // counts too; reject counts when the discarded packet ends, which an
  // abandoned one never does.
  const double counted = metric_sum(metrics, "sluice_oversized_packets_total") - oversized_before;
  if (reject) {
    CHECK(counted == total.refused);
  } else {
    CHECK(counted == total.refused + total.aborted_oversized);
  }
  CHECK(metric_value(metrics, "sluice_connections_active", {{"listener", "main"}}) == 0);
  CHECK(metric_value(metrics, "sluice_buffered_bytes") == 0);
}

// Found by the fuzz test: a client that sends part of a packet and resets the
// connection at once (RST right behind the data) must be noticed at once, not
// after net_read_timeout. With the data still queued when the RST lands, the
// socket polls POLLERR; libuv then stops the poll handle and reports
// UV_EBADF (libuv src/unix/poll.c, uv__poll_io); sluice's callback does one
// read, which returns the queued data, and update_poll() never restarts the
// handle because it still believes it is started.
TEST_CASE("limits: a client that resets right after part of a packet is closed at once") {
  MariaDbServer server({.args = {"--max-allowed-packet=1G", "--max-connect-errors=1000000"}});
  Target target(server, {.listener = {{"max_allowed_packet", "64K"},
                                      {"on_oversized", "reject"},
                                      {"net_read_timeout", "20s"}}});
  if (target.direct()) {
    MESSAGE("direct mode: nothing to check");
    return;
  }
  SluiceProcess& sluice = *target.sluice();
  MysqlConn monitor(server.socket_options());
  std::this_thread::sleep_for(200ms);
  const int fds_before = sluice.fd_count();
  const long long bytes_before = server_bytes_from_others(monitor);
  long long login_bytes = 0;
  int logins = 0;
  const std::string bytes = frames(0, sized_query(kLimit - 100));
  // A whole COM_STMT_CLOSE (no response) then the RST: the session would sit
  // until wait_timeout (8h by default) instead of net_read_timeout.
  const std::string stmt_close = frames(0, std::string("\x19\xe7\x03\x00\x00", 5));
  long long forwarded = 0;
  for (const std::size_t cut :
       {std::size_t{2}, std::size_t{100}, std::size_t{65000}, std::string::npos}) {
    for (const bool reset : {true, false}) {
      CAPTURE(cut);
      CAPTURE(reset);
      constexpr int kClients = 6;
      std::vector<std::unique_ptr<RawMysqlClient>> clients;
      for (int i = 0; i < kClients; ++i) clients.push_back(raw_login(target.port()));
      logins += kClients;
      REQUIRE(wait_server_sessions(monitor, kClients, 30s));
      if (login_bytes == 0)
        login_bytes = (server_bytes_from_others(monitor) - bytes_before) / kClients;
      for (auto& client : clients) {
        // Part of a legal packet, then at once an RST (or a FIN).
        if (cut == std::string::npos) {
          REQUIRE(client->send_raw(stmt_close));
          forwarded += static_cast<long long>(stmt_close.size());
        } else {
          REQUIRE(client->send_raw(std::string_view(bytes).substr(0, cut)));
        }
        if (reset) {
          client->reset();
        } else {
          client->close();
        }
      }
      const auto start = Clock::now();
      const bool gone = wait_server_sessions(monitor, 0, 5s);
      const int open = server_sessions(monitor);
      CHECK_MESSAGE(gone, open, " of ", kClients,
                    " sessions still open 5 s after their clients vanished (net_read_timeout 20s)");
      if (!gone && cut == std::string::npos) {
        // Nothing but wait_timeout would end these: end them from the server.
        for (const auto& row : monitor.rows("SELECT ID FROM information_schema.PROCESSLIST "
                                            "WHERE ID <> CONNECTION_ID() AND COMMAND = 'Sleep'")) {
          monitor.exec("KILL " + *row[0]);
        }
      }
      if (!gone) {
        REQUIRE(wait_server_sessions(monitor, 0, 60s));
        MESSAGE("... they closed after ",
                std::chrono::duration<double>(Clock::now() - start).count(), " s");
      }
    }
  }
  // Nothing of the partial packets reached the server, every fd came back.
  CHECK(server_bytes_from_others(monitor) - bytes_before == logins * login_bytes + forwarded);
  const auto deadline = Clock::now() + 10s;
  while (sluice.fd_count() > fds_before && Clock::now() < deadline) {
    std::this_thread::sleep_for(50ms);
  }
  CHECK(sluice.fd_count() == fds_before);
}

TEST_CASE("limits: fuzz with on_oversized reject - random sizes and splits around a 64K limit") {
  run_fuzz(true);
}

TEST_CASE("limits: fuzz with on_oversized close - random sizes and splits around a 64K limit") {
  run_fuzz(false);
}

}  // namespace
}  // namespace sluice::test::limits
