// Parsers for the connection-phase packets: server greeting, client hello, auth replies, ERR.
#include "common/handshake.h"

#include <algorithm>

#include "common/wire.h"

namespace sluice {
namespace {

// A bounds-checked cursor over a payload. Every read first checks what is left;
// a failed read poisons the reader (ok_ stays false) so callers test once.
class Reader {
 public:
  explicit Reader(std::span<const std::uint8_t> data) : data_(data) {}

  bool ok() const { return ok_; }
  std::size_t left() const { return data_.size() - pos_; }
  bool at_end() const { return pos_ == data_.size(); }
  void fail() { ok_ = false; }

  std::uint8_t u8() { return take(1) ? data_[pos_ - 1] : 0; }
  std::uint16_t u16() { return take(2) ? wire::le16(&data_[pos_ - 2]) : 0; }
  std::uint32_t u32() { return take(4) ? wire::le32(&data_[pos_ - 4]) : 0; }
  void skip(std::size_t n) { take(n); }

  std::string bytes(std::size_t n) {
    if (!take(n)) return {};
    return std::string(reinterpret_cast<const char*>(&data_[pos_ - n]), n);
  }

  // A NUL-terminated string. With `until_end`, a missing NUL ends the string at
  // the end of the packet instead of failing (servers accept both for trailing
  // fields).
  std::string cstring(bool until_end) {
    if (!ok_) return {};
    const auto* begin = data_.data() + pos_;
    const auto* end = data_.data() + data_.size();
    const auto* nul = std::find(begin, end, std::uint8_t{0});
    if (nul == end && !until_end) {
      ok_ = false;
      return {};
    }
    std::string out(reinterpret_cast<const char*>(begin), static_cast<std::size_t>(nul - begin));
    pos_ = static_cast<std::size_t>(nul - data_.data()) + (nul == end ? 0 : 1);
    return out;
  }

  std::uint64_t lenenc() {
    if (!ok_) return 0;
    const auto value = wire::read_lenenc(data_, &pos_);
    if (!value) ok_ = false;
    return value.value_or(0);
  }

 private:
  bool take(std::size_t n) {
    if (!ok_ || left() < n) {
      ok_ = false;
      return false;
    }
    pos_ += n;
    return true;
  }

  std::span<const std::uint8_t> data_;
  std::size_t pos_ = 0;
  bool ok_ = true;
};

constexpr std::uint8_t kProtocolV10 = 10;
constexpr std::size_t kScramblePart1 = 8;
constexpr std::size_t kGreetingReserved = 10;  // MariaDB: 6 filler + 4 extended caps
constexpr std::size_t kHelloFiller = 23;       // MariaDB: 19 filler + 4 extended caps
constexpr std::size_t kExtCapsSize = 4;
constexpr std::size_t kSslRequestSize = 4 + 4 + 1 + kHelloFiller;

// The optional tail of a greeting (after the lower capability bytes).
void parse_greeting_tail(Reader& r, ServerGreeting& g) {
  g.charset = r.u8();
  g.status = r.u16();
  g.capabilities |= static_cast<std::uint64_t>(r.u16()) << 16;
  const std::uint8_t auth_data_len = r.u8();
  r.skip(kGreetingReserved - kExtCapsSize);
  const std::uint32_t ext_caps = r.u32();
  if (!(g.capabilities & wire::kClientMysql)) {
    g.capabilities |= static_cast<std::uint64_t>(ext_caps) << 32;
  }
  if (!r.ok() || !(g.capabilities & wire::kClientSecureConnection)) return;
  // Scramble part 2: max(13, auth_data_len - 8) bytes, the last one a NUL.
  const std::size_t part2 = std::max<std::size_t>(13, auth_data_len > 8 ? auth_data_len - 8 : 0);
  r.skip(part2);
  if (g.capabilities & wire::kClientPluginAuth) g.auth_plugin = r.cstring(/*until_end=*/true);
}

// The auth response of a HandshakeResponse41; its encoding depends on the caps.
void skip_auth_response(Reader& r, std::uint64_t caps) {
  if (caps & wire::kClientPluginAuthLenencData) {
    const std::uint64_t n = r.lenenc();
    if (n > r.left()) {  // longer than the packet
      r.fail();
      return;
    }
    r.skip(static_cast<std::size_t>(n));
  } else if (caps & wire::kClientSecureConnection) {
    r.skip(r.u8());
  } else {
    r.cstring(/*until_end=*/false);
  }
}

}  // namespace

std::optional<ServerGreeting> parse_server_greeting(std::span<const std::uint8_t> payload) {
  Reader r(payload);
  ServerGreeting g;
  g.protocol = r.u8();
  if (!r.ok() || g.protocol != kProtocolV10) return std::nullopt;
  g.version = r.cstring(/*until_end=*/false);
  g.connection_id = r.u32();
  r.skip(kScramblePart1 + 1);  // scramble part 1 and its filler
  g.capabilities = r.u16();
  if (!r.ok()) return std::nullopt;
  // Servers older than 4.1 may stop here; everything after is optional.
  if (!r.at_end()) parse_greeting_tail(r, g);
  if (!r.ok()) return std::nullopt;
  return g;
}

std::optional<ClientHello> parse_client_hello(std::span<const std::uint8_t> payload) {
  Reader r(payload);
  ClientHello h;
  h.capabilities = r.u32();
  h.max_packet = r.u32();
  h.charset = r.u8();
  r.skip(kHelloFiller - kExtCapsSize);
  const std::uint32_t ext_caps = r.u32();
  if (!r.ok() || !(h.capabilities & wire::kClientProtocol41)) return std::nullopt;
  if (!(h.capabilities & wire::kClientMysql)) {
    h.capabilities |= static_cast<std::uint64_t>(ext_caps) << 32;
  }
  if (payload.size() == kSslRequestSize) {
    if (!(h.capabilities & wire::kClientSsl)) return std::nullopt;
    h.ssl_request = true;
    return h;
  }
  h.user = r.cstring(/*until_end=*/false);
  skip_auth_response(r, h.capabilities);
  if (!r.ok()) return std::nullopt;
  if (h.capabilities & wire::kClientConnectWithDb) h.database = r.cstring(/*until_end=*/true);
  if (h.capabilities & wire::kClientPluginAuth) h.auth_plugin = r.cstring(/*until_end=*/true);
  if (!r.ok()) return std::nullopt;
  return h;
}

AuthReply classify_auth_reply(std::span<const std::uint8_t> payload) {
  if (payload.empty()) return AuthReply::kUnknown;
  switch (payload[0]) {
    case wire::kOkHeader:
      return AuthReply::kOk;
    case wire::kErrHeader:
      return AuthReply::kErr;
    case wire::kAuthSwitchHeader:
      return AuthReply::kSwitch;
    case wire::kAuthMoreDataHeader:
      return AuthReply::kMoreData;
    default:
      return AuthReply::kUnknown;
  }
}

std::optional<ErrPacket> parse_err_packet(std::span<const std::uint8_t> payload) {
  constexpr std::size_t kSqlStateSize = 5;
  Reader r(payload);
  if (r.u8() != wire::kErrHeader) return std::nullopt;
  ErrPacket e;
  e.code = r.u16();
  if (!r.ok()) return std::nullopt;
  if (r.left() >= 1 + kSqlStateSize && payload[3] == '#') {
    r.skip(1);
    e.sqlstate = r.bytes(kSqlStateSize);
  }
  e.message = r.bytes(r.left());
  return e;
}

}  // namespace sluice
