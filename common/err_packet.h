// Encodes the MySQL ERR packets sluice sends, with the configured code, SQLSTATE and message.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "common/config.h"

namespace sluice {

// Values for the message placeholders {size} {limit} {timeout} {listener}.
struct ErrContext {
  std::uint64_t size = 0;
  std::uint64_t limit = 0;
  Millis timeout{0};
  std::string_view listener;
};

// Replaces the placeholders; unknown `{...}` text is left as written.
std::string expand_error_message(std::string_view message, const ErrContext& ctx);

// A whole ERR packet (4-byte header with `seq`, then 0xFF, code, '#', SQLSTATE,
// message). The message is capped at 512 bytes, as mysqld caps its own.
std::vector<std::uint8_t> encode_err_packet(const ErrorSpec& spec, std::uint8_t seq,
                                            const ErrContext& ctx);

}  // namespace sluice
