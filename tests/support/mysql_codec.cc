// The MySQL protocol pieces the raw test client encodes and decodes, apart from its socket.
#include "tests/support/mysql_codec.h"

#include <algorithm>

#include "tests/support/sha1.h"

namespace sluice::test {
namespace {

void put_le(std::string* out, std::uint64_t value, int width) {
  for (int i = 0; i < width; ++i) out->push_back(static_cast<char>(value >> (8 * i)));
}

}  // namespace

std::uint64_t PayloadReader::fixed(int width) {
  if (!need(static_cast<std::size_t>(width))) return 0;
  std::uint64_t value = 0;
  for (int i = 0; i < width; ++i) {
    value |= static_cast<std::uint64_t>(static_cast<unsigned char>(data_[pos_ + i])) << (8 * i);
  }
  pos_ += static_cast<std::size_t>(width);
  return value;
}

std::uint64_t PayloadReader::lenenc() {
  const auto first = fixed(1);
  if (first < 0xFB) return first;
  if (first == 0xFC) return fixed(2);
  if (first == 0xFD) return fixed(3);
  if (first == 0xFE) return fixed(8);
  ok_ = false;
  return 0;
}

std::optional<std::string> PayloadReader::lenenc_string() {
  if (need(1) && static_cast<unsigned char>(data_[pos_]) == 0xFB) {
    ++pos_;
    return std::nullopt;
  }
  return bytes(static_cast<std::size_t>(lenenc()));
}

std::string PayloadReader::bytes(std::size_t n) {
  if (!need(n)) return {};
  std::string out(data_.substr(pos_, n));
  pos_ += n;
  return out;
}

std::string PayloadReader::nul_terminated() {
  const auto end = data_.find('\0', pos_);
  if (end == std::string_view::npos) {
    ok_ = false;
    return {};
  }
  std::string out(data_.substr(pos_, end - pos_));
  pos_ = end + 1;
  return out;
}

std::string PayloadReader::rest() {
  std::string out(data_.substr(std::min(pos_, data_.size())));
  pos_ = data_.size();
  return out;
}

void PayloadReader::skip(std::size_t n) {
  if (need(n)) pos_ += n;
}

bool PayloadReader::need(std::size_t n) {
  if (ok_ && pos_ <= data_.size() && data_.size() - pos_ >= n) return true;
  ok_ = false;
  return false;
}

bool is_eof_packet(const Packet& packet) {
  return !packet.payload.empty() && static_cast<unsigned char>(packet.payload[0]) == 0xFE &&
         packet.payload.size() < 9;
}

bool is_err_packet(const Packet& packet) {
  return !packet.payload.empty() && static_cast<unsigned char>(packet.payload[0]) == 0xFF;
}

// mysql_native_password: SHA1(password) XOR SHA1(scramble + SHA1(SHA1(password))).
std::string native_password_scramble(const std::string& password, std::string_view scramble) {
  if (password.empty()) return {};
  const Sha1Digest stage1 = sha1(password);
  const Sha1Digest stage2 =
      sha1(std::string_view(reinterpret_cast<const char*>(stage1.data()), stage1.size()));
  std::string salted(scramble.substr(0, 20));
  salted.append(reinterpret_cast<const char*>(stage2.data()), stage2.size());
  const Sha1Digest mix = sha1(salted);
  std::string out(20, '\0');
  for (int i = 0; i < 20; ++i) out[i] = static_cast<char>(stage1[i] ^ mix[i]);
  return out;
}

std::optional<ServerError> parse_err(const Packet& packet) {
  if (!is_err_packet(packet)) return std::nullopt;
  ServerError error;
  error.seq = packet.seq;
  PayloadReader reader(packet.payload);
  reader.skip(1);
  error.code = static_cast<std::uint16_t>(reader.fixed(2));
  std::string rest = reader.rest();
  if (!rest.empty() && rest[0] == '#' && rest.size() >= 6) {
    error.sqlstate = rest.substr(1, 5);
    rest = rest.substr(6);
  }
  error.message = rest;
  return error;
}

std::string frame_header(std::uint32_t payload_length, std::uint8_t seq) {
  std::string header;
  put_le(&header, payload_length, 3);
  header.push_back(static_cast<char>(seq));
  return header;
}

std::string frames(std::uint8_t seq, std::string_view payload) {
  std::string out;
  std::size_t pos = 0;
  while (true) {
    const std::size_t chunk = std::min<std::size_t>(payload.size() - pos, kMaxFrame);
    out += frame_header(static_cast<std::uint32_t>(chunk), seq++);
    out.append(payload.substr(pos, chunk));
    pos += chunk;
    // A frame of exactly 0xFFFFFF bytes is always followed by another (maybe empty) one.
    if (chunk < kMaxFrame) break;
  }
  return out;
}

std::string ssl_request_payload(const Greeting& greeting) {
  using namespace client_flag;
  const std::uint32_t caps = kLongPassword | kProtocol41 | kSecureConnection | kPluginAuth | kSsl;
  std::string payload;
  for (const std::uint32_t v : {caps, 16u << 20}) {
    for (int i = 0; i < 4; ++i) payload.push_back(static_cast<char>(v >> (8 * i)));
  }
  payload.push_back(static_cast<char>(greeting.charset));
  payload.append(23, '\0');
  return payload;
}

std::optional<Greeting> parse_greeting(std::string_view payload) {
  Greeting greeting;
  PayloadReader reader(payload);
  greeting.protocol_version = static_cast<std::uint8_t>(reader.fixed(1));
  greeting.server_version = reader.nul_terminated();
  greeting.connection_id = static_cast<std::uint32_t>(reader.fixed(4));
  std::string scramble = reader.bytes(8);
  reader.skip(1);
  greeting.capabilities = reader.fixed(2);
  if (!reader.ok()) return std::nullopt;
  if (reader.at_end()) {
    greeting.scramble = scramble;
    return greeting;
  }
  greeting.charset = static_cast<std::uint8_t>(reader.fixed(1));
  reader.skip(2);  // status flags
  greeting.capabilities |= reader.fixed(2) << 16;
  const auto auth_data_length = reader.fixed(1);
  reader.skip(6);
  const std::uint64_t mariadb_capabilities = reader.fixed(4);
  if ((greeting.capabilities & client_flag::kLongPassword) == 0) {
    greeting.capabilities |= mariadb_capabilities << 32;  // MariaDB extended capabilities
  }
  if (greeting.capabilities & client_flag::kSecureConnection) {
    const std::size_t part2 =
        std::max<std::size_t>(13, auth_data_length > 8 ? auth_data_length - 8 : 0);
    scramble += reader.bytes(part2);
    if (!scramble.empty() && scramble.back() == '\0') scramble.pop_back();
  }
  greeting.scramble = scramble;
  if (greeting.capabilities & client_flag::kPluginAuth) {
    std::string rest = reader.rest();
    greeting.auth_plugin = rest.substr(0, rest.find('\0'));
  }
  if (!reader.ok()) return std::nullopt;
  return greeting;
}

}  // namespace sluice::test
