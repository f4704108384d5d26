// Fuzzes the ResponseTracker with arbitrary packet sequences and checks its invariants.
#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <span>
#include <vector>

#include "common/response_tracker.h"

namespace {

using sluice::ResponseTracker;
using Step = ResponseTracker::Step;

void require(bool ok) {
  if (!ok) std::abort();
}

// The invariants that hold between any two calls.
void check_state(const ResponseTracker& t) {
  require(t.outstanding() <= ResponseTracker::kMaxOutstanding);
  if (t.idle()) require(!t.lost() && t.outstanding() == 0 && !t.awaiting_client());
  if (t.lost()) require(!t.idle() && !t.awaiting_client());
  if (t.awaiting_client()) require(t.outstanding() > 0);
}

}  // namespace

// Input: 8 bytes of capabilities, then records of [op][length][bytes...]:
//   op & 3: 0 command, 1 other client packet, 2 and 3 server packet;
//   op & 4: the logical packet is longer than the bytes given (a prefix);
//   op & 8: the prefix is 0xFE-filled up to 64 bytes (big rows and OKs).
extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  if (size < 8) return 0;
  std::uint64_t caps = 0;
  for (int i = 0; i < 8; ++i) caps |= static_cast<std::uint64_t>(data[i]) << (8 * i);
  ResponseTracker t;
  t.set_capabilities(caps);
  std::size_t pos = 8;
  bool was_lost = false;
  while (size - pos >= 2) {
    const std::uint8_t op = data[pos];
    const std::size_t length = std::min<std::size_t>(data[pos + 1], size - pos - 2);
    std::vector<std::uint8_t> bytes(data + pos + 2, data + pos + 2 + length);  // exact size
    pos += 2 + length;
    if (op & 8) bytes.resize(std::max<std::size_t>(bytes.size(), 64), 0xFE);
    const std::uint64_t total = bytes.size() + (op & 4 ? 0xFFFFFFull - 8 + op : 0);

    const std::size_t before = t.outstanding();
    Step step;
    switch (op & 3) {
      case 0:
        step = t.on_command(bytes, total);
        break;
      case 1:
        step = t.on_client_packet(bytes, total);
        require(step != Step::kComplete);
        break;
      default:
        step = t.on_server_packet(bytes, total);
        break;
    }
    check_state(t);
    if (was_lost) require(step == Step::kContinue && t.lost());
    if (step == Step::kUnexpected) require(t.lost() && !was_lost);
    if (step == Step::kComplete && (op & 3) >= 2) require(t.outstanding() + 1 == before);
    if (step == Step::kComplete && (op & 3) == 0) require(t.outstanding() == before);
    was_lost = t.lost();
  }
  return 0;
}
