// TLS record headers followed across read splits, without decrypting: how a pass-through session
// tells its TLS handshake is over.
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>
#include <span>

namespace sluice {

// Walks the 5-byte record headers of one direction of a TLS stream (RFC 5246
// §6.2, RFC 8446 §5.1: content type, legacy version, length) and skips each
// record's body. Pure and incremental: any split of the stream gives the same
// answers. Bytes that cannot be TLS records stop the walk for good.
class TlsRecordWalker {
 public:
  // Walks the stream's next bytes; returns how many application_data records
  // (content type 23) began in them.
  std::size_t feed(std::span<const std::uint8_t> bytes);
  // The stream is not TLS records (an unknown content type, a version other
  // than 3.x, a length beyond what TLS allows).
  bool malformed() const { return malformed_; }

 private:
  std::array<std::uint8_t, 5> header_{};
  std::uint8_t have_ = 0;  // header bytes gathered so far
  std::size_t body_left_ = 0;
  bool malformed_ = false;
};

}  // namespace sluice
