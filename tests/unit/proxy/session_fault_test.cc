// Sessions on a real worker loop with injected EINTR, EAGAIN, short I/O and errors.
#include <doctest/doctest.h>

#include <algorithm>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <random>
#include <thread>
#include <tuple>

#include "fake_peer.h"
#include "fault_syscalls.h"
#include "proxy/worker.h"

namespace sluice {
namespace {

using namespace testing;

// A worker on its own thread in front of a fake upstream the test drives.
struct Rig {
  FaultSyscalls sys;
  std::uint16_t upstream_port = 0;
  int upstream_listen = -1;
  std::uint16_t port = 0;
  MemoryBudget budget;
  std::vector<ListenerShared> shared{1};
  ListenerConfig listener;
  std::unique_ptr<Worker> worker;

  // `tweak` adjusts the listener's settings (limits, timeouts) before the worker starts.
  explicit Rig(std::uint32_t retry_budget = 4, std::uint16_t upstream_override = 0,
               const std::function<void(ListenerConfig&)>& tweak = {},
               std::uint64_t memory_limit = 1ull << 30)
      : budget(memory_limit) {
    upstream_listen = listen_loopback(&upstream_port);
    const int probe = listen_loopback(&port);  // a free port for the listener
    ::close(probe);
    ListenerConfig& l = listener;
    l.name = "main";
    l.listen = {"127.0.0.1", port};
    l.upstreams = {{"127.0.0.1", upstream_override ? upstream_override : upstream_port}};
    l.net_retry_count = retry_budget;
    l.connect_timeout = Millis{2000};
    if (tweak) tweak(l);
    Config c;
    c.listeners = {l};
    std::vector<std::string> errors;
    worker = std::make_unique<Worker>(0, make_runtime_config(c, &errors), budget, shared, sys);
    std::string error;
    REQUIRE(worker->open_listeners({}, &error));
    worker->start();
  }
  ~Rig() {
    worker->post_force_close();
    worker->join();
    ::close(upstream_listen);
  }
  // A reload: the listener changed by `tweak`. As after SIGHUP, the worker
  // holds the only reference to each config, so the old one is freed there.
  void reload(const std::function<void(ListenerConfig&)>& tweak) {
    tweak(listener);
    Config c;
    c.listeners = {listener};
    std::vector<std::string> errors;
    worker->post_config(make_runtime_config(c, &errors));
  }
  const ListenerStats& stats() { return worker->stats().listeners[0]; }
  // The worker counts a call after it returns, so a peer may see its bytes
  // first: wait briefly for the counter to reach `want`, then report it.
  static std::uint64_t settle(const StatCounter& c, std::uint64_t want) {
    for (int i = 0; i < 200 && c.get() < want; ++i) {
      std::this_thread::sleep_for(std::chrono::milliseconds(5));
    }
    return c.get();
  }
  std::uint64_t eintr(SysOp op, std::uint64_t want = 0) {
    return settle(stats().eintr_retries[idx(op)], want);
  }
  std::uint64_t io_errors(SysOp op, std::uint64_t want = 0) {
    return settle(stats().io_errors[idx(op)], want);
  }
};

// Client and server ends of one proxied session, past authentication.
struct Pair {
  int client = -1;
  int server = -1;
  ~Pair() {
    if (client >= 0) ::close(client);
    if (server >= 0) ::close(server);
  }
};

void handshake(Rig& rig, Pair& p, int client_rcvbuf = 0) {
  p.client = connect_loopback(rig.port, client_rcvbuf);
  REQUIRE(p.client >= 0);
  p.server = accept_within(rig.upstream_listen, 5000);
  REQUIRE(p.server >= 0);
  REQUIRE(send_all(p.server, frame(0, greeting_payload())));
  const Packet g = recv_packet(p.client);
  REQUIRE(g.ok);
  CHECK(g.payload == greeting_payload());
  REQUIRE(send_all(p.client, frame(1, hello_payload())));
  const Packet h = recv_packet(p.server);
  REQUIRE(h.ok);
  CHECK(h.seq == 1);
  CHECK(h.payload == hello_payload());
  REQUIRE(send_all(p.server, frame(2, ok_payload())));
  const Packet ok = recv_packet(p.client);
  REQUIRE(ok.ok);
  CHECK(ok.payload == ok_payload());
}

Bytes query(std::size_t size, std::uint8_t fill) {
  Bytes q(size, fill);
  q[0] = 0x03;  // COM_QUERY
  return q;
}

// The ERR the client received: {code, seq}; code 0 if none.
std::pair<int, int> read_err(int fd) {
  const Packet e = recv_packet(fd, 5000);
  if (!e.ok || e.payload.empty() || e.payload[0] != 0xFF) return {0, -1};
  return {e.payload[1] | (e.payload[2] << 8), e.seq};
}

// The client receives ERR `code` with sequence id `seq`, then both sides close.
void expect_err_and_close(Pair& p, int code, int seq) {
  const auto [got_code, got_seq] = read_err(p.client);
  CHECK(got_code == code);
  CHECK(got_seq == seq);
  CHECK(closed_within(p.client, 5000));
  CHECK(closed_within(p.server, 5000));
}

TEST_CASE("loop: one-byte reads and writes everywhere still deliver every byte in order") {
  Rig rig;
  rig.sys.script(rig.sys.reads, {0, 1, 20000});
  rig.sys.script(rig.sys.writes, {0, 1, 20000});
  Pair p;
  handshake(rig, p);
  std::mt19937 rng(1);
  Bytes all;
  std::vector<Bytes> sent;
  for (int i = 0; i < 40; ++i) {
    const Bytes f = frame(0, query(1 + rng() % 300, static_cast<std::uint8_t>(i)));
    all.insert(all.end(), f.begin(), f.end());
    sent.push_back(f);
  }
  REQUIRE(send_all(p.client, all));
  const Bytes got = recv_n(p.server, all.size(), 10000);
  CHECK(got == all);
}

TEST_CASE("loop: EINTR n times then success is retried and counted exactly") {
  Rig rig;
  Pair p;
  handshake(rig, p);
  rig.sys.script(rig.sys.reads, {EINTR, 0, 3});
  const Bytes q = frame(0, query(100, 'x'));
  REQUIRE(send_all(p.client, q));
  CHECK(recv_n(p.server, q.size()) == q);
  CHECK(rig.eintr(SysOp::kRead, 3) == 3);
  rig.sys.script(rig.sys.writes, {EINTR, 0, 2});
  REQUIRE(send_all(p.server, frame(1, ok_payload())));
  CHECK(recv_packet(p.client).payload == ok_payload());
  CHECK(rig.eintr(SysOp::kWrite, 2) == 2);
  CHECK(rig.io_errors(SysOp::kRead, 0) == 0);
}

TEST_CASE("loop: EINTR past net_retry_count fails the read: ERR 1158, both sides close") {
  Rig rig(4);
  Pair p;
  handshake(rig, p);
  rig.sys.script(rig.sys.reads, {EINTR, 0, 5});  // the call and four retries
  REQUIRE(send_all(p.client, frame(0, query(10, 'y'))));
  CHECK(read_err(p.client).first == 1158);
  CHECK(closed_within(p.client, 5000));
  CHECK(closed_within(p.server, 5000));
  CHECK(rig.eintr(SysOp::kRead, 4) == 4);
  CHECK(rig.io_errors(SysOp::kRead, 1) == 1);
}

TEST_CASE("loop: EAGAIN is not a retry - the read happens again on readiness") {
  Rig rig;
  Pair p;
  handshake(rig, p);
  rig.sys.script(rig.sys.reads, {EAGAIN, 0, 5});
  const Bytes q = frame(0, query(64, 'z'));
  REQUIRE(send_all(p.client, q));
  CHECK(recv_n(p.server, q.size()) == q);
  CHECK(rig.eintr(SysOp::kRead, 0) == 0);
}

TEST_CASE(
    "loop: ECONNRESET on a read and EPIPE on a write to the server reach the client as ERRs") {
  SUBCASE("reset") {
    Rig rig;
    Pair p;
    handshake(rig, p);
    rig.sys.script(rig.sys.reads, {ECONNRESET});
    REQUIRE(send_all(p.client, frame(0, query(10, 'r'))));
    CHECK(read_err(p.client).first == 1158);
    CHECK(closed_within(p.server, 5000));
    CHECK(rig.io_errors(SysOp::kRead, 1) == 1);
  }
  SUBCASE("broken pipe") {
    Rig rig;
    Pair p;
    handshake(rig, p);
    rig.sys.script(rig.sys.writes, {EPIPE});
    REQUIRE(send_all(p.client, frame(0, query(10, 'w'))));
    const auto [code, seq] = read_err(p.client);
    CHECK(code == 1160);
    CHECK(seq == 1);  // the client sent seq 0 and expects 1 next
    CHECK(closed_within(p.server, 5000));
    CHECK(rig.io_errors(SysOp::kWrite, 1) == 1);
  }
}

TEST_CASE("loop: accept and connect retry EINTR, counted under their own op") {
  Rig rig;
  rig.sys.script(rig.sys.accepts, {EINTR, 0, 2});
  rig.sys.script(rig.sys.connects, {EINTR, 0, 3});
  Pair p;
  handshake(rig, p);
  CHECK(rig.eintr(SysOp::kAccept, 2) == 2);
  CHECK(rig.eintr(SysOp::kConnect, 3) == 3);
}

TEST_CASE(
    "loop: a connect interrupted past the budget fails over, and with none left gives ERR 2003 seq "
    "0") {
  Rig rig(2);
  rig.sys.script(rig.sys.connects, {EINTR, 0, 3});
  const int client = connect_loopback(rig.port);
  REQUIRE(client >= 0);
  const auto [code, seq] = read_err(client);
  CHECK(code == 2003);
  CHECK(seq == 0);
  CHECK(closed_within(client, 5000));
  CHECK(rig.eintr(SysOp::kConnect, 2) == 2);
  CHECK(rig.stats().rejected[idx(RejectReason::kUpstreamUnavailable)].get() == 1);
  ::close(client);
}

TEST_CASE("loop: while the client's socket is full, reading more of the response writes nothing") {
  Rig rig;
  Pair p;
  handshake(rig, p, 4096);
  REQUIRE(send_all(p.client, frame(0, query(20, 'q'))));
  REQUIRE(recv_packet(p.server).ok);
  auto counts = [&] {
    std::lock_guard lock(rig.sys.mu);
    return std::tuple{rig.sys.read_calls, rig.sys.writes_incomplete, rig.sys.writes_would_block};
  };
  // The client reads nothing; the server sends rows one at a time, each
  // once sluice has read the one before. Once a write towards the client
  // finds its socket full, sluice still reads rows until its buffer is full,
  // and each would have been a write doomed to EAGAIN.
  int reads_when_full = -1;
  for (int i = 1;; ++i) {
    const int before = std::get<0>(counts());
    if (std::get<1>(counts()) > 0 && reads_when_full < 0) reads_when_full = before;
    REQUIRE(send_all(p.server, frame(static_cast<std::uint8_t>(i), Bytes(2000, 'r'))));
    int waited = 0;
    while (std::get<0>(counts()) == before && waited < 200) {
      std::this_thread::sleep_for(std::chrono::milliseconds(1));
      ++waited;
    }
    if (waited == 200) break;  // sluice stopped reading: its buffer is full
    REQUIRE(i < 100000);
  }
  REQUIRE(reads_when_full >= 0);
  const auto [read_calls, incomplete, would_block] = counts();
  CHECK(read_calls - reads_when_full > 3);  // the case happened: reads after the socket filled
  // At most the write that found the socket full; after it only EPOLLOUT may write.
  CHECK(would_block <= 1);
}

// Holds the worker inside its next read until released, so that sockets made
// ready meanwhile are all reported by its next wakeup.
struct ReadGate {
  std::mutex mu;
  std::condition_variable cv;
  bool entered = false, open = false;
  void arm(FaultSyscalls& sys) {
    std::lock_guard lock(sys.mu);
    sys.on_next_read = [this] {
      std::unique_lock l(mu);
      entered = true;
      cv.notify_all();
      cv.wait(l, [this] { return open; });
    };
  }
  void wait_entered() {
    std::unique_lock l(mu);
    REQUIRE(cv.wait_for(l, std::chrono::seconds(5), [this] { return entered; }));
  }
  void release() {
    std::lock_guard l(mu);
    open = true;
    cv.notify_all();
  }
};

// Three sessions past authentication, and the worker held inside its read
// of a's query: the queries then sent on b and c are both reported by the
// wakeup after it.
struct HeldWorker {
  Rig rig;
  Pair a, b, c;
  ReadGate gate;
  HeldWorker() {
    handshake(rig, a);
    handshake(rig, b);
    handshake(rig, c);
    gate.arm(rig.sys);
    REQUIRE(send_all(a.client, frame(0, query(30, 'a'))));
    gate.wait_entered();  // reading a's query, and seeing nothing else yet
  }
  // Sends b's and c's queries, lets them reach their sockets, lets the worker go.
  void release_with_b_and_c() {
    REQUIRE(send_all(b.client, frame(0, query(40, 'b'))));
    REQUIRE(send_all(c.client, frame(0, query(50, 'c'))));
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
    gate.release();
  }
};

TEST_CASE("loop: packets read in one wakeup from several sessions leave in one batch of writes") {
  HeldWorker w;
  {
    std::lock_guard lock(w.rig.sys.mu);
    w.rig.sys.batches.clear();
  }
  w.release_with_b_and_c();
  const Packet qa = recv_packet(w.a.server);
  const Packet qb = recv_packet(w.b.server);
  const Packet qc = recv_packet(w.c.server);
  REQUIRE(qa.ok);
  REQUIRE(qb.ok);
  REQUIRE(qc.ok);
  CHECK(qa.payload == query(30, 'a'));
  CHECK(qb.payload == query(40, 'b'));
  CHECK(qc.payload == query(50, 'c'));
  std::lock_guard lock(w.rig.sys.mu);
  // a's lone event was written at once; b's and c's, read in one wakeup, in one batch.
  CHECK(w.rig.sys.batches == std::vector<std::size_t>{2});
}

TEST_CASE(
    "loop: a write failing in a batch ends its own session only, and EINTR in it is retried") {
  HeldWorker w;
  // a's lone write: EINTR twice then through; then the batch's first write
  // (b's or c's, whichever the wakeup reports first) fails with EPIPE.
  w.rig.sys.script(w.rig.sys.writes, Fault{EINTR, 0, 2});
  w.rig.sys.script(w.rig.sys.writes, Fault{});
  w.rig.sys.script(w.rig.sys.writes, Fault{EPIPE});
  w.release_with_b_and_c();
  REQUIRE(recv_packet(w.a.server).ok);
  CHECK(w.rig.eintr(SysOp::kWrite, 2) == 2);
  // One of b and c got ERR 1160 (write to the upstream failed, seq 1); the other's query went
  // through.
  const Packet qb = recv_packet(w.b.server, 2000);
  const Packet qc = recv_packet(w.c.server, 2000);
  CHECK(qb.ok != qc.ok);
  Pair& failed = qb.ok ? w.c : w.b;
  const auto [code, seq] = read_err(failed.client);
  CHECK(code == 1160);
  CHECK(seq == 1);
  CHECK(w.rig.io_errors(SysOp::kWrite, 1) == 1);
  std::lock_guard lock(w.rig.sys.mu);
  CHECK(w.rig.sys.batches == std::vector<std::size_t>{2});
}

// ---------------------------------------------------------------------------
// A refused client packet behind an outstanding response (on_oversized: close)
// ---------------------------------------------------------------------------

Rig refusing_rig(std::uint64_t net_read_timeout_ms = 30'000) {
  return Rig(4, 0, [=](ListenerConfig& l) {
    l.max_allowed_packet = 1024;
    l.net_read_timeout = Millis{net_read_timeout_ms};
  });
}

std::uint64_t refused_count(Rig& rig, std::uint64_t want) {
  return Rig::settle(
      rig.stats().oversized[idx(Direction::kClientToServer)][idx(OversizeAction::kClose)], want);
}

// `head` followed by the first `n` bytes of `tail` (all of it by default).
Bytes joined(Bytes head, const Bytes& tail, std::size_t n = SIZE_MAX) {
  head.insert(head.end(), tail.begin(), tail.begin() + std::min(n, tail.size()));
  return head;
}

// Nothing arrives on `fd` within `ms`.
bool silent_for(int fd, int ms) {
  pollfd p{fd, POLLIN, 0};
  return ::poll(&p, 1, ms) == 0;
}

// The server answers the outstanding command with an OK; the client gets
// exactly that answer, then the refusal's ERR, then both sides close.
void expect_answer_then_err(Pair& p, int code, int seq) {
  REQUIRE(send_all(p.server, frame(1, ok_payload())));
  const Packet answer = recv_packet(p.client);
  REQUIRE(answer.ok);
  CHECK(answer.payload == ok_payload());
  expect_err_and_close(p, code, seq);
}

TEST_CASE(
    "loop: a packet refused behind pipelined commands waits for their responses, then ERR 1153 "
    "and the close") {
  Rig rig = refusing_rig();
  Pair p;
  handshake(rig, p);
  // Two commands, then (without waiting) an oversized one whose payload is
  // still coming: as mysqld, sluice must answer the first two before refusing.
  const Bytes a = frame(0, query(20, 'a'));
  const Bytes b = frame(0, query(30, 'b'));
  const Bytes big = frame(0, query(4000, 'x'));
  const Bytes both = joined(a, b);
  REQUIRE(send_all(p.client, joined(both, big, 1500)));
  CHECK(recv_n(p.server, both.size()) == both);
  CHECK(refused_count(rig, 1) == 1);
  // The rest of the refused packet, and a command after it, are thrown away.
  REQUIRE(send_all(p.client, Bytes(big.begin() + 1500, big.end())));
  REQUIRE(send_all(p.client, frame(0, query(10, 'z'))));
  CHECK(silent_for(p.server, 200));
  CHECK(silent_for(p.client, 200));  // no ERR before the responses
  REQUIRE(send_all(p.server, frame(1, ok_payload())));
  const Packet first = recv_packet(p.client);
  REQUIRE(first.ok);
  CHECK(first.seq == 1);
  CHECK(first.payload == ok_payload());
  CHECK(silent_for(p.client, 200));  // the second response is still outstanding
  // The second answer is a result set: one column, one row.
  Bytes column{3,  'd', 'e', 'f', 0, 0, 0,    1, 'c', 1, 'c', 0x0c,
               33, 0,   10,  0,   0, 0, 0xFD, 0, 0,   0, 0,   0};
  const Bytes eof{0xFE, 0, 0, 0x02, 0};
  Bytes answer = frame(1, {1});
  for (const Bytes& f : {frame(2, column), frame(3, eof), frame(4, {1, 'r'}), frame(5, eof)}) {
    answer.insert(answer.end(), f.begin(), f.end());
  }
  REQUIRE(send_all(p.server, answer));
  CHECK(recv_n(p.client, answer.size()) == answer);
  expect_err_and_close(p, 1153, 1);   // one past the refused frame's, as before
  CHECK(refused_count(rig, 1) == 1);  // counted once
}

TEST_CASE("loop: a packet memory_limit refuses behind a command waits for its response too") {
  Rig rig(4, 0, {}, 256 << 10);
  Pair p;
  handshake(rig, p);
  REQUIRE(
      send_all(p.client, joined(frame(0, query(20, 'a')), frame(0, query(300 << 10, 'x')), 1000)));
  REQUIRE(recv_packet(p.server).ok);
  CHECK(silent_for(p.client, 200));
  expect_answer_then_err(p, 1041, 1);
  // Counted once, when it was refused, in its own family: not as oversized.
  const ListenerStats& stats = rig.stats();
  CHECK(Rig::settle(stats.memory_refusals[idx(Direction::kClientToServer)], 1) == 1);
  CHECK(stats.memory_refusals[idx(Direction::kServerToClient)].get() == 0);
  CHECK(refused_count(rig, 0) == 0);
}

TEST_CASE("loop: with no response outstanding a refused packet is answered at once") {
  Rig rig = refusing_rig();
  Pair p;
  handshake(rig, p);
  REQUIRE(send_all(p.client, frame(0, query(20, 'a'))));
  REQUIRE(recv_packet(p.server).ok);
  REQUIRE(send_all(p.server, frame(1, ok_payload())));
  REQUIRE(recv_packet(p.client).ok);
  const Bytes big = frame(0, query(4000, 'x'));
  REQUIRE(send_all(p.client, Bytes(big.begin(), big.begin() + 100)));
  expect_err_and_close(p, 1153, 1);
}

// net_buffer_length is the read size: a rejected packet is thrown away one
// read of it at a time, so no more of it is ever held (SPEC).
TEST_CASE(
    "loop: reads ask for at most net_buffer_length, also while a rejected packet is dropped") {
  Rig rig(4, 0, [](ListenerConfig& l) {
    l.net_buffer_length = 1024;
    l.max_allowed_packet = 64 << 10;
    l.on_oversized = OnOversized::kReject;
  });
  Pair p;
  handshake(rig, p);
  {
    std::lock_guard lock(rig.sys.mu);
    rig.sys.largest_read = 0;
  }
  // Refused whole (100 KiB), answered by sluice; then a legal 3,000-byte
  // command reaches the server intact.
  REQUIRE(send_all(p.client, frame(0, query(100 << 10, 'x'))));
  const auto [code, seq] = read_err(p.client);
  CHECK(code == 1153);
  CHECK(seq == 1);
  const Bytes legal = query(3000, 'y');
  REQUIRE(send_all(p.client, frame(0, legal)));
  const Packet got = recv_packet(p.server);
  REQUIRE(got.ok);
  CHECK(got.payload == legal);
  std::lock_guard lock(rig.sys.mu);
  CHECK(rig.sys.largest_read > 0);
  CHECK(rig.sys.largest_read <= 1024);
}

TEST_CASE("loop: a server stalling in the awaited response still meets net_read_timeout") {
  Rig rig = refusing_rig(300);
  Pair p;
  handshake(rig, p);
  REQUIRE(send_all(p.client, joined(frame(0, query(20, 'a')), frame(0, query(4000, 'x')))));
  REQUIRE(recv_packet(p.server).ok);
  // Half a packet, then nothing: the client gets the read timeout's ERR.
  const Bytes ok = frame(1, ok_payload());
  REQUIRE(send_all(p.server, Bytes(ok.begin(), ok.begin() + 5)));
  expect_err_and_close(p, 1159, 1);
}

TEST_CASE("loop: a client that half-closes after a refused packet still gets the answer and ERR") {
  Rig rig = refusing_rig();
  Pair p;
  handshake(rig, p);
  REQUIRE(send_all(p.client, joined(frame(0, query(20, 'a')), frame(0, query(4000, 'x')), 2000)));
  REQUIRE(::shutdown(p.client, SHUT_WR) == 0);
  REQUIRE(recv_packet(p.server).ok);
  // The server is not told of the client's FIN before it has answered.
  CHECK(silent_for(p.server, 200));
  expect_answer_then_err(p, 1153, 1);
}

// Sessions switch to a reloaded config in the worker's thread. One idle
// session's wait_timeout is moved by the change, so it read the old value,
// once that config had already been freed (AddressSanitizer: make asan).
TEST_CASE("loop: a reload lowering wait_timeout reaches an idle session, several times over") {
  Rig rig;
  Pair p;
  handshake(rig, p);
  for (const int seconds : {3600, 1800, 900}) {
    rig.reload([&](ListenerConfig& l) { l.wait_timeout = Millis{seconds * 1000}; });
  }
  rig.reload([](ListenerConfig& l) { l.wait_timeout = Millis{1000}; });
  // Idle since the login: cut about a second after it, with 4031.
  const auto [code, seq] = read_err(p.client);
  CHECK(code == 4031);
  CHECK(seq == 0);
  CHECK(closed_within(p.client, 5000));
}

// 64 commands fill the tracker and a 65th waits, unread past, for room the
// server may never make (here it answers none; mysqld answers only the first
// command of a compressed frame that carries several). The client's FIN
// must still be seen: the held command goes on, then the FIN, as on a direct
// connection, and the session does not outlive its client.
TEST_CASE("loop: a client that leaves while its commands wait for the tracker is seen to go") {
  Rig rig;
  Pair p;
  handshake(rig, p);
  const Bytes ping = frame(0, Bytes{0x0e});
  Bytes burst;
  for (int i = 0; i < 65; ++i) burst.insert(burst.end(), ping.begin(), ping.end());
  REQUIRE(send_all(p.client, burst));
  // The first 64 reach the server; the 65th is held.
  CHECK(recv_n(p.server, 64 * ping.size()).size() == 64 * ping.size());
  CHECK(silent_for(p.server, 300));
  ::shutdown(p.client, SHUT_WR);
  CHECK(recv_n(p.server, ping.size()) == ping);
  CHECK(closed_within(p.server, 5000));  // the FIN passed on
  ::close(p.server);
  p.server = -1;
  CHECK(closed_within(p.client, 5000));
  CHECK(Rig::settle(rig.stats().tracker_lost, 1) == 1);
}

}  // namespace
}  // namespace sluice
