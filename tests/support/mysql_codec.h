// The MySQL protocol pieces the raw test client encodes and decodes, apart from its socket.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

namespace sluice::test {

inline constexpr std::uint32_t kMaxFrame = 0xFFFFFF;

// CLIENT_* capability flags the test client uses.
namespace client_flag {
inline constexpr std::uint32_t kLongPassword = 1u << 0;  // also CLIENT_MYSQL
inline constexpr std::uint32_t kLongFlag = 1u << 2;
inline constexpr std::uint32_t kConnectWithDb = 1u << 3;
inline constexpr std::uint32_t kCompress = 1u << 5;
inline constexpr std::uint32_t kLocalFiles = 1u << 7;
inline constexpr std::uint32_t kProtocol41 = 1u << 9;
inline constexpr std::uint32_t kSsl = 1u << 11;
inline constexpr std::uint32_t kTransactions = 1u << 13;
inline constexpr std::uint32_t kSecureConnection = 1u << 15;
inline constexpr std::uint32_t kMultiStatements = 1u << 16;
inline constexpr std::uint32_t kMultiResults = 1u << 17;
inline constexpr std::uint32_t kPsMultiResults = 1u << 18;
inline constexpr std::uint32_t kPluginAuth = 1u << 19;
inline constexpr std::uint32_t kDeprecateEof = 1u << 24;
}  // namespace client_flag

struct Packet {
  std::uint8_t seq = 0;       // sequence id of the first frame
  std::uint8_t last_seq = 0;  // sequence id of the last frame (== seq for a single frame)
  int frames = 0;             // wire frames making up this logical packet
  std::string payload;        // the frames' payloads concatenated
};

// An ERR packet (CLIENT_PROTOCOL_41 layout).
struct ServerError {
  std::uint16_t code = 0;
  std::string sqlstate;  // the 5 characters after '#'; empty when the packet has no marker
  std::string message;
  std::uint8_t seq = 0;  // the ERR packet's sequence id
};
// The ERR in `packet`, or nullopt when the payload does not start with 0xFF.
std::optional<ServerError> parse_err(const Packet& packet);

// The 4-byte frame header: 3-byte little-endian length, sequence id.
std::string frame_header(std::uint32_t payload_length, std::uint8_t seq);
// `payload` split into 0xFFFFFF frames (plus the empty trailer when needed),
// with sequence ids counting up from `seq`.
std::string frames(std::uint8_t seq, std::string_view payload);

struct Greeting {
  std::uint8_t protocol_version = 0;
  std::string server_version;
  std::uint32_t connection_id = 0;
  std::uint64_t capabilities = 0;  // lower 32 bits standard, upper 32 MariaDB's extension
  std::uint8_t charset = 0;
  std::string scramble;  // 20 bytes of auth-plugin data
  std::string auth_plugin;
};
// Parses a protocol-10 greeting; nullopt when malformed.
std::optional<Greeting> parse_greeting(std::string_view payload);
// The payload of an SSLRequest answering `greeting` (protocol 4.1, native
// password, 16 MiB max packet, the greeting's charset).
std::string ssl_request_payload(const Greeting& greeting);

// EOF packet: 0xFE header and shorter than 9 bytes (a longer one is a row).
bool is_eof_packet(const Packet& packet);
bool is_err_packet(const Packet& packet);

// The mysql_native_password auth response for `password` and the server's
// 20-byte scramble: SHA1(password) XOR SHA1(scramble + SHA1(SHA1(password))).
// Empty for an empty password.
std::string native_password_scramble(const std::string& password, std::string_view scramble);

// A cursor over a payload that reads protocol fields; once it runs out of
// bytes (or meets a malformed length) ok() turns false and reads return zeros.
class PayloadReader {
 public:
  explicit PayloadReader(std::string_view data) : data_(data) {}
  bool ok() const { return ok_; }
  bool at_end() const { return pos_ >= data_.size(); }
  std::uint64_t fixed(int width);  // little-endian
  std::uint64_t lenenc();
  // A length-encoded string, or nullopt for the NULL marker 0xFB.
  std::optional<std::string> lenenc_string();
  std::string bytes(std::size_t n);
  std::string nul_terminated();
  std::string rest();
  void skip(std::size_t n);

 private:
  bool need(std::size_t n);

  std::string_view data_;
  std::size_t pos_ = 0;
  bool ok_ = true;
};

}  // namespace sluice::test
