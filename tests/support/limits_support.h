// Helpers for the packet-limit and memory tests: sized packets, exact responses, server and process
// probes.
#pragma once

#include <sys/types.h>

#include <atomic>
#include <chrono>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

#include "tests/support/mysql_codec.h"
#include "tests/support/mysql_conn.h"
#include "tests/support/raw_mysql.h"

namespace sluice::test::limits {

inline constexpr std::uint64_t kKiB = 1024;
inline constexpr std::uint64_t kMiB = 1024 * 1024;
inline constexpr char kComQueryByte = '\x03';
inline constexpr char kPacketTooLargeMessage[] =
    "Got a packet bigger than 'max_allowed_packet' bytes";

// A COM_QUERY payload of exactly `size` bytes (command byte included):
// "\x03<prefix>LENGTH('xxx...')". The query returns the columns of `prefix`
// (e.g. "SELECT 7, ") followed by the number of fill bytes, stored in
// *fill_length. `size` must leave room for the SQL around the fill.
std::string sized_query(std::size_t size, std::size_t* fill_length = nullptr,
                        std::string_view prefix = "SELECT ", char fill = 'x');
// "\x03" + sql.
std::string com_query(std::string_view sql);

// The payload of a text-protocol row holding one string of `n` bytes: lenenc(n) + n.
std::size_t lenenc_size(std::uint64_t n);

// `value` as `width` little-endian bytes.
std::string le(std::uint64_t value, int width);

// A compressed session's bytes as a client may send them: `inner` cut into
// stored (uncompressed) frames of at most `chunk` bytes, compressed ids from
// 0; *last gets the last id.
std::string stored_frames(std::string_view inner, std::size_t chunk, std::uint8_t* last);
// The next compressed frame, which must be stored and carry compressed id
// `comp_seq` and one inner packet: that packet (REQUIREs and CHECKs).
Packet read_stored_packet(RawMysqlClient& client, std::uint8_t comp_seq);

// A logged-in raw client (REQUIREs success).
std::unique_ptr<RawMysqlClient> raw_login(int port, std::uint32_t extra_capabilities = 0);

// Every packet of one response to a command already sent: an OK/ERR alone, or
// a text result set (count, definitions, EOF, rows, EOF/ERR). Stops early on a
// transport problem; `status` says how it ended.
struct RawResponse {
  ReadStatus status = ReadStatus::kError;
  std::vector<Packet> packets;
  std::optional<ServerError> error;                           // the response's ERR, if any
  std::vector<std::vector<std::optional<std::string>>> rows;  // parsed text rows
  bool ok() const { return status == ReadStatus::kOk && !error; }
};
RawResponse read_response(RawMysqlClient& client, std::chrono::milliseconds timeout = 120s);

// "1153 (08S01) message", or "no ERR".
std::string err_text(const std::optional<ServerError>& err);
// The response's ERR or how its transport ended, for messages.
std::string why(const RawResponse& response);

// The next packet must be an ERR with exactly these fields (CHECKed); returns it.
std::optional<ServerError> expect_err(RawMysqlClient& client, std::uint16_t code,
                                      const std::string& sqlstate, const std::string& message,
                                      int seq, std::chrono::milliseconds timeout = 60s);
// The connection must end (EOF or reset) within `timeout` (CHECKed).
void expect_closed(RawMysqlClient& client, std::chrono::milliseconds timeout = 15s);

// Client sessions the server has open besides `monitor`'s.
int server_sessions(MysqlConn& monitor);
bool wait_server_sessions(MysqlConn& monitor, int sessions, std::chrono::seconds timeout);
// Bytes the server has read from every connection but the monitor's (see lifecycle_test.cc).
long long server_bytes_from_others(MysqlConn& monitor);

// sluice_buffered_bytes now, and whether it comes back to 0 within `timeout`
// (a closing session lets its buffers go after its linger).
double buffered_bytes(int metrics_port);
bool wait_buffered_zero(int metrics_port, std::chrono::seconds timeout);

// A line of /proc/<pid>/status in KiB ("VmRSS", "VmHWM"), -1 when unreadable.
long proc_status_kib(pid_t pid, const std::string& field);

// Samples a process's VmRSS every `interval` on a thread until destroyed or stop().
class RssSampler {
 public:
  explicit RssSampler(pid_t pid, std::chrono::milliseconds interval = std::chrono::milliseconds(5));
  ~RssSampler();
  RssSampler(const RssSampler&) = delete;
  RssSampler& operator=(const RssSampler&) = delete;
  void stop();
  long peak_kib() const { return peak_.load(); }
  long samples() const { return samples_.load(); }

 private:
  pid_t pid_;
  std::atomic<bool> stop_{false};
  std::atomic<long> peak_{0};
  std::atomic<long> samples_{0};
  std::thread thread_;
};

}  // namespace sluice::test::limits
