// sluice's memory under packet pressure: oversized streams hold nothing (RSS flat), memory_limit
// pauses reads so several large packets complete in turn, and packets that can never fit get
// out_of_memory (1041).
#include <doctest/doctest.h>

#include <poll.h>
#include <sys/resource.h>
#include <sys/socket.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "tests/support/limits_support.h"
#include "tests/support/mariadb_server.h"
#include "tests/support/metrics_scrape.h"
#include "tests/support/mysql_codec.h"
#include "tests/support/mysql_conn.h"
#include "tests/support/probes.h"
#include "tests/support/raw_mysql.h"
#include "tests/support/target.h"

namespace sluice::test::limits {
namespace {

using namespace std::chrono_literals;
using Clock = std::chrono::steady_clock;

constexpr std::uint64_t kGiB = 1024 * kMiB;

double seconds_since(Clock::time_point start) {
  return std::chrono::duration<double>(Clock::now() - start).count();
}

// Everything a streaming client thread saw; checked on the main thread
// (doctest assertions are not made from the client threads).
struct StreamOutcome {
  std::string failure;  // set when the client could not log in
  std::uint64_t sent = 0;
  bool send_failed = false;
  std::optional<ServerError> err;
  int err_seq = -1;
  ReadStatus end = ReadStatus::kError;  // how the connection ended (close mode)
  bool next_query_ok = false;           // reject mode: SELECT 1 afterwards
  double seconds = 0;
};

// Logs in without doctest assertions (for client threads).
bool login_quietly(RawMysqlClient& client, int port, std::string* failure) {
  if (!client.connect(port, 60s)) {
    *failure = "connect: " + client.last_error();
    return false;
  }
  const auto login = client.handshake("root", "", "", 0, 60s);
  if (!login.logged_in) {
    *failure = "login: " + login.failure;
    return false;
  }
  return true;
}

// Streams one well-formed logical packet of `payload` bytes (frames of
// 0xFFFFFF, seq 0, 1, ...) made of `chunk` repeated; stops at the first
// failed send. Returns the sequence id of the last frame.
int stream_packet(RawMysqlClient& client, std::uint64_t payload, const std::string& chunk,
                  StreamOutcome* out) {
  std::uint64_t left = payload;
  int seq = 0;
  while (true) {
    const std::uint32_t frame =
        static_cast<std::uint32_t>(std::min<std::uint64_t>(left, kMaxFrame));
    if (!client.send_raw(frame_header(frame, static_cast<std::uint8_t>(seq)), 60s)) {
      out->send_failed = true;
      return seq;
    }
    out->sent += 4;
    std::uint32_t frame_left = frame;
    while (frame_left > 0) {
      const std::size_t n = std::min<std::size_t>(frame_left, chunk.size());
      if (!client.send_raw(std::string_view(chunk.data(), n), 60s)) {
        out->send_failed = true;
        return seq;
      }
      frame_left -= static_cast<std::uint32_t>(n);
      out->sent += n;
    }
    left -= frame;
    if (frame < kMaxFrame) return seq;
    ++seq;
  }
}

// reject mode: a 1 GiB packet is discarded as it streams, then the ERR
// (one past its last frame: 64 full frames and a 64-byte one, seq 0..64)
// and the session carries on.
void stream_and_reject(int port, const std::string& chunk, StreamOutcome* out) {
  RawMysqlClient client;
  if (!login_quietly(client, port, &out->failure)) return;
  const auto start = Clock::now();
  stream_packet(client, kGiB, chunk, out);
  const ReadResult read = client.read_packet(120s);
  if (read.ok()) {
    out->err = parse_err(read.packet);
    out->err_seq = read.packet.seq;
  }
  out->seconds = seconds_since(start);
  const QueryResult next = client.query("SELECT 1", 60s);
  out->next_query_ok = next.ok() && next.rows().size() == 1 && next.rows()[0][0] == "1";
}

// close mode: a frame header announcing 0xFFFFFF bytes, then junk as fast as
// possible (up to 1 GiB) until sluice has closed the connection.
void stream_until_closed(int port, const std::string& chunk, StreamOutcome* out) {
  RawMysqlClient client;
  if (!login_quietly(client, port, &out->failure)) return;
  const auto start = Clock::now();
  if (client.send_raw(frame_header(kMaxFrame, 0), 60s)) {
    while (out->sent < kGiB) {
      if (!client.send_raw(chunk, 60s)) {
        out->send_failed = true;
        break;
      }
      out->sent += chunk.size();
    }
  }
  const ReadResult read = client.read_packet(60s);
  if (read.ok()) {
    out->err = parse_err(read.packet);
    out->err_seq = read.packet.seq;
  }
  out->end = client.wait_closed(60s);
  out->seconds = seconds_since(start);
}

// What a refusal for memory_limit moves: its own family, by direction, and
// (which it must not move) the oversized and rejected-connection families.
struct MemoryRefusals {
  double c2s = 0, s2c = 0;
  double oversized = 0, rejected = 0;
};

MemoryRefusals memory_refusals(int metrics_port) {
  const std::string text = http_get(metrics_port);
  auto refusals = [&](const char* direction) {
    return metric_value(text, "sluice_memory_limit_refusals_total",
                        {{"listener", "main"}, {"direction", direction}});
  };
  return {refusals("client_to_server"), refusals("server_to_client"),
          metric_sum(text, "sluice_oversized_packets_total"),
          metric_sum(text, "sluice_connections_rejected_total")};
}

// Exactly `c2s` and `s2c` refusals counted since `before`, nothing else.
void check_refusals(int metrics_port, const MemoryRefusals& before, double c2s, double s2c) {
  const MemoryRefusals after = memory_refusals(metrics_port);
  CHECK(after.c2s - before.c2s == c2s);
  CHECK(after.s2c - before.s2c == s2c);
  CHECK(after.oversized == before.oversized);
  CHECK(after.rejected == before.rejected);
}

// Scrapes sluice_buffered_bytes as fast as it can on a thread, keeping the maximum:
// the bytes sluice accounts against memory_limit, whatever the allocator keeps.
class BufferedSampler {
 public:
  explicit BufferedSampler(int metrics_port)
      : thread_([this, metrics_port] {
          while (!stop_.load()) {
            const double bytes = buffered_bytes(metrics_port);
            if (bytes > max_.load()) max_.store(bytes);
          }
        }) {}
  ~BufferedSampler() { stop(); }
  void stop() {
    stop_.store(true);
    if (thread_.joinable()) thread_.join();
  }
  double max() const { return max_.load(); }

 private:
  std::atomic<bool> stop_{false};
  std::atomic<double> max_{0};
  std::thread thread_;
};

// Idle RSS after a warm-up session, in KiB.
long warm_idle_rss(SluiceProcess& sluice, int port) {
  {
    auto warm = raw_login(port);
    REQUIRE(warm->query("SELECT 1").ok());
  }
  std::this_thread::sleep_for(300ms);
  return sluice.rss_kib();
}

// With the junk 'j' (0x6a) after the first 0xFFFFFF bytes, the next "frame
// header" sluice reads is 6a 6a 6a 6a: 6,974,058 bytes with seq 106, which
// crosses the 16M limit, so the ERR carries seq 107.
constexpr int kJunkCrossingErrSeq = 0x6a + 1;

TEST_CASE("memory: streaming a 1 GiB packet against a 16M limit keeps sluice's RSS flat") {
  MariaDbServer server;
  // With a 16M limit the first frame (16M - 1 bytes) is still legal and may
  // be held (SPEC: "earlier legal frames ... may be held"); with 1M the very
  // first header crosses, so nothing of the packet may be held at all.
  struct Variant {
    std::string action;
    std::string limit;
    long max_growth_kib;  // peak RSS over idle
  };
  for (const Variant& variant :
       {Variant{"reject", "16M", 24 * 1024}, Variant{"close", "16M", 24 * 1024},
        Variant{"reject", "1M", 4 * 1024}}) {
    const std::string& action = variant.action;
    CAPTURE(action);
    CAPTURE(variant.limit);
    Target target(server,
                  {.listener = {{"max_allowed_packet", variant.limit}, {"on_oversized", action}}});
    if (target.direct()) {
      MESSAGE("direct mode: sluice's memory");
      return;
    }
    SluiceProcess& sluice = *target.sluice();
    const long idle = warm_idle_rss(sluice, target.port());
    const std::string chunk(kMiB, 'j');
    RssSampler sampler(sluice.pid(), 2ms);
    StreamOutcome out;
    if (action == "reject") {
      stream_and_reject(target.port(), chunk, &out);
    } else {
      stream_until_closed(target.port(), chunk, &out);
    }
    sampler.stop();
    const long peak = std::max(sampler.peak_kib(), proc_status_kib(sluice.pid(), "VmHWM"));
    MESSAGE(action, " (limit ", variant.limit, "): idle RSS ", idle, " KiB, peak ", peak, " KiB (+",
            peak - idle, " KiB; sampled ", sampler.peak_kib(), " KiB over ", sampler.samples(),
            " samples); client sent ", out.sent / kMiB, " MiB in ", out.seconds, " s");
    REQUIRE_MESSAGE(out.failure.empty(), out.failure);
    REQUIRE(out.err.has_value());
    CHECK(out.err->code == 1153);
    CHECK(out.err->sqlstate == "08S01");
    if (action == "reject") {
      CHECK(out.sent == kGiB + 65 * 4);
      CHECK(out.err_seq == 65);
      CHECK(out.next_query_ok);
    } else {
      CHECK(out.err_seq == kJunkCrossingErrSeq);
      CHECK((out.end == ReadStatus::kEof || out.end == ReadStatus::kReset));
    }
    CHECK(peak < 64 * 1024);
    CHECK(peak - idle < variant.max_growth_kib);
    CHECK(wait_buffered_zero(sluice.metrics_port(), 10s));
    CHECK(sluice.running());
  }
}

TEST_CASE(
    "memory: 50 clients streaming 1 GiB packets at once against a 16M limit keep RSS within a "
    "64M memory_limit") {
  MariaDbServer server({.args = {"--max-connections=200"}});
  for (const std::string action : {"close", "reject"}) {
    CAPTURE(action);
    // Each packet's legal first frame (16M - 1 bytes) may be held: four at a
    // time fit the memory_limit. 50 GiB then cross sluice in about 20 s on an
    // idle 2-core machine, all packets side by side, so each takes about that
    // long: a longer net_read_timeout keeps a busy machine from turning this
    // memory test into a timeout test.
    Target target(server, {.listener = {{"max_allowed_packet", "16M"},
                                        {"on_oversized", action},
                                        {"net_read_timeout", "10m"}},
                           .top = {{"memory_limit", "64M"}}});
    if (target.direct()) {
      MESSAGE("direct mode: sluice's memory");
      return;
    }
    SluiceProcess& sluice = *target.sluice();
    const long idle = warm_idle_rss(sluice, target.port());
    const std::string chunk(kMiB, 'j');
    constexpr int kClients = 50;
    std::vector<StreamOutcome> outcomes(kClients);
    RssSampler sampler(sluice.pid(), 2ms);
    const auto start = Clock::now();
    {
      std::vector<std::thread> threads;
      for (int i = 0; i < kClients; ++i) {
        threads.emplace_back([&, i] {
          if (action == "reject") {
            stream_and_reject(target.port(), chunk, &outcomes[i]);
          } else {
            stream_until_closed(target.port(), chunk, &outcomes[i]);
          }
        });
      }
      for (auto& thread : threads) thread.join();
    }
    const double elapsed = seconds_since(start);
    sampler.stop();
    const long peak = std::max(sampler.peak_kib(), proc_status_kib(sluice.pid(), "VmHWM"));
    std::uint64_t total = 0;
    for (const auto& out : outcomes) total += out.sent;
    MESSAGE(action, ": ", kClients, " clients, idle RSS ", idle, " KiB, peak ", peak, " KiB (+",
            peak - idle, " KiB; sampled ", sampler.peak_kib(), " KiB); ", total / kMiB,
            " MiB streamed in ", elapsed, " s");
    for (int i = 0; i < kClients; ++i) {
      CAPTURE(i);
      const StreamOutcome& out = outcomes[i];
      REQUIRE_MESSAGE(out.failure.empty(), out.failure);
      REQUIRE(out.err.has_value());
      CHECK(out.err->code == 1153);
      if (action == "reject") {
        CHECK(out.err_seq == 65);
        CHECK(out.next_query_ok);
      } else {
        CHECK(out.err_seq == kJunkCrossingErrSeq);
        CHECK((out.end == ReadStatus::kEof || out.end == ReadStatus::kReset));
      }
    }
    // The 64M of held first frames, the 64 KiB slack, one read buffer per
    // session and allocator overhead: nothing grows with the 50 GiB.
    CHECK(peak - idle < (64 + 8) * 1024);
    CHECK(wait_buffered_zero(sluice.metrics_port(), 10s));
    CHECK(sluice.running());
  }
}

// A client thread sending one legal COM_QUERY (already framed) and reading its answer.
struct BigOutcome {
  std::string failure;
  bool sent = false;
  std::optional<std::string> answer;
  std::optional<ServerError> err;
  double seconds = 0;
};

TEST_CASE("memory: ten 200 MiB packets under a 512M memory_limit complete in turn") {
  MariaDbServer server({.args = {"--max-allowed-packet=1G"}});
  Target target(server, {.listener = {{"max_allowed_packet", "1G"},
                                      {"net_read_timeout", "120s"},
                                      {"net_write_timeout", "120s"}},
                         .top = {{"memory_limit", "512M"}}});
  if (target.direct()) {
    MESSAGE("direct mode: sluice's memory");
    return;
  }
  SluiceProcess& sluice = *target.sluice();
  MysqlConn monitor(server.socket_options());
  const long idle = warm_idle_rss(sluice, target.port());
  const double waits_before =
      metric_value(http_get(sluice.metrics_port()), "sluice_memory_limit_waits_total");

  std::size_t fill = 0;
  const std::string framed = frames(0, sized_query(200 * kMiB, &fill));
  constexpr int kClients = 10;
  std::vector<BigOutcome> outcomes(kClients);
  std::vector<std::unique_ptr<RawMysqlClient>> clients;
  for (int i = 0; i < kClients; ++i) clients.push_back(raw_login(target.port()));
  REQUIRE(wait_server_sessions(monitor, kClients, 30s));

  RssSampler sampler(sluice.pid(), 2ms);
  BufferedSampler buffered(sluice.metrics_port());
  const auto start = Clock::now();
  {
    std::vector<std::thread> threads;
    for (int i = 0; i < kClients; ++i) {
      threads.emplace_back([&, i] {
        BigOutcome& out = outcomes[i];
        const auto begin = Clock::now();
        out.sent = clients[i]->send_raw(framed, 600s);
        if (!out.sent) {
          out.failure = clients[i]->last_error();
          return;
        }
        const RawResponse response = read_response(*clients[i], 600s);
        out.err = response.error;
        if (response.ok() && response.rows.size() == 1) out.answer = response.rows[0][0];
        if (!response.ok() && !response.error) {
          out.failure = std::string("response: ") + to_string(response.status);
        }
        out.seconds = seconds_since(begin);
      });
    }
    for (auto& thread : threads) thread.join();
  }
  const double elapsed = seconds_since(start);
  sampler.stop();
  buffered.stop();
  const long peak = std::max(sampler.peak_kib(), proc_status_kib(sluice.pid(), "VmHWM"));
  const std::string metrics = http_get(sluice.metrics_port());
  const double waits = metric_value(metrics, "sluice_memory_limit_waits_total") - waits_before;
  MESSAGE("10 x 200 MiB: done in ", elapsed, " s; sluice idle RSS ", idle, " KiB, peak ", peak,
          " KiB (", peak / 1024, " MiB; sampled ", sampler.peak_kib(), " KiB over ",
          sampler.samples(), " samples); max sluice_buffered_bytes ", buffered.max(),
          "; memory_limit waits +", waits);
  for (int i = 0; i < kClients; ++i) {
    CAPTURE(i);
    CAPTURE(outcomes[i].seconds);
    CHECK_MESSAGE(outcomes[i].failure.empty(), outcomes[i].failure);
    CHECK_MESSAGE(!outcomes[i].err.has_value(), err_text(outcomes[i].err));
    CHECK(outcomes[i].answer == std::to_string(fill));
  }
  // 512 MiB of packet buffers plus sluice's own few MiB.
  CHECK(buffered.max() <= 512.0 * kMiB);
  CHECK(peak < (512 + 32) * 1024);
  CHECK(waits > 0);
  CHECK(wait_buffered_zero(sluice.metrics_port(), 10s));
  CHECK(elapsed < 300);
  for (auto& client : clients) CHECK(client->query("SELECT 1").ok());
}

TEST_CASE("memory: a client stalled inside a 20 MiB packet does not hold up another's") {
  // Both packets span two frames (no total known at the first header); their
  // 64M limits fit the 1G memory_limit together, so both may grow at once.
  MariaDbServer server({.args = {"--max-allowed-packet=64M"}});
  Target target(server, {.listener = {{"net_read_timeout", "120s"}}});
  if (target.direct()) {
    MESSAGE("direct mode: sluice's memory");
    return;
  }
  const int metrics_port = target.sluice()->metrics_port();
  const double waits_before =
      metric_value(http_get(metrics_port), "sluice_memory_limit_waits_total");
  std::size_t fill = 0;
  const std::string framed = frames(0, sized_query(20 * kMiB, &fill));
  auto stalled = raw_login(target.port());
  auto other = raw_login(target.port());
  // Half of the first frame, then nothing until the other client is answered.
  const std::size_t part = 8 * kMiB;
  REQUIRE(stalled->send_raw(std::string_view(framed).substr(0, part), 60s));
  std::this_thread::sleep_for(300ms);  // sluice has read it and holds the packet's turn

  const auto begin = Clock::now();
  REQUIRE(other->send_raw(framed, 60s));
  const RawResponse answer = read_response(*other, 60s);
  const double seconds = seconds_since(begin);
  MESSAGE("the other client's 20 MiB query took ", seconds, " s beside a stalled one");
  REQUIRE_MESSAGE(answer.ok(), why(answer));
  REQUIRE(answer.rows.size() == 1);
  CHECK(answer.rows[0][0] == std::to_string(fill));
  CHECK(seconds < 30);
  // Neither packet's reads were paused for memory or a turn.
  CHECK(metric_value(http_get(metrics_port), "sluice_memory_limit_waits_total") == waits_before);

  // The stalled packet then completes as usual.
  REQUIRE(stalled->send_raw(std::string_view(framed).substr(part), 60s));
  const RawResponse late = read_response(*stalled, 60s);
  REQUIRE_MESSAGE(late.ok(), why(late));
  REQUIRE(late.rows.size() == 1);
  CHECK(late.rows[0][0] == std::to_string(fill));
  CHECK(wait_buffered_zero(target.sluice()->metrics_port(), 10s));
}

TEST_CASE("memory: twenty 15 MiB single-frame packets under a 40M memory_limit complete in turn") {
  MariaDbServer server({.args = {"--max-allowed-packet=1G"}});
  Target target(server, {.listener = {{"max_allowed_packet", "16M"},
                                      {"net_read_timeout", "120s"},
                                      {"net_write_timeout", "120s"}},
                         .top = {{"memory_limit", "40M"}}});
  if (target.direct()) {
    MESSAGE("direct mode: sluice's memory");
    return;
  }
  SluiceProcess& sluice = *target.sluice();
  MysqlConn monitor(server.socket_options());
  const long idle = warm_idle_rss(sluice, target.port());
  const double waits_before =
      metric_value(http_get(sluice.metrics_port()), "sluice_memory_limit_waits_total");
  constexpr int kClients = 20;
  // Each packet reserves its exact size at its header: two fit at a time.
  std::vector<std::string> framed(kClients);
  std::vector<std::size_t> fills(kClients);
  for (int i = 0; i < kClients; ++i) {
    framed[i] = frames(0, sized_query(15 * kMiB - static_cast<std::size_t>(i) * 1000, &fills[i],
                                      "SELECT " + std::to_string(i) + ", "));
  }
  std::vector<BigOutcome> outcomes(kClients);
  std::vector<std::unique_ptr<RawMysqlClient>> clients;
  for (int i = 0; i < kClients; ++i) clients.push_back(raw_login(target.port()));
  REQUIRE(wait_server_sessions(monitor, kClients, 30s));
  RssSampler sampler(sluice.pid(), 2ms);
  BufferedSampler buffered(sluice.metrics_port());
  const auto start = Clock::now();
  {
    std::vector<std::thread> threads;
    for (int i = 0; i < kClients; ++i) {
      threads.emplace_back([&, i] {
        BigOutcome& out = outcomes[i];
        const auto begin = Clock::now();
        out.sent = clients[i]->send_raw(framed[i], 300s);
        if (!out.sent) {
          out.failure = clients[i]->last_error();
          return;
        }
        const RawResponse response = read_response(*clients[i], 300s);
        out.err = response.error;
        if (response.ok() && response.rows.size() == 1 && response.rows[0].size() == 2 &&
            response.rows[0][0] == std::to_string(i)) {
          out.answer = response.rows[0][1];
        }
        if (!response.ok() && !response.error) out.failure = why(response);
        out.seconds = seconds_since(begin);
      });
    }
    for (auto& thread : threads) thread.join();
  }
  const double elapsed = seconds_since(start);
  sampler.stop();
  buffered.stop();
  const long peak = std::max(sampler.peak_kib(), proc_status_kib(sluice.pid(), "VmHWM"));
  const double waits =
      metric_value(http_get(sluice.metrics_port()), "sluice_memory_limit_waits_total") -
      waits_before;
  MESSAGE("20 x 15 MiB: done in ", elapsed, " s; idle RSS ", idle, " KiB, peak ", peak,
          " KiB; max sluice_buffered_bytes ", buffered.max(), "; memory_limit waits +", waits);
  for (int i = 0; i < kClients; ++i) {
    CAPTURE(i);
    CHECK_MESSAGE(outcomes[i].failure.empty(), outcomes[i].failure);
    CHECK_MESSAGE(!outcomes[i].err.has_value(), err_text(outcomes[i].err));
    CHECK(outcomes[i].answer == std::to_string(fills[i]));
  }
  // What sluice holds stays within memory_limit (two 15 MiB packets at most) ...
  CHECK(buffered.max() <= 40.0 * kMiB);
  // ... but RSS has been seen up to ~67 MiB here: glibc keeps freed 15 MiB
  // buffers in its per-thread arenas (its mmap threshold rises after the first
  // free), so the bound allows memory_limit plus 48 MiB.
  CHECK(peak < (40 + 48) * 1024);
  CHECK(waits > 0);
  CHECK(wait_buffered_zero(sluice.metrics_port(), 10s));
}

// A HandshakeResponse41 for root with no password whose connection
// attributes carry one value of `value_size` bytes.
std::string hello_with_attribute(std::size_t value_size) {
  auto lenenc = [](std::uint64_t n) {
    std::string out;
    if (n < 251) return std::string(1, static_cast<char>(n));
    const int width = n < (1u << 16) ? 2 : n < (1u << 24) ? 3 : 8;
    out.push_back(static_cast<char>(width == 2 ? 0xfc : width == 3 ? 0xfd : 0xfe));
    for (int i = 0; i < width; ++i) out.push_back(static_cast<char>(n >> (8 * i)));
    return out;
  };
  // PROTOCOL_41 | SECURE_CONNECTION | PLUGIN_AUTH | CONNECT_ATTRS
  const std::uint32_t caps = 0x200 | 0x8000 | 0x80000 | 0x100000;
  std::string hello;
  for (int i = 0; i < 4; ++i) hello.push_back(static_cast<char>(caps >> (8 * i)));
  hello += std::string("\0\0\0\1", 4);  // max packet 16M
  hello.push_back(33);                  // utf8
  hello += std::string(23, '\0');
  hello += std::string("root\0\0", 6);  // user, empty auth response
  hello += std::string("mysql_native_password\0", 22);
  const std::string pair = lenenc(3) + "big" + lenenc(value_size) + std::string(value_size, 'a');
  return hello + lenenc(pair.size()) + pair;
}

TEST_CASE("memory: peers that announce large packets before logging in cannot fill memory_limit") {
  // Before the login ends a length prefix is not trusted with memory: four
  // bytes announcing 16 MiB used to reserve 16 MiB, so a few peers that
  // never log in (and stay until handshake_timeout) made everyone else's
  // reads wait for memory.
  MariaDbServer server({.args = {"--max-allowed-packet=64M"}});
  Target target(server, {.listener = {{"max_allowed_packet", "32M"},
                                      {"handshake_timeout", "60s"},
                                      {"net_read_timeout", "60s"}},
                         .top = {{"memory_limit", "40M"}}});
  if (target.direct()) {
    MESSAGE("direct mode: sluice's memory");
    return;
  }
  SluiceProcess& sluice = *target.sluice();
  const double waits_before =
      metric_value(http_get(sluice.metrics_port()), "sluice_memory_limit_waits_total");
  // Eight peers, each announcing a 16 MiB - 2 HandshakeResponse (128 MiB in
  // all) and sending three bytes of it, in two reads.
  std::vector<std::unique_ptr<RawMysqlClient>> bluffers;
  for (int i = 0; i < 8; ++i) {
    auto peer = std::make_unique<RawMysqlClient>();
    REQUIRE_MESSAGE(peer->connect(target.port()), peer->last_error());
    REQUIRE(peer->read_packet(10s).ok());  // the greeting
    REQUIRE(peer->send_raw(frame_header(kMaxFrame - 1, 1) + "x"));
    bluffers.push_back(std::move(peer));
  }
  std::this_thread::sleep_for(100ms);
  for (auto& peer : bluffers) REQUIRE(peer->send_raw("yy"));
  std::this_thread::sleep_for(300ms);
  CHECK(buffered_bytes(sluice.metrics_port()) < 1.0 * kMiB);

  // A client that logs in meanwhile is not held up, even with a 4 MiB query.
  const auto begin = Clock::now();
  auto client = raw_login(target.port());
  std::size_t fill = 0;
  REQUIRE(client->send_packet(0, sized_query(4 * kMiB, &fill), 30s));
  const RawResponse answer = read_response(*client, 30s);
  const double took = seconds_since(begin);
  MESSAGE("login and a 4 MiB query beside 8 bluffing peers took ", took, " s");
  REQUIRE_MESSAGE(answer.ok(), why(answer));
  CHECK(answer.rows[0][0] == std::to_string(fill));
  CHECK(took < 5);
  CHECK(metric_value(http_get(sluice.metrics_port()), "sluice_memory_limit_waits_total") ==
        waits_before);

  // A large HandshakeResponse that does come whole (two frames) still reaches
  // the server whole: the answer through sluice is the server's own answer
  // to it on a direct connection.
  const std::string hello = hello_with_attribute(20 * kMiB);
  auto answer_to_hello = [&](int port) {
    RawMysqlClient peer;
    REQUIRE_MESSAGE(peer.connect(port), peer.last_error());
    REQUIRE(peer.read_packet(10s).ok());
    REQUIRE(peer.send_packet(1, hello, 30s));
    const ReadResult read = peer.read_packet(30s);
    REQUIRE_MESSAGE(read.ok(), fault::describe(read));
    return read.packet;
  };
  const Packet direct = answer_to_hello(server.port());
  const Packet through = answer_to_hello(target.port());
  MESSAGE("the server answers a 20 MiB HandshakeResponse with seq ", int{direct.seq}, ": ",
          err_text(parse_err(direct)));
  CHECK(direct.seq == 3);  // one past the two frames: it read them all
  CHECK(through.seq == direct.seq);
  CHECK(through.payload == direct.payload);

  bluffers.clear();
  client.reset();
  CHECK(wait_buffered_zero(sluice.metrics_port(), 10s));
}

TEST_CASE(
    "memory: a packet that can never fit memory_limit gets 1041 one past the crossing frame") {
  MariaDbServer server({.args = {"--max-allowed-packet=1G"}});
  Target target(server,
                {.listener = {{"max_allowed_packet", "1G"}}, .top = {{"memory_limit", "60M"}}});
  if (target.direct()) {
    MESSAGE("direct mode: sluice's memory");
    return;
  }
  SluiceProcess& sluice = *target.sluice();
  MysqlConn monitor(server.socket_options());
  auto keeper = raw_login(target.port());
  auto client = raw_login(target.port());
  REQUIRE(wait_server_sessions(monitor, 2, 30s));
  const long long bytes_before = server_bytes_from_others(monitor);
  const MemoryRefusals before = memory_refusals(sluice.metrics_port());
  CHECK(before.c2s == 0);
  CHECK(before.s2c == 0);
  // 100 MiB: frames seq 0..6. The payload reaches 60M (62,914,560) with the
  // header of seq 3 (4 x 0xFFFFFF = 67,108,860 bytes): the ERR carries seq 4.
  client->send_packet(0, sized_query(100 * kMiB), 60s);
  expect_err(*client, 1041, "HY000", "Out of memory", 4);
  expect_closed(*client);
  // Counted once, in its own family: not as an oversized packet.
  check_refusals(sluice.metrics_port(), before, 1, 0);
  CHECK(wait_server_sessions(monitor, 1, 30s));
  CHECK(server_bytes_from_others(monitor) == bytes_before);
  CHECK(wait_buffered_zero(sluice.metrics_port(), 10s));
  // A packet that fits still goes through.
  std::size_t fill = 0;
  REQUIRE(keeper->send_packet(0, sized_query(40 * kMiB, &fill), 60s));
  const RawResponse response = read_response(*keeper);
  REQUIRE(response.ok());
  CHECK(response.rows[0][0] == std::to_string(fill));
  check_refusals(sluice.metrics_port(), before, 1, 0);
}

TEST_CASE(
    "memory: a large packet's buffer serves the next one, is not counted as packet bytes, "
    "and is given back within seconds") {
  MariaDbServer server({.args = {"--max-allowed-packet=1G"}});
  Target target(server, {.listener = {{"max_allowed_packet", "256M"}}});
  if (target.direct()) {
    MESSAGE("direct mode: sluice's memory");
    return;
  }
  SluiceProcess& sluice = *target.sluice();
  const long idle = warm_idle_rss(sluice, target.port());
  auto client = raw_login(target.port());
  std::size_t fill = 0;
  const std::string query = sized_query(48 * kMiB, &fill);
  long peak = 0;
  for (int i = 0; i < 3; ++i) {
    CAPTURE(i);
    REQUIRE(client->send_packet(0, query, 60s));
    const RawResponse response = read_response(*client);
    REQUIRE_MESSAGE(response.ok(), why(response));
    CHECK(response.rows[0][0] == std::to_string(fill));
    // Nothing of the packet is held any more, whatever buffer is kept (for
    // 5 s): the gauge is 0 well within that, once the response's own buffer
    // has gone back too (just after the write that delivered it).
    const auto settle = Clock::now() + 500ms;
    while (buffered_bytes(sluice.metrics_port()) != 0 && Clock::now() < settle) {
      std::this_thread::sleep_for(10ms);
    }
    CHECK(buffered_bytes(sluice.metrics_port()) == 0);
    peak = std::max(peak, sluice.rss_kib());
  }
  // Back-to-back packets reuse one buffer: RSS stays near one packet's size.
  MESSAGE("idle RSS ", idle, " KiB, after each of 3 x 48 MiB at most ", peak, " KiB");
  CHECK(peak < idle + 2 * 48 * 1024);
  // ... and the kept buffer goes once it is not reused.
  const auto deadline = Clock::now() + 10s;
  while (sluice.rss_kib() > idle + 8 * 1024 && Clock::now() < deadline) {
    std::this_thread::sleep_for(100ms);
  }
  MESSAGE("RSS after the pause: ", sluice.rss_kib(), " KiB");
  CHECK(sluice.rss_kib() <= idle + 8 * 1024);
  CHECK(client->query("SELECT 1").ok());
}

TEST_CASE("memory: the out_of_memory boundary is payload >= memory_limit (single frame)") {
  // SPEC, Memory: "a packet whose length prefixes show it can never fit
  // (payload >= memory_limit) is refused at once with out_of_memory".
  MariaDbServer server({.args = {"--max-allowed-packet=1G"}});
  Target target(server,
                {.listener = {{"max_allowed_packet", "1G"}}, .top = {{"memory_limit", "1M"}}});
  if (target.direct()) {
    MESSAGE("direct mode: sluice's memory");
    return;
  }
  const int metrics_port = target.sluice()->metrics_port();
  const MemoryRefusals before = memory_refusals(metrics_port);
  {
    auto client = raw_login(target.port());
    std::size_t fill = 0;
    REQUIRE(client->send_packet(0, sized_query(1048575, &fill), 60s));
    const RawResponse response = read_response(*client, 60s);
    CHECK_MESSAGE(response.ok(), "payload memory_limit - 1 refused: ", why(response));
    if (response.ok()) CHECK(response.rows[0][0] == std::to_string(fill));
  }
  check_refusals(metrics_port, before, 0, 0);
  {
    auto client = raw_login(target.port());
    client->send_packet(0, sized_query(1048576), 60s);
    expect_err(*client, 1041, "HY000", "Out of memory", 1);
    expect_closed(*client);
  }
  check_refusals(metrics_port, before, 1, 0);
}

// memory_limit keeps sluice's buffers within what the machine should have,
// but the system may still refuse one (an address-space limit, overcommit):
// that client gets out_of_memory and a close, the refusal is counted in its
// own family, and the other sessions go on.
TEST_CASE(
    "memory: a buffer the system refuses gets 1041 and is counted, and other sessions go on") {
  MariaDbServer server({.args = {"--max-allowed-packet=1G"}});
  Target target(server, {.listener = {{"max_allowed_packet", "1G"}}});
  if (target.direct()) {
    MESSAGE("direct mode: sluice's memory");
    return;
  }
  SluiceProcess& sluice = *target.sluice();
  MysqlConn monitor(server.socket_options());
  auto keeper = raw_login(target.port());
  auto client = raw_login(target.port());
  REQUIRE(wait_server_sessions(monitor, 2, 30s));
  // Every thread has served once (its malloc arena exists) before the limit.
  REQUIRE(keeper->query("SELECT 1").ok());
  for (int i = 0; i < 3; ++i) http_get(sluice.metrics_port());
  const std::string before = http_get(sluice.metrics_port());
  const long long bytes_before = server_bytes_from_others(monitor);
  // Address space for 8 MiB more than sluice has now: a 100 MiB packet's
  // first frame (16 MiB, seq 0) cannot get its buffer.
  const long vm_kib = proc_status_kib(sluice.pid(), "VmSize");
  REQUIRE(vm_kib > 0);
  rlimit old{};
  rlimit tight{static_cast<rlim_t>(vm_kib + 8 * 1024) * 1024, RLIM_INFINITY};
  REQUIRE(::prlimit(sluice.pid(), RLIMIT_AS, &tight, &old) == 0);
  client->send_packet(0, sized_query(100 * kMiB), 60s);
  expect_err(*client, 1041, "HY000", "Out of memory", 1);
  rlimit loose{RLIM_INFINITY, RLIM_INFINITY};
  REQUIRE(::prlimit(sluice.pid(), RLIMIT_AS, &loose, nullptr) == 0);
  expect_closed(*client);
  CHECK(wait_server_sessions(monitor, 1, 30s));
  CHECK(server_bytes_from_others(monitor) == bytes_before);
  CHECK(wait_buffered_zero(sluice.metrics_port(), 10s));
  const std::string after = http_get(sluice.metrics_port());
  auto delta = [&](const std::string& name, const char* direction) {
    const Labels labels = {{"listener", "main"}, {"direction", direction}};
    return metric_value(after, name, labels) - metric_value(before, name, labels);
  };
  CHECK(delta("sluice_allocation_failures_total", "client_to_server") == 1);
  CHECK(delta("sluice_allocation_failures_total", "server_to_client") == 0);
  CHECK(delta("sluice_memory_limit_refusals_total", "client_to_server") == 0);
  CHECK(metric_sum(after, "sluice_oversized_packets_total") ==
        metric_sum(before, "sluice_oversized_packets_total"));
  const QueryResult next = keeper->query("SELECT 'still here'");
  REQUIRE_MESSAGE(next.ok(), next.failure);
  CHECK(next.rows()[0][0] == "still here");
}

// Sends `burst` on `client`'s socket from a thread while the test reads the
// answers, as a pipelining client does (a server writes a result before it
// reads the next command). A failed check ends it too: the destructor shuts
// the socket for writing, then joins.
class BurstSender {
 public:
  BurstSender(RawMysqlClient& client, std::string burst)
      : fd_(client.fd()), burst_(std::move(burst)), thread_([this] { run(); }) {}
  ~BurstSender() {
    if (!thread_.joinable()) return;
    ::shutdown(fd_, SHUT_WR);
    thread_.join();
  }
  BurstSender(const BurstSender&) = delete;
  BurstSender& operator=(const BurstSender&) = delete;
  // Waits for the sender; true when the whole burst went out.
  bool finish() {
    thread_.join();
    return sent_;
  }

 private:
  void run() {
    std::size_t done = 0;
    while (done < burst_.size()) {
      pollfd pfd{fd_, POLLOUT, 0};
      if (::poll(&pfd, 1, 60'000) <= 0) return;
      const ssize_t n =
          ::send(fd_, burst_.data() + done, burst_.size() - done, MSG_NOSIGNAL | MSG_DONTWAIT);
      if (n < 0 && errno != EAGAIN) return;
      if (n > 0) done += static_cast<std::size_t>(n);
    }
    sent_ = true;
  }

  int fd_;
  std::string burst_;
  std::atomic<bool> sent_{false};
  std::thread thread_;
};

// A query returning a row of `row` bytes and 7, then a query of `text`'s
// length, as one pipelined burst.
std::string row_then_packet(std::size_t row, const std::string& text) {
  return frames(0, "\x03SELECT REPEAT('y', " + std::to_string(row) + "), 7") +
         frames(0, "\x03SELECT LENGTH('" + text + "')");
}

// Reads the two answers to row_then_packet (REQUIREs them).
void read_row_then_length(RawMysqlClient& client, std::size_t row, const std::string& text) {
  const QueryResult first = client.read_query_result(60s);
  REQUIRE_MESSAGE(first.ok(), first.failure);
  REQUIRE(first.rows()[0][0].has_value());
  CHECK(first.rows()[0][0]->size() == row);
  CHECK(first.rows()[0][1] == "7");
  const QueryResult length = client.read_query_result(60s);
  REQUIRE_MESSAGE(length.ok(), length.failure);
  CHECK(length.rows()[0][0] == std::to_string(text.size()));
}

// Nothing timed out or was refused, and no packet bytes stay held.
void check_no_stall(Target& target) {
  if (target.direct()) return;
  const std::string metrics = http_get(target.sluice()->metrics_port());
  CHECK(metric_sum(metrics, "sluice_timeouts_total") == 0);
  CHECK(metric_sum(metrics, "sluice_memory_limit_refusals_total") == 0);
  CHECK(wait_buffered_zero(target.sluice()->metrics_port(), 10s));
}

// A client that pipelines a large packet behind a query whose large row the
// server is still sending: the server reads the packet only once the row has
// been read, so the packet must not keep the memory turn the row needs.
TEST_CASE("memory: a large packet pipelined behind a large row completes under a 40M limit") {
  MariaDbServer server({.args = {"--max-allowed-packet=64M"}});
  Target target(server, {.listener = {{"max_allowed_packet", "64M"}, {"net_write_timeout", "5s"}},
                         .top = {{"memory_limit", "40M"}}});
  auto client = raw_login(target.port());
  constexpr std::size_t kRow = 0xFFFFFF + 67;  // two frames each way
  const std::string text(0xFFFFFF, 'e');
  BurstSender sender(*client, row_then_packet(kRow, text));
  read_row_then_length(*client, kRow, text);
  CHECK(sender.finish());
  CHECK(client->query("SELECT 'after'").ok());
  check_no_stall(target);
}

// The same across sessions: their client packets together hold most of the
// budget, and each server reads its packet only after its row has gone. A
// row of one frame streams through a chunk, and a chunk (like a read block)
// does not queue behind a large packet waiting for memory.
TEST_CASE(
    "memory: three sessions pipelining a 15 MiB packet behind a 12 MiB row under a 40M limit all "
    "complete") {
  MariaDbServer server({.args = {"--max-allowed-packet=64M"}});
  // A stall would end in net_write_timeout's 1161.
  Target target(server, {.listener = {{"max_allowed_packet", "64M"}, {"net_write_timeout", "30s"}},
                         .top = {{"memory_limit", "40M"}, {"workers", "2"}}});
  constexpr std::size_t kRow = 12 * kMiB;
  const std::string text(15 * kMiB, 'e');
  std::vector<std::unique_ptr<RawMysqlClient>> clients;
  for (int i = 0; i < 3; ++i) clients.push_back(raw_login(target.port()));
  const auto start = Clock::now();
  std::vector<std::unique_ptr<BurstSender>> senders;
  for (auto& client : clients) {
    senders.push_back(std::make_unique<BurstSender>(*client, row_then_packet(kRow, text)));
  }
  for (auto& client : clients) read_row_then_length(*client, kRow, text);
  const double seconds = std::chrono::duration<double>(Clock::now() - start).count();
  MESSAGE("three bursts answered in ", seconds, " s");
  CHECK(seconds < 20);
  for (auto& sender : senders) CHECK(sender->finish());
  check_no_stall(target);
}

TEST_CASE("memory: a server row larger than memory_limit gets 1041 with the row's own seq") {
  MariaDbServer server({.args = {"--max-allowed-packet=1G"}});
  Target target(server,
                {.listener = {{"max_allowed_packet", "1M"}}, .top = {{"memory_limit", "4M"}}});
  if (target.direct()) {
    MESSAGE("direct mode: sluice's memory");
    return;
  }
  const int metrics_port = target.sluice()->metrics_port();
  MysqlConn monitor(server.socket_options());
  auto client = raw_login(target.port());
  const MemoryRefusals before = memory_refusals(metrics_port);
  CHECK(before.c2s == 0);
  CHECK(before.s2c == 0);
  REQUIRE(client->send_packet(0, com_query("SELECT REPEAT('a', 5242880)")));
  for (int seq = 1; seq <= 3; ++seq) {  // count, definition, EOF
    const ReadResult read = client->read_packet(60s);
    REQUIRE(read.ok());
    REQUIRE_FALSE(parse_err(read.packet).has_value());
    CHECK(int{read.packet.seq} == seq);
  }
  const ReadResult frame = client->read_frame(60s);
  REQUIRE(frame.ok());
  const auto err = parse_err(frame.packet);
  REQUIRE_MESSAGE(err.has_value(), "a frame of ", frame.packet.payload.size(),
                  " bytes, not the ERR");
  CHECK(err->code == 1041);
  CHECK(err->sqlstate == "HY000");
  CHECK(err->message == "Out of memory");
  CHECK(int{frame.packet.seq} == 4);
  expect_closed(*client);
  CHECK(wait_server_sessions(monitor, 0, 30s));
  check_refusals(metrics_port, before, 0, 1);
}

}  // namespace
}  // namespace sluice::test::limits

namespace sluice::test::limits {
namespace {

// Reads the rest of a one-column, one-row text result set whose row is a
// single string of `length` bytes of 'a' (the column count was read already):
// definition, EOF, the row, EOF. Returns a description of what was wrong, or
// "" when all of it arrived intact.
std::string read_long_row(RawMysqlClient& client, std::size_t length) {
  for (int i = 0; i < 2; ++i) {
    const ReadResult read = client.read_packet(60s);
    if (!read.ok()) return std::string("metadata: ") + to_string(read.status);
  }
  const ReadResult row = client.read_packet(120s);
  if (!row.ok()) return std::string("row: ") + to_string(row.status);
  const std::string& payload = row.packet.payload;
  const std::size_t prefix = lenenc_size(length) - length;
  if (payload.size() != prefix + length) return "row of " + std::to_string(payload.size());
  if (payload.find_first_not_of('a', prefix) != std::string::npos) return "row bytes differ";
  const ReadResult eof = client.read_packet(60s);
  if (!eof.ok() || eof.packet.payload.empty() || eof.packet.payload[0] != '\xfe') {
    return "no EOF after the row";
  }
  return "";
}

TEST_CASE(
    "memory: a large server row streams to the client: sluice holds a chunk of it, not the row") {
  // 48 MiB: three frames. The client sends the query, then does not read:
  // the server blocks on its write and sluice holds what it read of the row.
  constexpr std::size_t kRow = 48 * kMiB;
  MariaDbServer server({.args = {"--max-allowed-packet=1G"}});
  Target target(server, {});
  if (target.direct()) {
    MESSAGE("direct mode: sluice's memory");
    return;
  }
  SluiceProcess& sluice = *target.sluice();
  const long idle = warm_idle_rss(sluice, target.port());
  const std::string sql = "SELECT REPEAT('a', " + std::to_string(kRow) + ")";
  const std::string before = http_get(sluice.metrics_port());
  auto client = raw_login(target.port());
  REQUIRE(client->send_packet(0, com_query(sql)));
  // The server needs a moment (longer on a loaded machine) to build the row;
  // once sluice holds some of it, give it time to take more if it would.
  // (The result's first packets pass through a block on their own before the
  // row starts: 64 KiB held is the row.)
  const auto deadline = std::chrono::steady_clock::now() + 30s;
  while (buffered_bytes(sluice.metrics_port()) < 64 * 1024 &&
         std::chrono::steady_clock::now() < deadline) {
    std::this_thread::sleep_for(100ms);
  }
  std::this_thread::sleep_for(500ms);
  const double held = buffered_bytes(sluice.metrics_port());
  MESSAGE("held while the client does not read: ", held, " bytes");
  CHECK(held > 0);
  CHECK(held <= 1.0 * kMiB);
  const ReadResult count = client->read_packet(60s);
  REQUIRE(count.ok());
  CHECK(read_long_row(*client, kRow) == "");
  // Counted as one packet of its full size, and the tracker saw it: the
  // response completed (timed), and the session takes the next query.
  CHECK(client->query("SELECT 1").ok());
  const std::string after = http_get(sluice.metrics_port());
  const Labels s2c{{"direction", "server_to_client"}};
  const double bytes = metric_value(after, "sluice_bytes_total", s2c) -
                       metric_value(before, "sluice_bytes_total", s2c);
  CHECK(bytes > kRow);
  CHECK(bytes < kRow + 64 * 1024);
  const Labels query{{"command", "COM_QUERY"}};
  CHECK(metric_value(after, "sluice_command_duration_seconds_count", query) -
            metric_value(before, "sluice_command_duration_seconds_count", query) ==
        2);
  const Labels big{{"direction", "server_to_client"}, {"le", "+Inf"}};
  CHECK(metric_value(after, "sluice_packet_size_bytes_bucket", big) -
            metric_value(before, "sluice_packet_size_bytes_bucket", big) >
        0);
  // RSS never held the row.
  MESSAGE("idle RSS ", idle, " KiB, after the row ", sluice.rss_kib(), " KiB");
  CHECK(sluice.rss_kib() < idle + 16 * 1024);
  CHECK(wait_buffered_zero(sluice.metrics_port(), 10s));
}

TEST_CASE("memory: with max_server_packet set, a large server row is held whole") {
  constexpr std::size_t kRow = 20 * kMiB;
  MariaDbServer server({.args = {"--max-allowed-packet=1G"}});
  Target target(server, {.listener = {{"max_server_packet", "64M"}}});
  if (target.direct()) {
    MESSAGE("direct mode: sluice's memory");
    return;
  }
  SluiceProcess& sluice = *target.sluice();
  auto client = raw_login(target.port());
  REQUIRE(client->send_packet(0, com_query("SELECT REPEAT('a', " + std::to_string(kRow) + ")")));
  // Held whole before any of it goes out, so it can still be refused.
  const auto deadline = Clock::now() + 30s;
  double held = 0;
  while ((held = buffered_bytes(sluice.metrics_port())) < kRow && Clock::now() < deadline) {
    std::this_thread::sleep_for(50ms);
  }
  CHECK(held >= kRow);
  const ReadResult count = client->read_packet(60s);
  REQUIRE(count.ok());
  CHECK(read_long_row(*client, kRow) == "");
}

TEST_CASE(
    "memory: a server that dies while its row streams leaves the client a cut packet, no ERR") {
  constexpr std::size_t kRow = 48 * kMiB;
  MariaDbServer server({.args = {"--max-allowed-packet=1G"}});
  Target target(server, {});
  MysqlConn monitor(server.socket_options());
  auto client = raw_login(target.port());
  REQUIRE(client->send_packet(0, com_query("SELECT REPEAT('a', " + std::to_string(kRow) + ")")));
  // The client reads the result set's head and lets the row start (the
  // server then blocks on its write); then the server's thread is killed.
  for (int i = 0; i < 3; ++i) REQUIRE(client->read_packet(60s).ok());
  std::this_thread::sleep_for(1s);
  const auto id = monitor.value(
      "SELECT id FROM information_schema.processlist WHERE info LIKE 'SELECT REPEAT%'");
  REQUIRE(id.has_value());
  monitor.exec("KILL " + *id);
  // Direct, the client reads part of the row and then the close: the same
  // through sluice, and never an ERR spliced into the row. The row is all
  // 'a' (its frame headers are 16 MiB apart), so its last bytes before the
  // close must be too.
  ReadStatus end = ReadStatus::kOk;
  const std::string rest = client->read_until_closed(60s, &end);
  MESSAGE("after the kill: ", rest.size(), " bytes, then ", to_string(end));
  CHECK((end == ReadStatus::kEof || end == ReadStatus::kReset));
  CHECK(rest.size() < kRow);
  REQUIRE(rest.size() >= 64);
  CHECK(rest.find_first_not_of('a', rest.size() - 64) == std::string::npos);
}

}  // namespace
}  // namespace sluice::test::limits
