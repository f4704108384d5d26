// MySQL classic-protocol constants and little-endian helpers shared by every codec.
#pragma once

#include <cstddef>
#include <cstdint>
#include <optional>
#include <span>

namespace sluice::wire {

inline constexpr std::size_t kHeaderSize = 4;
// A frame of exactly this payload length is continued by the next frame.
inline constexpr std::uint32_t kMaxFrame = 0xFFFFFF;

// Capability flags (CLIENT_*), as in the server greeting and client response.
inline constexpr std::uint32_t kClientMysql = 1u << 0;  // CLIENT_LONG_PASSWORD
inline constexpr std::uint32_t kClientConnectWithDb = 1u << 3;
inline constexpr std::uint32_t kClientCompress = 1u << 5;
inline constexpr std::uint32_t kClientLocalFiles = 1u << 7;
inline constexpr std::uint32_t kClientProtocol41 = 1u << 9;
inline constexpr std::uint32_t kClientSsl = 1u << 11;
inline constexpr std::uint32_t kClientSecureConnection = 1u << 15;
inline constexpr std::uint32_t kClientMultiStatements = 1u << 16;
inline constexpr std::uint32_t kClientMultiResults = 1u << 17;
inline constexpr std::uint32_t kClientPsMultiResults = 1u << 18;
inline constexpr std::uint32_t kClientPluginAuth = 1u << 19;
inline constexpr std::uint32_t kClientConnectAttrs = 1u << 20;
inline constexpr std::uint32_t kClientPluginAuthLenencData = 1u << 21;
inline constexpr std::uint32_t kClientSessionTrack = 1u << 23;
inline constexpr std::uint32_t kClientDeprecateEof = 1u << 24;
inline constexpr std::uint32_t kClientZstdCompression = 1u << 26;
inline constexpr std::uint32_t kClientTransactions = 1u << 13;
// MySQL 8: a "metadata follows" byte after the column count (and in COM_STMT_PREPARE_OK).
inline constexpr std::uint32_t kClientOptionalResultsetMetadata = 1u << 25;
// MariaDB's first progress-report bit; servers map it to kMariaDbClientProgress.
inline constexpr std::uint32_t kClientProgressObsolete = 1u << 29;
// MariaDB extended capabilities (the upper 32 bits of a 64-bit set).
// kMariaDbClientProgress: the server may send progress reports, ERR-shaped packets
// with code 0xFFFF that end nothing.
inline constexpr std::uint64_t kMariaDbClientProgress = 1ull << 32;
inline constexpr std::uint64_t kMariaDbClientCacheMetadata = 1ull << 36;

// Server status flags (OK / EOF packets).
inline constexpr std::uint16_t kServerMoreResultsExist = 0x0008;
inline constexpr std::uint16_t kServerStatusCursorExists = 0x0040;
inline constexpr std::uint16_t kServerStatusLastRowSent = 0x0080;

inline constexpr std::uint8_t kOkHeader = 0x00;
inline constexpr std::uint8_t kEofHeader = 0xFE;
inline constexpr std::uint8_t kErrHeader = 0xFF;
inline constexpr std::uint8_t kLocalInfileHeader = 0xFB;
// Authentication replies (handshake and COM_CHANGE_USER).
inline constexpr std::uint8_t kAuthMoreDataHeader = 0x01;
inline constexpr std::uint8_t kAuthSwitchHeader = 0xFE;

inline std::uint16_t le16(const std::uint8_t* p) {
  return static_cast<std::uint16_t>(p[0] | (p[1] << 8));
}
inline std::uint32_t le24(const std::uint8_t* p) {
  return static_cast<std::uint32_t>(p[0]) | (static_cast<std::uint32_t>(p[1]) << 8) |
         (static_cast<std::uint32_t>(p[2]) << 16);
}
inline std::uint32_t le32(const std::uint8_t* p) {
  return le24(p) | (static_cast<std::uint32_t>(p[3]) << 24);
}
inline void put_le16(std::uint8_t* p, std::uint16_t v) {
  p[0] = static_cast<std::uint8_t>(v);
  p[1] = static_cast<std::uint8_t>(v >> 8);
}
inline void put_le24(std::uint8_t* p, std::uint32_t v) {
  p[0] = static_cast<std::uint8_t>(v);
  p[1] = static_cast<std::uint8_t>(v >> 8);
  p[2] = static_cast<std::uint8_t>(v >> 16);
}

// Reads a length-encoded integer at *pos within `data`, advancing *pos.
// Returns nullopt when the bytes run out or the prefix is 0xFB/0xFF (NULL/ERR).
inline std::optional<std::uint64_t> read_lenenc(std::span<const std::uint8_t> data,
                                                std::size_t* pos) {
  if (*pos >= data.size()) return std::nullopt;
  const std::uint8_t first = data[*pos];
  std::size_t width = 0;
  if (first < 0xFB) {
    *pos += 1;
    return first;
  }
  if (first == 0xFC)
    width = 2;
  else if (first == 0xFD)
    width = 3;
  else if (first == 0xFE)
    width = 8;
  else
    return std::nullopt;
  if (data.size() - *pos < width + 1) return std::nullopt;
  std::uint64_t value = 0;
  for (std::size_t i = 0; i < width; ++i) {
    value |= static_cast<std::uint64_t>(data[*pos + 1 + i]) << (8 * i);
  }
  *pos += width + 1;
  return value;
}

}  // namespace sluice::wire
