// Fuzzes TlsRecordWalker: any split of a stream gives the whole stream's count and verdict.
#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <span>

#include "common/tls_records.h"

namespace {

void require(bool ok) {
  if (!ok) std::abort();
}

}  // namespace

// The first two bytes pick the split points (a chunk-size pattern); the rest
// is the stream.
extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  if (size < 2) return 0;
  const std::uint8_t a = data[0] % 16 + 1;
  const std::uint8_t b = data[1];
  const std::span<const std::uint8_t> stream(data + 2, size - 2);

  sluice::TlsRecordWalker whole;
  const std::size_t expected = whole.feed(stream);

  sluice::TlsRecordWalker split;
  std::size_t got = 0;
  std::size_t pos = 0;
  for (std::size_t i = 0; pos < stream.size(); ++i) {
    const std::size_t n = std::min<std::size_t>(i % 2 == 0 ? a : b + 1, stream.size() - pos);
    got += split.feed(stream.subspan(pos, n));
    pos += n;
  }
  require(got == expected);
  require(split.malformed() == whole.malformed());
  // At most one record starts per five bytes.
  require(expected <= stream.size() / 5);
  return 0;
}
