// Encodes the MySQL ERR packets sluice sends, with the configured code, SQLSTATE and message.
#include "common/err_packet.h"

#include <algorithm>

#include "common/units.h"
#include "common/wire.h"

namespace sluice {
namespace {

constexpr std::size_t kMaxMessage = 512;

std::string placeholder_value(std::string_view name, const ErrContext& ctx) {
  if (name == "size") return std::to_string(ctx.size);
  if (name == "limit") return std::to_string(ctx.limit);
  if (name == "timeout") return format_duration(ctx.timeout);
  if (name == "listener") return std::string(ctx.listener);
  return {};
}

}  // namespace

std::string expand_error_message(std::string_view message, const ErrContext& ctx) {
  std::string out;
  out.reserve(message.size() + 16);
  std::size_t i = 0;
  while (i < message.size()) {
    const std::size_t open = message.find('{', i);
    if (open == std::string_view::npos) break;
    const std::size_t close = message.find('}', open);
    if (close == std::string_view::npos) break;
    const std::string_view name = message.substr(open + 1, close - open - 1);
    std::string value = placeholder_value(name, ctx);
    out.append(message.substr(i, open - i));
    if (value.empty() && name != "listener") {
      out.append(message.substr(open, close - open + 1));  // not a placeholder: keep it
    } else {
      out.append(value);
    }
    i = close + 1;
  }
  out.append(message.substr(i));
  return out;
}

std::vector<std::uint8_t> encode_err_packet(const ErrorSpec& spec, std::uint8_t seq,
                                            const ErrContext& ctx) {
  std::string message = expand_error_message(spec.message, ctx);
  if (message.size() > kMaxMessage) message.resize(kMaxMessage);
  std::string state = spec.sqlstate;
  state.resize(5, '0');
  const std::size_t payload = 1 + 2 + 1 + 5 + message.size();
  std::vector<std::uint8_t> out(wire::kHeaderSize + payload);
  wire::put_le24(out.data(), static_cast<std::uint32_t>(payload));
  out[3] = seq;
  out[4] = wire::kErrHeader;
  wire::put_le16(&out[5], spec.code);
  out[7] = '#';
  std::copy(state.begin(), state.end(), out.begin() + 8);
  std::copy(message.begin(), message.end(), out.begin() + 13);
  return out;
}

}  // namespace sluice
