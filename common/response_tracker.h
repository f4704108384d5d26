// Follows the command phase packet by packet to know where each server response ends.
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>
#include <span>

namespace sluice {

// A pure, incremental reader of the command phase. It is fed every logical
// packet of both directions in stream order (payload only, header stripped) and
// says when the response to the oldest outstanding command is complete. It never
// allocates and does O(1) work per packet: it looks at no more than the first
// ~20 bytes of a packet, so callers may pass a prefix of a large packet (at
// least 64 bytes, or the whole packet) together with its full logical length.
//
// Commands may be pipelined: up to kMaxOutstanding responses can be pending, in
// FIFO order. Only the oldest one is being parsed. A caller that holds the
// next command back while full() is true never overflows the queue.
//
// Losing track: on anything the protocol does not allow (a server packet while
// idle, a malformed packet, a command it cannot follow such as COM_BINLOG_DUMP,
// FIFO overflow) the tracker stops guessing for good. The call that loses track
// returns kUnexpected; from then on lost() is true, idle() and
// awaiting_client() are false, and every call returns kContinue. Callers must
// then assume a response may always be in flight (no `reject`, drain waits).
class ResponseTracker {
 public:
  enum class Step : std::uint8_t {
    kContinue,    // nothing ended
    kComplete,    // the response to the oldest outstanding command ended
    kUnexpected,  // the tracker lost track with this packet and stops tracking
  };
  // The command whose response ended at the last kComplete.
  struct Completion {
    std::uint8_t command = 0;
    std::uint64_t tag = 0;  // the caller's value given to on_command
  };
  static constexpr std::size_t kMaxOutstanding = 64;

  // The negotiated capabilities, set once the handshake is done and before the
  // first command: ServerGreeting::capabilities & ClientHello::capabilities
  // (each carries MariaDB's extended caps in its upper 32 bits, so the AND keeps
  // them only when both sides use them).
  void set_capabilities(std::uint64_t caps);

  // A client packet that starts a command (the caller routes a client packet
  // here unless awaiting_client() is true; sequence ids alone cannot tell, as
  // LOCAL INFILE data can wrap to 0). `tag` is opaque (e.g. the send time) and
  // comes back in last_completion(). `reply_seq` is the sequence id the
  // response will start at (one past the command's last frame), given back by
  // reply_seq() while it is the oldest. Returns kComplete at once for commands
  // the server never answers (COM_QUIT, COM_STMT_SEND_LONG_DATA,
  // COM_STMT_CLOSE): they are not queued. An empty payload is answered like
  // COM_SLEEP (an ERR).
  [[nodiscard, gnu::hot]] Step on_command(std::span<const std::uint8_t> payload,
                                          std::uint64_t total_length, std::uint64_t tag = 0,
                                          std::uint8_t reply_seq = 1);

  // A client packet that is not a command: LOCAL INFILE content (an empty
  // packet ends the file) or auth data during COM_CHANGE_USER. Unexpected
  // unless awaiting_client() is true.
  [[nodiscard]] Step on_client_packet(std::span<const std::uint8_t> payload,
                                      std::uint64_t total_length);

  // A server packet.
  [[nodiscard, gnu::hot]] Step on_server_packet(std::span<const std::uint8_t> payload,
                                                std::uint64_t total_length);

  // No response is outstanding (and the tracker has not lost track).
  bool idle() const { return count_ == 0 && state_ != State::kLost; }
  bool lost() const { return state_ == State::kLost; }
  // The server asked the client for data (a LOCAL INFILE request, or an auth
  // switch / more-data packet during COM_CHANGE_USER): the next client packets
  // are not commands.
  bool awaiting_client() const {
    return state_ == State::kInfileData || state_ == State::kAuthExchange;
  }
  // The command whose response is being read (once lost: the one being read
  // when track was lost); with nothing outstanding, the last one completed.
  std::uint8_t current_command() const;
  // No room for another command's response: a command now would lose track.
  bool full() const { return count_ == kMaxOutstanding && state_ != State::kLost; }
  // The sequence id the oldest outstanding response starts at (when one is):
  // with pipelined commands, where the next response's ids begin once one ends.
  std::uint8_t reply_seq() const { return reply_seqs_[head_]; }
  // Responses outstanding, the one being read included.
  std::size_t outstanding() const { return count_; }
  const Completion& last_completion() const { return last_; }

 private:
  // Where the oldest outstanding response is. One handler per state, each
  // called with the next server packet.
  enum class State : std::uint8_t {
    kIdle,             // nothing outstanding
    kResultStart,      // OK, ERR, LOCAL INFILE request or a column count
    kColumnDefs,       // remaining_ column definitions of a result set
    kColumnsEof,       // the EOF closing result-set metadata (no DEPRECATE_EOF)
    kRows,             // rows until EOF / OK(0xFE) or ERR
    kFetchRows,        // COM_STMT_FETCH rows: like kRows, but never chained
    kInfileData,       // the client sends file content until an empty packet
    kInfileResult,     // the OK or ERR that ends LOAD DATA LOCAL
    kPrepareOk,        // COM_STMT_PREPARE_OK or ERR
    kPrepareDefs,      // remaining_ parameter or column definitions
    kPrepareEof,       // the EOF after a block of definitions (no DEPRECATE_EOF)
    kFieldList,        // COM_FIELD_LIST: column definitions until EOF or ERR
    kSingle,           // one OK, EOF or ERR packet
    kAnyOne,           // one packet of any content (COM_STATISTICS)
    kStreamStart,      // binlog dump / clone: an ERR ends it, anything else is a stream
    kChangeUserStart,  // COM_CHANGE_USER: the first server reply
    kAuthExchange,     // COM_CHANGE_USER after an auth switch / more data
    kLost,             // stopped tracking
  };
  struct Packet {
    std::span<const std::uint8_t> bytes;  // a prefix of the payload, never empty
    std::uint64_t length;                 // the logical payload length
    std::uint8_t first() const { return bytes[0]; }
  };

  [[gnu::hot]] Step dispatch(const Packet& p);
  [[gnu::hot]] Step on_result_start(const Packet& p);
  [[gnu::hot]] Step on_column_defs(const Packet& p);
  [[gnu::hot]] Step on_columns_eof(const Packet& p);
  [[gnu::hot]] Step on_rows(const Packet& p);
  Step on_fetch_rows(const Packet& p);
  Step on_infile_result(const Packet& p);
  Step on_ok(const Packet& p);
  Step on_prepare_ok(const Packet& p);
  Step on_prepare_defs(const Packet& p);
  Step on_prepare_eof(const Packet& p);
  Step on_field_list(const Packet& p);
  [[gnu::hot]] Step on_single(const Packet& p);
  Step on_change_user(const Packet& p);

  Step after_columns();
  Step next_prepare_block();
  [[gnu::hot]] void start_response();
  [[gnu::hot]] Step end_of_result(std::uint16_t status);
  [[gnu::hot]] Step complete();
  Step lose();
  bool is_terminator(const Packet& p) const;
  bool is_progress(const Packet& p) const;

  // The scalars every packet reads come first, then the rings: a point
  // select's tracking touches one or two cache lines.
  std::size_t head_ = 0;
  std::size_t count_ = 0;
  State state_ = State::kIdle;
  std::uint16_t prepare_columns_ = 0;  // column definitions after the parameters
  // Derived from the capabilities.
  bool deprecate_eof_ = false;   // OK(0xFE) replaces EOF; no metadata EOF
  bool metadata_flag_ = false;   // a "metadata follows" byte after column counts
  bool mysql_optional_ = false;  // MySQL's flag also ends COM_STMT_PREPARE_OK
  bool progress_ = false;        // MariaDB progress reports may appear anywhere
  std::uint64_t remaining_ = 0;  // definitions left in the current block
  std::uint64_t eof_limit_ = 9;  // a 0xFE packet shorter than this is a terminator
  Completion last_;

  // FIFO of outstanding commands, a ring; head_ is the one being parsed.
  std::array<std::uint8_t, kMaxOutstanding> commands_{};
  std::array<std::uint64_t, kMaxOutstanding> tags_{};
  std::array<std::uint8_t, kMaxOutstanding> reply_seqs_{};
};

}  // namespace sluice
