// Follows the command phase packet by packet to know where each server response ends.
#include "common/response_tracker.h"

#include <algorithm>
#include <optional>

#include "common/command.h"
#include "common/wire.h"

namespace sluice {
namespace {

// How the server answers a command.
enum class Answer : std::uint8_t {
  kStream,      // a stream (binlog dump, MySQL's clone) unless refused with an ERR
  kNone,        // nothing at all
  kResult,      // OK / ERR / LOCAL INFILE / result sets, chained by MORE_RESULTS
  kFetch,       // rows of an open cursor
  kPrepare,     // COM_STMT_PREPARE_OK with definitions, or ERR
  kFieldList,   // column definitions then EOF, or ERR
  kSingle,      // one OK, EOF or ERR
  kAnyOne,      // one packet of free-form text
  kChangeUser,  // authentication round trips, then OK or ERR
};

// Every command byte mapped to its answer. Obsolete, internal and unknown
// commands (COM_SLEEP, COM_TIME, COM_TABLE_DUMP, any byte the server does not
// know) get a single ERR ("Unknown command", 1047), checked on MariaDB 10.11.
constexpr std::uint8_t kComClone = 0x20;  // MySQL 8: streams a data directory; MariaDB: 1047

constexpr std::array<Answer, 256> make_answers() {
  std::array<Answer, 256> a{};
  a.fill(Answer::kSingle);
  a[kComQuit] = a[kComStmtSendLongData] = a[kComStmtClose] = Answer::kNone;
  a[kComQuery] = a[kComProcessInfo] = Answer::kResult;
  a[kComStmtExecute] = a[kComStmtBulkExecute] = Answer::kResult;
  a[kComStmtFetch] = Answer::kFetch;
  a[kComStmtPrepare] = Answer::kPrepare;
  a[kComFieldList] = Answer::kFieldList;
  a[kComStatistics] = Answer::kAnyOne;
  a[kComChangeUser] = Answer::kChangeUser;
  a[kComBinlogDump] = a[kComBinlogDumpGtid] = a[kComClone] = Answer::kStream;
  return a;
}
constexpr std::array<Answer, 256> kAnswers = make_answers();

// A classic EOF is 5 bytes; a row starting with 0xFE is at least 9 (a lenenc
// string of 2^24 bytes or more), so anything shorter is an EOF.
constexpr std::uint64_t kClassicEofLimit = 9;
constexpr std::size_t kClassicEofStatus = 3;    // 0xFE, warnings(2), status(2)
constexpr std::size_t kPrepareOkMinimum = 9;    // 0x00, id(4), columns(2), params(2)
constexpr std::size_t kPrepareOkMetadata = 12;  // MySQL's metadata_follows byte
constexpr std::uint16_t kProgressCode = 0xFFFF;

// Status flags of an OK packet (0x00 or 0xFE header): header, affected rows,
// last insert id, status. nullopt when the prefix is too short to hold them.
std::optional<std::uint16_t> ok_status(std::span<const std::uint8_t> bytes) {
  std::size_t pos = 1;
  if (!wire::read_lenenc(bytes, &pos) || !wire::read_lenenc(bytes, &pos)) return std::nullopt;
  if (bytes.size() - pos < 2) return std::nullopt;
  return wire::le16(&bytes[pos]);
}

std::optional<std::uint16_t> eof_status(std::span<const std::uint8_t> bytes) {
  if (bytes.size() < kClassicEofStatus + 2) return std::nullopt;
  return wire::le16(&bytes[kClassicEofStatus]);
}

}  // namespace

void ResponseTracker::set_capabilities(std::uint64_t caps) {
  deprecate_eof_ = caps & wire::kClientDeprecateEof;
  mysql_optional_ = caps & wire::kClientOptionalResultsetMetadata;
  metadata_flag_ = mysql_optional_ || (caps & wire::kMariaDbClientCacheMetadata);
  progress_ = caps & (wire::kMariaDbClientProgress | wire::kClientProgressObsolete);
  // With DEPRECATE_EOF the terminator is an OK packet, which may be long (info
  // text, session state); only a row can reach a full frame.
  eof_limit_ = deprecate_eof_ ? wire::kMaxFrame : kClassicEofLimit;
}

ResponseTracker::Step ResponseTracker::on_command(std::span<const std::uint8_t> payload,
                                                  std::uint64_t total_length, std::uint64_t tag,
                                                  std::uint8_t reply_seq) {
  if (state_ == State::kLost) return Step::kContinue;
  if (payload.empty() && total_length > 0) return lose();  // the caller gave no bytes
  // mysqld treats an empty command packet as COM_SLEEP and answers an ERR.
  const std::uint8_t command = payload.empty() ? kComSleep : payload[0];
  const Answer answer = kAnswers[command];
  if (answer == Answer::kNone) {
    last_ = {command, tag};
    return Step::kComplete;
  }
  if (count_ == kMaxOutstanding) return lose();
  const std::size_t slot = (head_ + count_) % kMaxOutstanding;
  commands_[slot] = command;
  tags_[slot] = tag;
  reply_seqs_[slot] = reply_seq;
  if (count_++ == 0) start_response();
  return Step::kContinue;
}

ResponseTracker::Step ResponseTracker::on_client_packet(std::span<const std::uint8_t> payload,
                                                        std::uint64_t total_length) {
  if (state_ == State::kLost) return Step::kContinue;
  if (state_ == State::kAuthExchange) return Step::kContinue;
  if (state_ != State::kInfileData) return lose();
  if (std::max<std::uint64_t>(total_length, payload.size()) == 0) state_ = State::kInfileResult;
  return Step::kContinue;
}

ResponseTracker::Step ResponseTracker::on_server_packet(std::span<const std::uint8_t> payload,
                                                        std::uint64_t total_length) {
  if (state_ == State::kLost) return Step::kContinue;
  if (count_ == 0) return lose();
  if (payload.empty()) return state_ == State::kAnyOne ? complete() : lose();
  const Packet p{payload, std::max<std::uint64_t>(total_length, payload.size())};
  if (is_progress(p)) return Step::kContinue;
  return dispatch(p);
}

std::uint8_t ResponseTracker::current_command() const {
  return count_ > 0 ? commands_[head_] : last_.command;
}

ResponseTracker::Step ResponseTracker::dispatch(const Packet& p) {
  switch (state_) {
    case State::kResultStart:
      return on_result_start(p);
    case State::kColumnDefs:
      return on_column_defs(p);
    case State::kColumnsEof:
      return on_columns_eof(p);
    case State::kRows:
      return on_rows(p);
    case State::kFetchRows:
      return on_fetch_rows(p);
    case State::kInfileResult:
      return on_infile_result(p);
    case State::kPrepareOk:
      return on_prepare_ok(p);
    case State::kPrepareDefs:
      return on_prepare_defs(p);
    case State::kPrepareEof:
      return on_prepare_eof(p);
    case State::kFieldList:
      return on_field_list(p);
    case State::kSingle:
      return on_single(p);
    case State::kAnyOne:
      return complete();
    case State::kStreamStart:
      // Refused (no privilege, no clone plugin, MariaDB's unknown command):
      // one ERR and the session goes on; anything else starts the stream.
      return p.first() == wire::kErrHeader ? complete() : lose();
    case State::kChangeUserStart:
    case State::kAuthExchange:
      return on_change_user(p);
    case State::kIdle:        // count_ > 0 rules it out
    case State::kInfileData:  // the server speaks only after the empty packet
    case State::kLost:
      break;
  }
  return lose();
}

// The first packet of a result, and of each result chained by MORE_RESULTS.
ResponseTracker::Step ResponseTracker::on_result_start(const Packet& p) {
  switch (p.first()) {
    case wire::kOkHeader:
      return on_ok(p);
    case wire::kErrHeader:
      return complete();  // an ERR ends the whole chain
    case wire::kLocalInfileHeader:
      state_ = State::kInfileData;
      return Step::kContinue;
    case wire::kEofHeader:
      return lose();  // no result starts with 0xFE
  }
  std::size_t pos = 0;
  const auto columns = wire::read_lenenc(p.bytes, &pos);
  if (!columns) return lose();
  bool definitions_follow = true;
  if (metadata_flag_) {  // MariaDB cache-metadata / MySQL optional-metadata flag byte
    if (pos >= p.bytes.size()) return lose();
    definitions_follow = p.bytes[pos] != 0;
  }
  remaining_ = definitions_follow ? *columns : 0;
  if (remaining_ == 0) return after_columns();
  state_ = State::kColumnDefs;
  return Step::kContinue;
}

ResponseTracker::Step ResponseTracker::on_column_defs(const Packet& p) {
  // A definition starts with the lenenc catalog ("def"): never 0xFF or 0xFE.
  if (p.first() == wire::kErrHeader) return complete();
  if (p.first() == wire::kEofHeader) return lose();
  if (--remaining_ > 0) return Step::kContinue;
  return after_columns();
}

ResponseTracker::Step ResponseTracker::after_columns() {
  state_ = deprecate_eof_ ? State::kRows : State::kColumnsEof;
  return Step::kContinue;
}

// Without DEPRECATE_EOF. For COM_STMT_EXECUTE this EOF may announce an open
// cursor: then no rows follow, the client fetches them (as libmysql decides).
ResponseTracker::Step ResponseTracker::on_columns_eof(const Packet& p) {
  if (p.first() == wire::kErrHeader) return complete();
  if (!is_terminator(p)) return lose();
  const auto status = eof_status(p.bytes);
  if (!status) return lose();
  const std::uint8_t command = commands_[head_];
  const bool executes = command == kComStmtExecute || command == kComStmtBulkExecute;
  if (executes && (*status & wire::kServerStatusCursorExists)) return end_of_result(*status);
  state_ = State::kRows;
  return Step::kContinue;
}

// Text or binary rows. A binary row starts with 0x00; a text row starting with
// 0xFE or 0xFF is impossible below the terminator limit.
ResponseTracker::Step ResponseTracker::on_rows(const Packet& p) {
  if (p.first() == wire::kErrHeader) return complete();
  if (!is_terminator(p)) return Step::kContinue;
  const auto status = deprecate_eof_ ? ok_status(p.bytes) : eof_status(p.bytes);
  if (!status) return lose();
  return end_of_result(*status);
}

// A fetch ends at its EOF whatever the status says (CURSOR_EXISTS: more rows
// to fetch later; LAST_ROW_SENT: the cursor is closed).
ResponseTracker::Step ResponseTracker::on_fetch_rows(const Packet& p) {
  if (p.first() == wire::kErrHeader || is_terminator(p)) return complete();
  return Step::kContinue;
}

ResponseTracker::Step ResponseTracker::on_infile_result(const Packet& p) {
  if (p.first() == wire::kErrHeader) return complete();
  if (p.first() != wire::kOkHeader) return lose();
  return on_ok(p);
}

ResponseTracker::Step ResponseTracker::on_ok(const Packet& p) {
  const auto status = ok_status(p.bytes);
  if (!status) return lose();
  return end_of_result(*status);
}

ResponseTracker::Step ResponseTracker::on_prepare_ok(const Packet& p) {
  if (p.first() == wire::kErrHeader) return complete();
  if (p.first() != wire::kOkHeader || p.bytes.size() < kPrepareOkMinimum) return lose();
  const std::uint16_t columns = wire::le16(&p.bytes[5]);
  const std::uint16_t params = wire::le16(&p.bytes[7]);
  // MySQL's RESULTSET_METADATA_NONE: no definitions and no EOFs (as libmysql reads).
  if (mysql_optional_ && p.bytes.size() > kPrepareOkMetadata && p.bytes[kPrepareOkMetadata] == 0) {
    return complete();
  }
  prepare_columns_ = columns;
  if (params == 0) return next_prepare_block();
  remaining_ = params;
  state_ = State::kPrepareDefs;
  return Step::kContinue;
}

ResponseTracker::Step ResponseTracker::on_prepare_defs(const Packet& p) {
  if (p.first() == wire::kErrHeader) return complete();
  if (p.first() == wire::kEofHeader) return lose();
  if (--remaining_ > 0) return Step::kContinue;
  if (deprecate_eof_) return next_prepare_block();
  state_ = State::kPrepareEof;
  return Step::kContinue;
}

ResponseTracker::Step ResponseTracker::on_prepare_eof(const Packet& p) {
  if (p.first() == wire::kErrHeader) return complete();
  if (!is_terminator(p)) return lose();
  return next_prepare_block();
}

// Parameters come first, then columns; either block may be empty.
ResponseTracker::Step ResponseTracker::next_prepare_block() {
  if (prepare_columns_ == 0) return complete();
  remaining_ = prepare_columns_;
  prepare_columns_ = 0;
  state_ = State::kPrepareDefs;
  return Step::kContinue;
}

ResponseTracker::Step ResponseTracker::on_field_list(const Packet& p) {
  if (p.first() == wire::kErrHeader || is_terminator(p)) return complete();
  return Step::kContinue;
}

ResponseTracker::Step ResponseTracker::on_single(const Packet& p) {
  switch (p.first()) {
    case wire::kOkHeader:
    case wire::kEofHeader:  // COM_SET_OPTION, COM_DEBUG, COM_SHUTDOWN answer EOF
    case wire::kErrHeader:
      return complete();
    default:
      return lose();
  }
}

// Auth switch (0xFE) and more data (0x01) may repeat; OK or ERR ends it.
ResponseTracker::Step ResponseTracker::on_change_user(const Packet& p) {
  switch (p.first()) {
    case wire::kOkHeader:
    case wire::kErrHeader:
      return complete();
    case wire::kAuthSwitchHeader:
    case wire::kAuthMoreDataHeader:
      state_ = State::kAuthExchange;
      return Step::kContinue;
    default:
      return lose();
  }
}

ResponseTracker::Step ResponseTracker::end_of_result(std::uint16_t status) {
  if (!(status & wire::kServerMoreResultsExist)) return complete();
  state_ = State::kResultStart;
  return Step::kContinue;
}

void ResponseTracker::start_response() {
  switch (kAnswers[commands_[head_]]) {
    case Answer::kResult:
      state_ = State::kResultStart;
      break;
    case Answer::kFetch:
      state_ = State::kFetchRows;
      break;
    case Answer::kPrepare:
      state_ = State::kPrepareOk;
      break;
    case Answer::kFieldList:
      state_ = State::kFieldList;
      break;
    case Answer::kAnyOne:
      state_ = State::kAnyOne;
      break;
    case Answer::kChangeUser:
      state_ = State::kChangeUserStart;
      break;
    case Answer::kStream:
      state_ = State::kStreamStart;
      break;
    case Answer::kSingle:
    case Answer::kNone:  // never queued
      state_ = State::kSingle;
      break;
  }
}

ResponseTracker::Step ResponseTracker::complete() {
  last_ = {commands_[head_], tags_[head_]};
  head_ = (head_ + 1) % kMaxOutstanding;
  --count_;
  if (count_ > 0) {
    start_response();
  } else {
    state_ = State::kIdle;
    head_ = 0;  // one command at a time (the usual case) keeps using the same slot's cache line
  }
  return Step::kComplete;
}

ResponseTracker::Step ResponseTracker::lose() {
  state_ = State::kLost;
  return Step::kUnexpected;
}

bool ResponseTracker::is_terminator(const Packet& p) const {
  return p.first() == wire::kEofHeader && p.length < eof_limit_;
}

// MariaDB progress report: 0xFF, code 0xFFFF, stage data. It ends nothing.
bool ResponseTracker::is_progress(const Packet& p) const {
  return progress_ && p.first() == wire::kErrHeader && p.bytes.size() >= 3 &&
         wire::le16(&p.bytes[1]) == kProgressCode;
}

}  // namespace sluice
