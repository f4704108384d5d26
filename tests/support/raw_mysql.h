// A hand-written MySQL protocol client, so tests can assert exact bytes, errors and sequence ids.
#pragma once

#include <chrono>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "tests/support/mysql_codec.h"

namespace sluice::test {

using namespace std::chrono_literals;

// How a read ended. kEof is an orderly close (FIN) by the peer, kReset an RST
// (ECONNRESET/EPIPE), kTimeout means nothing (or not enough) arrived in time.
enum class ReadStatus { kOk, kTimeout, kEof, kReset, kError };
const char* to_string(ReadStatus status);

struct ReadResult {
  ReadStatus status = ReadStatus::kError;
  Packet packet;  // valid when status == kOk
  int error = 0;  // errno for kReset / kError
  bool ok() const { return status == ReadStatus::kOk; }
};

struct HandshakeResult {
  ReadStatus status = ReadStatus::kError;  // transport outcome
  bool logged_in = false;
  std::optional<ServerError> error;  // the server's (or proxy's) ERR, if one came
  Greeting greeting;
  std::uint8_t last_seq = 0;  // sequence id of the final OK/ERR
  std::string failure;        // a description when !logged_in
};

struct ResultSet {
  std::vector<std::string> columns;
  std::vector<std::vector<std::optional<std::string>>> rows;  // nullopt is SQL NULL
};

struct QueryResult {
  ReadStatus status = ReadStatus::kError;  // kOk when the whole response arrived
  std::optional<ServerError> error;        // set when the response (or its end) was an ERR
  std::vector<ResultSet> result_sets;      // text result sets, in order
  std::uint64_t affected_rows = 0;         // from the last OK
  std::uint8_t last_seq = 0;               // sequence id of the last packet read
  std::string failure;                     // a description of transport or protocol trouble
  bool ok() const { return status == ReadStatus::kOk && !error; }
  // Rows of the first result set (empty when there is none).
  const std::vector<std::vector<std::optional<std::string>>>& rows() const;
};

// One blocking TCP connection with poll-based timeouts. Not thread-safe.
//
// Authentication: mysql_native_password only (SHA-1 scramble, including an
// auth switch to it); an empty password sends an empty auth response. The
// client never asks for TLS, compression or CLIENT_DEPRECATE_EOF, so result
// sets end with classic EOF packets.
class RawMysqlClient {
 public:
  RawMysqlClient() = default;
  ~RawMysqlClient();
  RawMysqlClient(const RawMysqlClient&) = delete;
  RawMysqlClient& operator=(const RawMysqlClient&) = delete;

  // TCP connect to host:port; false on failure or timeout (see last_error()).
  bool connect(int port, std::chrono::milliseconds timeout = 10s,
               const std::string& host = "127.0.0.1");
  bool connected() const { return fd_ >= 0; }
  int fd() const { return fd_; }
  const std::string& last_error() const { return last_error_; }
  // errno of the last failed connect(); ECONNRESET means the peer accepted
  // and reset before we looked (a proxy dropping a session at once does).
  int last_errno() const { return last_errno_; }

  // Orderly close (FIN). Idempotent.
  void close();
  // Close with an RST (SO_LINGER 0), as a crashed client would.
  void reset();
  // Half-close: FIN, but keep reading.
  void shutdown_write();

  // Writes all bytes (poll-based, up to `timeout`); false on error/timeout.
  bool send_raw(std::string_view bytes, std::chrono::milliseconds timeout = 30s);
  // Sends `payload` as one logical packet starting at `seq` (split into
  // 0xFFFFFF frames as the protocol requires).
  bool send_packet(std::uint8_t seq, std::string_view payload,
                   std::chrono::milliseconds timeout = 30s);

  // Exactly `n` bytes, unframed (a compressed session's frames, say).
  ReadStatus read_bytes(std::size_t n, std::string* out, std::chrono::milliseconds timeout = 30s);
  // One wire frame, exactly as it arrived.
  ReadResult read_frame(std::chrono::milliseconds timeout = 30s);
  // One logical packet (continuation frames joined).
  ReadResult read_packet(std::chrono::milliseconds timeout = 30s);

  // Reads the greeting, logs in and reads the result.
  HandshakeResult handshake(const std::string& user = "root", const std::string& password = "",
                            const std::string& database = "", std::uint32_t extra_capabilities = 0,
                            std::chrono::milliseconds timeout = 30s);
  // COM_QUERY and its whole response: OK, ERR or text result sets (following
  // SERVER_MORE_RESULTS_EXIST). A LOCAL INFILE request is declined with an
  // empty packet.
  QueryResult query(std::string_view sql, std::chrono::milliseconds timeout = 60s);
  // The two halves of query(), for what a client may do in between.
  bool send_query(std::string_view sql, std::chrono::milliseconds timeout = 60s);
  QueryResult read_query_result(std::chrono::milliseconds timeout = 60s);

  // Waits up to `timeout` for the peer to close. True on EOF or reset; false
  // on timeout or when data arrives first (the data stays buffered for the
  // next read).
  bool is_closed(std::chrono::milliseconds timeout = 10s);
  // How the connection ended after reading (and discarding) everything the
  // peer still sends: kEof / kReset, or kTimeout if it stays open.
  ReadStatus wait_closed(std::chrono::milliseconds timeout = 10s);
  // Like wait_closed, but keeps every byte that arrives first (those already
  // buffered included), frames or not; `end` says how the wait ended.
  std::string read_until_closed(std::chrono::milliseconds timeout, ReadStatus* end);

  // Bytes received but not yet consumed by a read.
  std::size_t buffered() const { return buffer_.size() - consumed_; }
  // The capabilities sent in the last HandshakeResponse.
  std::uint32_t client_capabilities() const { return client_capabilities_; }

 private:
  using Deadline = std::chrono::steady_clock::time_point;
  // Receives more bytes into buffer_; kOk when some arrived.
  ReadStatus fill(Deadline deadline, int* error);
  ReadResult read_frame_until(Deadline deadline);
  ReadResult read_packet_until(Deadline deadline);

  int fd_ = -1;
  std::string buffer_;
  std::size_t consumed_ = 0;
  std::string last_error_;
  int last_errno_ = 0;
  std::uint32_t client_capabilities_ = 0;
};

}  // namespace sluice::test
