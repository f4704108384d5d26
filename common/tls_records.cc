// TLS record-header walker (see tls_records.h).
#include "common/tls_records.h"

#include <algorithm>

namespace sluice {
namespace {

constexpr std::uint8_t kChangeCipherSpec = 20;
constexpr std::uint8_t kHeartbeat = 24;
constexpr std::uint8_t kApplicationData = 23;
// TLSCiphertext may exceed the 2^14 plaintext limit by 2048 bytes (TLS 1.2;
// 1.3 allows 256).
constexpr std::size_t kMaxRecordBody = (1u << 14) + 2048;

}  // namespace

std::size_t TlsRecordWalker::feed(std::span<const std::uint8_t> bytes) {
  std::size_t application = 0;
  std::size_t i = 0;
  while (i < bytes.size() && !malformed_) {
    if (body_left_ > 0) {
      const std::size_t skip = std::min(body_left_, bytes.size() - i);
      body_left_ -= skip;
      i += skip;
      continue;
    }
    header_[have_++] = bytes[i++];
    if (have_ < header_.size()) continue;
    have_ = 0;
    const std::uint8_t type = header_[0];
    const std::size_t length = std::size_t{header_[3]} << 8 | header_[4];
    if (type < kChangeCipherSpec || type > kHeartbeat || header_[1] != 3 ||
        length > kMaxRecordBody) {
      malformed_ = true;
      break;
    }
    if (type == kApplicationData) ++application;
    body_left_ = length;
  }
  return application;
}

}  // namespace sluice
