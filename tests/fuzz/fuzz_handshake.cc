// Fuzzes the connection-phase parsers with arbitrary payloads: no crash, no read past the span.
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <span>
#include <vector>

#include "common/handshake.h"

namespace {

void require(bool ok) {
  if (!ok) std::abort();
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  // An exact-size heap copy, so ASan flags any read past the payload.
  const std::vector<std::uint8_t> copy(data, data + size);
  const std::span<const std::uint8_t> payload(copy);

  if (const auto g = sluice::parse_server_greeting(payload)) {
    require(g->protocol == 10);
    require(g->version.size() + g->auth_plugin.size() < size);
  }
  if (const auto h = sluice::parse_client_hello(payload)) {
    require(size >= 32);
    require(h->user.size() + h->database.size() + h->auth_plugin.size() <= size - 32);
    require(!h->ssl_request || h->user.empty());
  }
  if (const auto e = sluice::parse_err_packet(payload)) {
    require(size >= 3 && payload[0] == 0xFF);
    require(e->sqlstate.empty() || e->sqlstate.size() == 5);
    require(e->message.size() + e->sqlstate.size() <= size - 3);
  }
  const auto reply = sluice::classify_auth_reply(payload);
  require(size > 0 || reply == sluice::AuthReply::kUnknown);
  return 0;
}
