// Tests the response tracker on hand-built edge cases: 0xFE rows, errors, garbage, limits.
#include "common/response_tracker.h"

#include <doctest/doctest.h>

#include <cstdint>
#include <initializer_list>
#include <vector>

#include "common/command.h"
#include "common/wire.h"

namespace sluice {
namespace {

using Step = ResponseTracker::Step;
using Bytes = std::vector<std::uint8_t>;

constexpr std::uint64_t kClassic = wire::kClientProtocol41 | wire::kClientSecureConnection |
                                   wire::kClientMultiStatements | wire::kClientMultiResults |
                                   wire::kClientPsMultiResults | wire::kClientLocalFiles;
constexpr std::uint64_t kModern = kClassic | wire::kClientDeprecateEof;

Bytes eof(std::uint16_t status = 0x0002) {
  return {0xFE, 0x00, 0x00, static_cast<std::uint8_t>(status),
          static_cast<std::uint8_t>(status >> 8)};
}
Bytes ok(std::uint16_t status = 0x0002, std::uint8_t header = 0x00) {
  return {
      header, 0x00, 0x00, static_cast<std::uint8_t>(status), static_cast<std::uint8_t>(status >> 8),
      0x00,   0x00};
}
// The terminator of a result set in either mode.
Bytes end(std::uint64_t caps, std::uint16_t status = 0x0002) {
  return caps & wire::kClientDeprecateEof ? ok(status, 0xFE) : eof(status);
}
const Bytes kErr = {0xFF, 0x7A, 0x04, '#', '4', '2', 'S', '0', '2', 'x'};
const Bytes kColumnDef = {0x03, 'd', 'e', 'f', 0x00, 0x00, 0x00, 0x01, 'x', 0x00, 0x0c};
const Bytes kRow = {0x01, '1'};

struct Session {
  explicit Session(std::uint64_t caps) { t.set_capabilities(caps); }
  Step command(std::uint8_t command, std::uint64_t tag = 0) {
    const std::uint8_t payload[] = {command, 0x00, 0x00, 0x00, 0x00};
    return t.on_command(payload, sizeof payload, tag);
  }
  Step server(const Bytes& p) { return t.on_server_packet(p, p.size()); }
  // A packet of `length` bytes of which only the first 64 are handed over.
  Step server_prefix(const Bytes& prefix, std::uint64_t length) {
    return t.on_server_packet(prefix, length);
  }
  Step client(const Bytes& p) { return t.on_client_packet(p, p.size()); }
  // Feeds server packets; all but the last must continue, the last completes.
  void response(std::initializer_list<Bytes> packets) {
    std::size_t i = 0;
    for (const Bytes& p : packets) {
      CAPTURE(i);
      const Step step = server(p);
      CHECK(step == (++i == packets.size() ? Step::kComplete : Step::kContinue));
    }
  }
  ResponseTracker t;
};

Bytes big_prefix(std::uint8_t first) {
  Bytes b(64, 'x');
  b[0] = first;
  return b;
}

TEST_CASE("a row starting with 0xFE is a row, a short 0xFE packet ends the rows") {
  for (const std::uint64_t caps : {kClassic, kModern}) {
    CAPTURE(caps);
    Session s(caps);
    CHECK(s.command(kComQuery) == Step::kContinue);
    CHECK(s.server({0x01}) == Step::kContinue);
    CHECK(s.server(kColumnDef) == Step::kContinue);
    if (!(caps & wire::kClientDeprecateEof)) CHECK(s.server(eof()) == Step::kContinue);
    // A text row whose first value is a lenenc string of 2^24 bytes or more.
    CHECK(s.server_prefix(big_prefix(0xFE), 0x1000009) == Step::kContinue);
    CHECK(s.server_prefix(big_prefix(0xFE), wire::kMaxFrame) == Step::kContinue);
    CHECK(s.server(kRow) == Step::kContinue);
    CHECK_FALSE(s.t.idle());
    CHECK(s.server(end(caps)) == Step::kComplete);
    CHECK(s.t.idle());
  }
}

TEST_CASE("classic mode: a 0xFE packet of 9 bytes or more is a row") {
  Session s(kClassic);
  CHECK(s.command(kComQuery) == Step::kContinue);
  s.server({0x01});
  s.server(kColumnDef);
  s.server(eof());
  CHECK(s.server({0xFE, 1, 2, 3, 4, 5, 6, 7, 8}) == Step::kContinue);
  CHECK(s.server(eof()) == Step::kComplete);
}

TEST_CASE("DEPRECATE_EOF: a long OK terminator with info and session state still ends rows") {
  Session s(kModern);
  CHECK(s.command(kComQuery) == Step::kContinue);
  s.server({0x01});
  s.server(kColumnDef);
  Bytes terminator = ok(0x4002, 0xFE);
  terminator.resize(300, 'i');
  CHECK(s.server(terminator) == Step::kComplete);
}

TEST_CASE("an ERR in the middle of rows or metadata ends the response") {
  for (const std::uint64_t caps : {kClassic, kModern}) {
    Session s(caps);
    CHECK(s.command(kComQuery) == Step::kContinue);
    s.response({{0x02}, kColumnDef, kErr});
    CHECK(s.command(kComQuery) == Step::kContinue);
    if (caps & wire::kClientDeprecateEof) {
      s.response({{0x01}, kColumnDef, kRow, kRow, kErr});
    } else {
      s.response({{0x01}, kColumnDef, eof(), kRow, kRow, kErr});
    }
    CHECK(s.t.idle());
  }
}

TEST_CASE("MORE_RESULTS chains results, LOCAL INFILE included - an ERR ends the chain") {
  Session s(kClassic);
  CHECK(s.command(kComQuery) == Step::kContinue);
  CHECK(s.server(ok(0x000A)) == Step::kContinue);
  CHECK(s.server({0xFB, 'f'}) == Step::kContinue);
  CHECK(s.t.awaiting_client());
  CHECK(s.client({'1', '\n'}) == Step::kContinue);
  CHECK(s.client({}) == Step::kContinue);
  CHECK_FALSE(s.t.awaiting_client());
  CHECK(s.server(ok(0x000A)) == Step::kContinue);
  s.response({{0x01}, kColumnDef, eof(0x000A), kRow, eof(0x000A), kErr});
  CHECK(s.t.idle());
}

TEST_CASE("an empty packet ends LOCAL INFILE data only when the logical packet is empty") {
  Session s(kModern);
  CHECK(s.command(kComQuery) == Step::kContinue);
  CHECK(s.server({0xFB, 'f'}) == Step::kContinue);
  // A prefix of a 2^24-byte logical packet is content, even if no byte is passed.
  CHECK(s.t.on_client_packet({}, wire::kMaxFrame + 1ull) == Step::kContinue);
  CHECK(s.t.awaiting_client());
  CHECK(s.client({}) == Step::kContinue);
  CHECK(s.server(kErr) == Step::kComplete);
}

TEST_CASE("progress reports are skipped only when negotiated") {
  const Bytes progress = {0xFF, 0xFF, 0xFF, 0x01, 0x01, 0x02, 0x00, 0x00, 0x00, 0x00};
  Session with(kClassic | wire::kMariaDbClientProgress);
  CHECK(with.command(kComQuery) == Step::kContinue);
  CHECK(with.server(progress) == Step::kContinue);
  CHECK(with.server(ok()) == Step::kComplete);
  Session obsolete_bit(kClassic | wire::kClientProgressObsolete);
  CHECK(obsolete_bit.command(kComQuery) == Step::kContinue);
  CHECK(obsolete_bit.server(progress) == Step::kContinue);
  Session without(kClassic);
  CHECK(without.command(kComQuery) == Step::kContinue);
  CHECK(without.server(progress) == Step::kComplete);  // then it is an ERR
}

TEST_CASE("MariaDB metadata caching: no definitions when the flag byte is 0") {
  const std::uint64_t cache = wire::kMariaDbClientCacheMetadata;
  Session classic(kClassic | cache);
  CHECK(classic.command(kComStmtExecute) == Step::kContinue);
  classic.response({{0x02, 0x00}, eof(), {0x00, 0x00, 0x01}, eof()});
  CHECK(classic.command(kComStmtExecute) == Step::kContinue);
  classic.response({{0x01, 0x01}, kColumnDef, eof(), {0x00, 0x00, 0x01}, eof()});
  Session modern(kModern | cache);
  CHECK(modern.command(kComStmtExecute) == Step::kContinue);
  modern.response({{0x02, 0x00}, {0x00, 0x00, 0x01}, ok(0x0002, 0xFE)});
  // A column count without its flag byte is malformed.
  CHECK(modern.command(kComQuery) == Step::kContinue);
  CHECK(modern.server({0x02}) == Step::kUnexpected);
}

TEST_CASE("MySQL optional metadata: the flag after the count, and in COM_STMT_PREPARE_OK") {
  const std::uint64_t caps = kModern | wire::kClientOptionalResultsetMetadata;
  Session s(caps);
  CHECK(s.command(kComQuery) == Step::kContinue);
  s.response({{0x03, 0x00}, kRow, ok(0x0002, 0xFE)});
  CHECK(s.command(kComStmtPrepare) == Step::kContinue);
  s.response({{0x00, 1, 0, 0, 0, 2, 0, 3, 0, 0, 0, 0, 0x00}});  // RESULTSET_METADATA_NONE
  CHECK(s.command(kComStmtPrepare) == Step::kContinue);
  s.response({{0x00, 1, 0, 0, 0, 1, 0, 1, 0, 0, 0, 0, 0x01}, kColumnDef, kColumnDef});
}

TEST_CASE("COM_STMT_PREPARE: parameter and column blocks, each optional") {
  const Bytes params_only = {0x00, 1, 0, 0, 0, 0, 0, 2, 0, 0, 0, 0};
  const Bytes columns_only = {0x00, 1, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0};
  const Bytes neither = {0x00, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0};
  Session classic(kClassic);
  CHECK(classic.command(kComStmtPrepare) == Step::kContinue);
  classic.response({params_only, kColumnDef, kColumnDef, eof()});
  CHECK(classic.command(kComStmtPrepare) == Step::kContinue);
  classic.response({columns_only, kColumnDef, eof()});
  CHECK(classic.command(kComStmtPrepare) == Step::kContinue);
  classic.response({neither});
  Session modern(kModern);
  CHECK(modern.command(kComStmtPrepare) == Step::kContinue);
  modern.response({params_only, kColumnDef, kColumnDef});
  CHECK(modern.command(kComStmtPrepare) == Step::kContinue);
  modern.response({columns_only, kColumnDef});
  CHECK(modern.command(kComStmtPrepare) == Step::kContinue);
  modern.response({neither});
}

TEST_CASE("COM_FIELD_LIST ends at EOF or ERR") {
  for (const std::uint64_t caps : {kClassic, kModern}) {
    Session s(caps);
    CHECK(s.command(kComFieldList) == Step::kContinue);
    s.response({kColumnDef, kColumnDef, end(caps)});
    CHECK(s.command(kComFieldList) == Step::kContinue);
    s.response({kErr});
  }
}

TEST_CASE("COM_CHANGE_USER: more-data and switch round trips, then OK or ERR") {
  Session s(kModern);
  CHECK(s.command(kComChangeUser) == Step::kContinue);
  CHECK_FALSE(s.t.awaiting_client());
  CHECK(s.server({0x01, 0x03}) == Step::kContinue);  // caching_sha2 fast auth
  CHECK(s.t.awaiting_client());
  CHECK(s.server(ok()) == Step::kComplete);
  CHECK(s.command(kComChangeUser) == Step::kContinue);
  CHECK(s.server({0xFE, 'p', 0x00, 's'}) == Step::kContinue);
  CHECK(s.client({'a', 'u', 't', 'h'}) == Step::kContinue);
  CHECK(s.server({0x01, 0x04}) == Step::kContinue);  // full auth requested
  CHECK(s.client({'p', 'w', 0x00}) == Step::kContinue);
  CHECK(s.server(kErr) == Step::kComplete);
  CHECK(s.t.idle());
  CHECK(s.command(kComChangeUser) == Step::kContinue);
  CHECK(s.server({0x42}) == Step::kUnexpected);
}

TEST_CASE("one-packet answers") {
  Session s(kClassic);
  for (const std::uint8_t command : {kComPing, kComInitDb, kComResetConnection, kComSetOption,
                                     kComStmtReset, kComDebug, kComSleep}) {
    CAPTURE(command);
    CHECK(s.command(command) == Step::kContinue);
    CHECK(s.server(command == kComSetOption ? eof() : ok()) == Step::kComplete);
  }
  CHECK(s.command(kComStatistics) == Step::kContinue);
  CHECK(s.server({'U', 'p'}) == Step::kComplete);
  CHECK(s.command(kComPing) == Step::kContinue);
  CHECK(s.server(kRow) == Step::kUnexpected);
}

TEST_CASE("pipelined commands form a FIFO - no-answer commands do not queue") {
  Session s(kModern);
  CHECK(s.command(kComQuery, 1) == Step::kContinue);
  CHECK(s.command(kComStmtClose, 2) == Step::kComplete);
  CHECK(s.t.last_completion().tag == 2);
  CHECK(s.command(kComPing, 3) == Step::kContinue);
  CHECK(s.command(kComStmtPrepare, 4) == Step::kContinue);
  CHECK(s.t.outstanding() == 3);
  CHECK(s.t.current_command() == kComQuery);
  CHECK(s.server(ok()) == Step::kComplete);
  CHECK(s.t.last_completion().command == kComQuery);
  CHECK(s.t.last_completion().tag == 1);
  CHECK(s.t.current_command() == kComPing);
  CHECK(s.server(ok()) == Step::kComplete);
  CHECK(s.t.last_completion().tag == 3);
  CHECK(s.server({0x00, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0}) == Step::kComplete);
  CHECK(s.t.last_completion().tag == 4);
  CHECK(s.t.idle());
  CHECK(s.t.current_command() == kComStmtPrepare);
}

TEST_CASE("the FIFO wraps around and is bounded") {
  Session s(kClassic);
  std::uint64_t next_tag = 0;
  std::uint64_t expected_tag = 0;
  for (int round = 0; round < 5; ++round) {
    for (int i = 0; i < 40; ++i) REQUIRE(s.command(kComPing, next_tag++) == Step::kContinue);
    for (int i = 0; i < 40; ++i) {
      REQUIRE(s.server(ok()) == Step::kComplete);
      CHECK(s.t.last_completion().tag == expected_tag++);
    }
  }
  CHECK(s.t.idle());
  for (std::size_t i = 0; i < ResponseTracker::kMaxOutstanding; ++i) {
    CHECK_FALSE(s.t.full());
    REQUIRE(s.command(kComPing) == Step::kContinue);
  }
  // full() says when a caller must hold the next command back; one answer
  // makes room again.
  CHECK(s.t.full());
  REQUIRE(s.server(ok()) == Step::kComplete);
  CHECK_FALSE(s.t.full());
  REQUIRE(s.command(kComPing) == Step::kContinue);
  CHECK(s.t.full());
  CHECK(s.command(kComPing) == Step::kUnexpected);
  CHECK(s.t.lost());
  CHECK_FALSE(s.t.full());  // nothing to wait for once lost
}

TEST_CASE("each outstanding command keeps the sequence id its response starts at") {
  Session s(kClassic);
  const std::uint8_t ping[] = {kComPing};
  // A one-frame command (reply at 1), a two-frame one (reply at 2), and one
  // without a response, which is not queued.
  REQUIRE(s.t.on_command(ping, 1, 0, 1) == Step::kContinue);
  REQUIRE(s.t.on_command(ping, 1, 0, 2) == Step::kContinue);
  const std::uint8_t close[] = {kComStmtClose, 1, 0, 0, 0};
  REQUIRE(s.t.on_command(close, sizeof close, 0, 1) == Step::kComplete);
  REQUIRE(s.t.on_command(ping, 1, 0, 1) == Step::kContinue);
  CHECK(s.t.reply_seq() == 1);
  REQUIRE(s.server(ok()) == Step::kComplete);
  CHECK(s.t.reply_seq() == 2);
  REQUIRE(s.server(ok()) == Step::kComplete);
  CHECK(s.t.reply_seq() == 1);
  REQUIRE(s.server(ok()) == Step::kComplete);
  CHECK(s.t.idle());
}

TEST_CASE("replication and clone streams stop tracking once they start") {
  for (const std::uint8_t command : {kComBinlogDump, kComBinlogDumpGtid, std::uint8_t{0x20}}) {
    CAPTURE(command);
    Session s(kClassic);
    CHECK(s.command(command) == Step::kContinue);
    CHECK_FALSE(s.t.idle());
    // The first event (binlog) or the OK that switches to the clone protocol.
    CHECK(s.server(ok()) == Step::kUnexpected);
    CHECK(s.t.lost());
    CHECK_FALSE(s.t.idle());
  }
}

TEST_CASE("a replication or clone command refused with an ERR leaves the session tracked") {
  // MariaDB answers 0x20 (MySQL's COM_CLONE) with 1047, and a binlog dump
  // without the privilege with an ERR: the session goes on as before.
  for (const std::uint8_t command : {kComBinlogDump, kComBinlogDumpGtid, std::uint8_t{0x20}}) {
    CAPTURE(command);
    Session s(kClassic);
    CHECK(s.command(command) == Step::kContinue);
    CHECK(s.server(kErr) == Step::kComplete);
    CHECK(s.t.idle());
    CHECK_FALSE(s.t.lost());
    CHECK(s.command(kComPing) == Step::kContinue);
    CHECK(s.server(ok()) == Step::kComplete);
    CHECK(s.t.idle());
  }
}

TEST_CASE("unknown command bytes are answered by one ERR, as MariaDB does (1047)") {
  for (const std::uint8_t command : {std::uint8_t{0x60}, std::uint8_t{0xFE}, std::uint8_t{0xFF}}) {
    CAPTURE(command);
    Session s(kClassic);
    CHECK(s.command(command) == Step::kContinue);
    CHECK_FALSE(s.t.idle());
    CHECK(s.server(kErr) == Step::kComplete);
    CHECK(s.t.idle());
    CHECK_FALSE(s.t.lost());
  }
}

TEST_CASE("once lost, the tracker says nothing more") {
  Session s(kClassic);
  CHECK(s.server(ok()) == Step::kUnexpected);  // a server packet while idle
  CHECK(s.t.lost());
  CHECK_FALSE(s.t.idle());
  CHECK(s.command(kComQuery) == Step::kContinue);
  CHECK(s.command(kComQuit) == Step::kContinue);
  CHECK(s.server(ok()) == Step::kContinue);
  CHECK(s.client(kRow) == Step::kContinue);
  CHECK_FALSE(s.t.idle());
  CHECK_FALSE(s.t.awaiting_client());
}

// Puts a fresh tracker into a state with `setup`, then checks that `bad` loses track.
void expect_lost(std::uint64_t caps, std::uint8_t command, std::initializer_list<Bytes> setup,
                 const Bytes& bad) {
  Session s(caps);
  REQUIRE(s.command(command) == Step::kContinue);
  for (const Bytes& p : setup) REQUIRE(s.server(p) == Step::kContinue);
  CHECK(s.server(bad) == Step::kUnexpected);
  CHECK(s.t.lost());
  CHECK_FALSE(s.t.idle());
}

TEST_CASE("garbage in each state loses track") {
  expect_lost(kClassic, kComQuery, {}, {0xFE, 0, 0, 2, 0});               // no result starts so
  expect_lost(kClassic, kComQuery, {}, {0x00, 0x00});                     // OK without status
  expect_lost(kClassic, kComQuery, {}, {0xFC, 0x01});                     // truncated count
  expect_lost(kClassic, kComQuery, {}, {});                               // empty packet
  expect_lost(kClassic, kComQuery, {{0x02}}, eof());                      // EOF among definitions
  expect_lost(kClassic, kComQuery, {{0x01}, kColumnDef}, kRow);           // row instead of EOF
  expect_lost(kClassic, kComQuery, {{0x01}, kColumnDef, eof()}, {0xFE});  // EOF without status
  expect_lost(kModern, kComQuery, {{0x01}, kColumnDef}, {0xFE, 0xFC});    // OK without status
  expect_lost(kClassic, kComQuery, {{0xFB, 'f'}}, ok());                  // server during upload
  expect_lost(kClassic, kComStmtPrepare, {}, {0x00, 1, 0, 0, 0});         // short PREPARE_OK
  expect_lost(kClassic, kComStmtPrepare, {}, kRow);                       // neither OK nor ERR
  expect_lost(kClassic, kComStmtPrepare, {{0x00, 1, 0, 0, 0, 0, 0, 1, 0, 0, 0, 0}}, eof());
  expect_lost(kClassic, kComStmtPrepare, {{0x00, 1, 0, 0, 0, 0, 0, 1, 0, 0, 0, 0}, kColumnDef},
              kColumnDef);  // no EOF after params
  expect_lost(kClassic, kComPing, {}, kRow);
  expect_lost(kClassic, kComChangeUser, {}, {0x42});
}

TEST_CASE("client packets nobody asked for lose track") {
  Session idle(kClassic);
  CHECK(idle.client(kRow) == Step::kUnexpected);
  Session busy(kClassic);
  CHECK(busy.command(kComQuery) == Step::kContinue);
  CHECK(busy.client(kRow) == Step::kUnexpected);
  Session empty(kClassic);
  CHECK(empty.t.on_command({}, 10) == Step::kUnexpected);  // length without bytes
  Session sleep(kClassic);
  CHECK(sleep.t.on_command({}, 0) == Step::kContinue);  // answered like COM_SLEEP
  CHECK(sleep.t.current_command() == kComSleep);
  CHECK(sleep.server(kErr) == Step::kComplete);
}

TEST_CASE("COM_STATISTICS accepts any single packet, even an empty one") {
  Session s(kClassic);
  CHECK(s.command(kComStatistics) == Step::kContinue);
  CHECK(s.server({}) == Step::kComplete);
  CHECK(s.t.idle());
}

}  // namespace
}  // namespace sluice
