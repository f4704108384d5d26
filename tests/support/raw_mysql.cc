// A hand-written MySQL protocol client, so tests can assert exact bytes, errors and sequence ids.
#include "tests/support/raw_mysql.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstring>

namespace sluice::test {
namespace {

using Clock = std::chrono::steady_clock;

constexpr std::uint8_t kComQuery = 0x03;
constexpr std::uint16_t kMoreResultsExist = 0x0008;

using namespace client_flag;

constexpr const char* kNativePassword = "mysql_native_password";

std::uint32_t le(std::string_view bytes, std::size_t pos, int width) {
  std::uint32_t value = 0;
  for (int i = 0; i < width; ++i) {
    value |= static_cast<std::uint32_t>(static_cast<unsigned char>(bytes[pos + i])) << (8 * i);
  }
  return value;
}

void put_le(std::string* out, std::uint64_t value, int width) {
  for (int i = 0; i < width; ++i) out->push_back(static_cast<char>(value >> (8 * i)));
}

int remaining_ms(Clock::time_point deadline) {
  const auto left =
      std::chrono::duration_cast<std::chrono::milliseconds>(deadline - Clock::now()).count();
  return left <= 0 ? 0 : static_cast<int>(std::min<long long>(left, 1 << 30));
}

}  // namespace

const char* to_string(ReadStatus status) {
  switch (status) {
    case ReadStatus::kOk:
      return "ok";
    case ReadStatus::kTimeout:
      return "timeout";
    case ReadStatus::kEof:
      return "eof";
    case ReadStatus::kReset:
      return "reset";
    case ReadStatus::kError:
      return "error";
  }
  return "?";
}

const std::vector<std::vector<std::optional<std::string>>>& QueryResult::rows() const {
  static const std::vector<std::vector<std::optional<std::string>>> kNone;
  return result_sets.empty() ? kNone : result_sets.front().rows;
}

RawMysqlClient::~RawMysqlClient() {
  close();
}

bool RawMysqlClient::connect(int port, std::chrono::milliseconds timeout, const std::string& host) {
  close();
  buffer_.clear();
  consumed_ = 0;
  last_errno_ = 0;
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_port = htons(static_cast<std::uint16_t>(port));
  if (::inet_pton(AF_INET, host.c_str(), &addr.sin_addr) != 1) {
    last_error_ = "not an IPv4 address: " + host;
    return false;
  }
  fd_ = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
  if (fd_ < 0) {
    last_errno_ = errno;
    last_error_ = std::string("socket: ") + std::strerror(errno);
    return false;
  }
  const int one = 1;
  ::setsockopt(fd_, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
  if (::connect(fd_, reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0) {
    if (errno != EINPROGRESS) {
      last_errno_ = errno;
      last_error_ = std::string("connect: ") + std::strerror(errno);
      close();
      return false;
    }
    pollfd pfd{fd_, POLLOUT, 0};
    const int ready = ::poll(&pfd, 1, static_cast<int>(timeout.count()));
    int error = 0;
    socklen_t length = sizeof error;
    ::getsockopt(fd_, SOL_SOCKET, SO_ERROR, &error, &length);
    if (ready <= 0 || error != 0) {
      last_errno_ = ready <= 0 ? ETIMEDOUT : error;
      last_error_ =
          ready <= 0 ? "connect: timeout" : std::string("connect: ") + std::strerror(error);
      close();
      return false;
    }
  }
  return true;
}

void RawMysqlClient::close() {
  if (fd_ >= 0) ::close(fd_);
  fd_ = -1;
}

void RawMysqlClient::reset() {
  if (fd_ < 0) return;
  const linger hard{1, 0};
  ::setsockopt(fd_, SOL_SOCKET, SO_LINGER, &hard, sizeof hard);
  close();
}

void RawMysqlClient::shutdown_write() {
  if (fd_ >= 0) ::shutdown(fd_, SHUT_WR);
}

bool RawMysqlClient::send_raw(std::string_view bytes, std::chrono::milliseconds timeout) {
  if (fd_ < 0) return false;
  const auto deadline = Clock::now() + timeout;
  std::size_t sent = 0;
  while (sent < bytes.size()) {
    const ssize_t n = ::send(fd_, bytes.data() + sent, bytes.size() - sent, MSG_NOSIGNAL);
    if (n > 0) {
      sent += static_cast<std::size_t>(n);
      continue;
    }
    if (n < 0 && errno == EINTR) continue;
    if (n < 0 && errno != EAGAIN) {
      last_error_ = std::string("send: ") + std::strerror(errno);
      return false;
    }
    pollfd pfd{fd_, POLLOUT, 0};
    if (::poll(&pfd, 1, remaining_ms(deadline)) <= 0) {
      last_error_ = "send: timeout";
      return false;
    }
  }
  return true;
}

bool RawMysqlClient::send_packet(std::uint8_t seq, std::string_view payload,
                                 std::chrono::milliseconds timeout) {
  return send_raw(frames(seq, payload), timeout);
}

ReadStatus RawMysqlClient::fill(Deadline deadline, int* error) {
  if (fd_ < 0) return ReadStatus::kError;
  if (consumed_ > 0 && consumed_ == buffer_.size()) {
    buffer_.clear();
    consumed_ = 0;
  }
  char chunk[65536];
  while (true) {
    const ssize_t n = ::recv(fd_, chunk, sizeof chunk, 0);
    if (n > 0) {
      buffer_.append(chunk, static_cast<std::size_t>(n));
      return ReadStatus::kOk;
    }
    if (n == 0) return ReadStatus::kEof;
    if (errno == EINTR) continue;
    if (errno == ECONNRESET || errno == EPIPE) {
      *error = errno;
      return ReadStatus::kReset;
    }
    if (errno != EAGAIN) {
      *error = errno;
      return ReadStatus::kError;
    }
    pollfd pfd{fd_, POLLIN, 0};
    const int ready = ::poll(&pfd, 1, remaining_ms(deadline));
    if (ready == 0) return ReadStatus::kTimeout;
    if (ready < 0 && errno != EINTR) {
      *error = errno;
      return ReadStatus::kError;
    }
  }
}

ReadStatus RawMysqlClient::read_bytes(std::size_t n, std::string* out,
                                      std::chrono::milliseconds timeout) {
  const Deadline deadline = std::chrono::steady_clock::now() + timeout;
  while (buffer_.size() - consumed_ < n) {
    int error = 0;
    const ReadStatus status = fill(deadline, &error);
    if (status != ReadStatus::kOk) return status;
  }
  *out = buffer_.substr(consumed_, n);
  consumed_ += n;
  return ReadStatus::kOk;
}

ReadResult RawMysqlClient::read_frame_until(Deadline deadline) {
  ReadResult result;
  while (true) {
    const std::size_t available = buffer_.size() - consumed_;
    if (available >= 4) {
      const std::uint32_t length = le(buffer_, consumed_, 3);
      if (available >= 4 + static_cast<std::size_t>(length)) {
        result.status = ReadStatus::kOk;
        result.packet.seq = static_cast<std::uint8_t>(buffer_[consumed_ + 3]);
        result.packet.last_seq = result.packet.seq;
        result.packet.frames = 1;
        result.packet.payload = buffer_.substr(consumed_ + 4, length);
        consumed_ += 4 + length;
        return result;
      }
    }
    result.status = fill(deadline, &result.error);
    if (result.status != ReadStatus::kOk) return result;
  }
}

ReadResult RawMysqlClient::read_packet_until(Deadline deadline) {
  ReadResult result = read_frame_until(deadline);
  if (!result.ok()) return result;
  bool continued = result.packet.payload.size() == kMaxFrame;
  while (continued) {
    ReadResult next = read_frame_until(deadline);
    if (!next.ok()) return next;
    continued = next.packet.payload.size() == kMaxFrame;
    result.packet.payload += next.packet.payload;
    result.packet.last_seq = next.packet.seq;
    ++result.packet.frames;
  }
  return result;
}

ReadResult RawMysqlClient::read_frame(std::chrono::milliseconds timeout) {
  return read_frame_until(Clock::now() + timeout);
}

ReadResult RawMysqlClient::read_packet(std::chrono::milliseconds timeout) {
  return read_packet_until(Clock::now() + timeout);
}

HandshakeResult RawMysqlClient::handshake(const std::string& user, const std::string& password,
                                          const std::string& database,
                                          std::uint32_t extra_capabilities,
                                          std::chrono::milliseconds timeout) {
  HandshakeResult result;
  const auto deadline = Clock::now() + timeout;
  ReadResult greeting = read_packet_until(deadline);
  result.status = greeting.status;
  if (!greeting.ok()) {
    result.failure = std::string("no greeting: ") + to_string(greeting.status);
    return result;
  }
  result.last_seq = greeting.packet.seq;
  if ((result.error = parse_err(greeting.packet))) {
    result.failure = "ERR instead of greeting: " + result.error->message;
    return result;
  }
  const auto parsed = parse_greeting(greeting.packet.payload);
  if (!parsed) {
    result.failure = "malformed greeting";
    return result;
  }
  result.greeting = *parsed;

  std::uint32_t capabilities = kLongPassword | kLongFlag | kProtocol41 | kTransactions |
                               kSecureConnection | kMultiStatements | kMultiResults |
                               kPsMultiResults | kPluginAuth | kLocalFiles | extra_capabilities;
  if (!database.empty()) capabilities |= kConnectWithDb;
  capabilities &= static_cast<std::uint32_t>(result.greeting.capabilities) | kProtocol41;
  client_capabilities_ = capabilities;

  const std::string auth = native_password_scramble(password, result.greeting.scramble);
  std::string response;
  put_le(&response, capabilities, 4);
  put_le(&response, 16u << 20, 4);  // max packet size we accept
  response.push_back(static_cast<char>(result.greeting.charset ? result.greeting.charset : 8));
  response.append(23, '\0');
  response += user;
  response.push_back('\0');
  response.push_back(static_cast<char>(auth.size()));
  response += auth;
  if (capabilities & kConnectWithDb) {
    response += database;
    response.push_back('\0');
  }
  if (capabilities & kPluginAuth) {
    response += kNativePassword;
    response.push_back('\0');
  }
  std::uint8_t seq = static_cast<std::uint8_t>(greeting.packet.seq + 1);
  if (!send_packet(seq, response, timeout)) {
    result.status = ReadStatus::kError;
    result.failure = "sending HandshakeResponse: " + last_error_;
    return result;
  }

  while (true) {
    ReadResult reply = read_packet_until(deadline);
    result.status = reply.status;
    if (!reply.ok()) {
      result.failure = std::string("no auth reply: ") + to_string(reply.status);
      return result;
    }
    result.last_seq = reply.packet.seq;
    const std::string& payload = reply.packet.payload;
    const unsigned char kind = payload.empty() ? 0xFF : static_cast<unsigned char>(payload[0]);
    if (kind == 0x00) {
      result.logged_in = true;
      return result;
    }
    if ((result.error = parse_err(reply.packet))) {
      result.failure = "login refused: " + result.error->message;
      return result;
    }
    if (kind == 0xFE) {  // AuthSwitchRequest: plugin name, then its data
      PayloadReader reader(payload);
      reader.skip(1);
      const std::string plugin = reader.nul_terminated();
      const std::string data = reader.rest();
      if (plugin != kNativePassword) {
        result.failure = "auth switch to unsupported plugin " + plugin;
        return result;
      }
      seq = static_cast<std::uint8_t>(reply.packet.seq + 1);
      if (!send_packet(seq, native_password_scramble(password, data), timeout)) {
        result.status = ReadStatus::kError;
        result.failure = "sending auth switch response: " + last_error_;
        return result;
      }
      continue;
    }
    char hex[8];
    std::snprintf(hex, sizeof hex, "0x%02X", kind);
    result.failure = std::string("unsupported auth reply ") + hex;
    return result;
  }
}

QueryResult RawMysqlClient::query(std::string_view sql, std::chrono::milliseconds timeout) {
  if (!send_query(sql, timeout)) {
    QueryResult result;
    result.failure = "sending COM_QUERY: " + last_error_;
    return result;
  }
  return read_query_result(timeout);
}

bool RawMysqlClient::send_query(std::string_view sql, std::chrono::milliseconds timeout) {
  std::string command(1, static_cast<char>(kComQuery));
  command.append(sql);
  return send_packet(0, command, timeout);
}

QueryResult RawMysqlClient::read_query_result(std::chrono::milliseconds timeout) {
  QueryResult result;
  const auto deadline = Clock::now() + timeout;
  auto next = [&](Packet* packet) {
    ReadResult read = read_packet_until(deadline);
    result.status = read.status;
    if (!read.ok()) {
      result.failure = std::string("reading response: ") + to_string(read.status);
      return false;
    }
    result.last_seq = read.packet.last_seq;
    *packet = std::move(read.packet);
    return true;
  };

  Packet packet;
  while (true) {
    if (!next(&packet)) return result;
    if ((result.error = parse_err(packet))) return result;
    const unsigned char kind =
        static_cast<unsigned char>(packet.payload.empty() ? 0 : packet.payload[0]);
    std::uint16_t status = 0;
    if (kind == 0x00 && !packet.payload.empty()) {  // OK
      PayloadReader reader(packet.payload);
      reader.skip(1);
      result.affected_rows = reader.lenenc();
      reader.lenenc();  // last insert id
      status = static_cast<std::uint16_t>(reader.fixed(2));
    } else if (kind == 0xFB) {  // LOCAL INFILE request: decline with an empty packet
      if (!send_packet(static_cast<std::uint8_t>(packet.seq + 1), "", timeout)) {
        result.status = ReadStatus::kError;
        result.failure = "declining LOCAL INFILE: " + last_error_;
        return result;
      }
      continue;
    } else {  // a result set: column count, definitions, EOF, rows, EOF
      PayloadReader count_reader(packet.payload);
      const std::uint64_t columns = count_reader.lenenc();
      ResultSet set;
      for (std::uint64_t i = 0; i < columns; ++i) {
        if (!next(&packet)) return result;
        PayloadReader reader(packet.payload);
        for (int skip = 0; skip < 4; ++skip) reader.lenenc_string();  // catalog .. org_table
        set.columns.push_back(reader.lenenc_string().value_or(""));
      }
      if (!next(&packet)) return result;
      if (!is_eof_packet(packet)) {
        result.status = ReadStatus::kError;
        result.failure = "expected EOF after column definitions";
        return result;
      }
      while (true) {
        if (!next(&packet)) return result;
        if ((result.error = parse_err(packet))) {
          result.result_sets.push_back(std::move(set));
          return result;
        }
        if (is_eof_packet(packet)) {
          PayloadReader reader(packet.payload);
          reader.skip(3);  // header, warnings
          status = static_cast<std::uint16_t>(reader.fixed(2));
          break;
        }
        PayloadReader reader(packet.payload);
        std::vector<std::optional<std::string>> row;
        for (std::uint64_t i = 0; i < columns; ++i) row.push_back(reader.lenenc_string());
        set.rows.push_back(std::move(row));
      }
      result.result_sets.push_back(std::move(set));
    }
    if ((status & kMoreResultsExist) == 0) return result;
  }
}

bool RawMysqlClient::is_closed(std::chrono::milliseconds timeout) {
  if (buffered() > 0) return false;
  int error = 0;
  const ReadStatus status = fill(Clock::now() + timeout, &error);
  return status == ReadStatus::kEof || status == ReadStatus::kReset;
}

std::string RawMysqlClient::read_until_closed(std::chrono::milliseconds timeout, ReadStatus* end) {
  const auto deadline = Clock::now() + timeout;
  std::string bytes = buffer_.substr(consumed_);
  while (true) {
    buffer_.clear();
    consumed_ = 0;
    int error = 0;
    *end = fill(deadline, &error);
    if (*end != ReadStatus::kOk) return bytes;
    bytes += buffer_;
  }
}

ReadStatus RawMysqlClient::wait_closed(std::chrono::milliseconds timeout) {
  const auto deadline = Clock::now() + timeout;
  while (true) {
    buffer_.clear();
    consumed_ = 0;
    int error = 0;
    const ReadStatus status = fill(deadline, &error);
    if (status != ReadStatus::kOk) return status;
  }
}

}  // namespace sluice::test
