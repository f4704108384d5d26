// TlsRecordWalker: record headers at every split, application data counted, non-TLS bytes refused.
#include <doctest/doctest.h>

#include <vector>

#include "common/tls_records.h"

namespace sluice {
namespace {

using Bytes = std::vector<std::uint8_t>;

void append_record(Bytes& out, std::uint8_t type, std::size_t length, std::uint8_t minor = 3) {
  out.insert(out.end(), {type, 3, minor, static_cast<std::uint8_t>(length >> 8),
                         static_cast<std::uint8_t>(length)});
  // The body may look like anything, headers included: it is skipped.
  for (std::size_t i = 0; i < length; ++i) out.push_back(i % 2 == 0 ? 23 : 3);
}

// A TLS 1.3 exchange's shape: ServerHello, ChangeCipherSpec, then encrypted
// records, which are all application_data on the wire.
Bytes server_flight() {
  Bytes b;
  append_record(b, 22, 122);
  append_record(b, 20, 1);
  append_record(b, 23, 4000);
  append_record(b, 23, 0);
  append_record(b, 23, 16384 + 256);
  append_record(b, 21, 2);
  return b;
}

}  // namespace

TEST_CASE("tls records: application_data records are counted at every split of the stream") {
  const Bytes stream = server_flight();
  {
    TlsRecordWalker whole;
    CHECK(whole.feed(stream) == 3);
    CHECK_FALSE(whole.malformed());
  }
  for (std::size_t cut = 0; cut <= stream.size(); ++cut) {
    TlsRecordWalker w;
    const std::span<const std::uint8_t> all(stream);
    const std::size_t n = w.feed(all.first(cut)) + w.feed(all.subspan(cut));
    CHECK(n == 3);
    CHECK_FALSE(w.malformed());
  }
  TlsRecordWalker bytewise;
  std::size_t n = 0;
  for (std::uint8_t b : stream) n += bytewise.feed(std::span<const std::uint8_t>(&b, 1));
  CHECK(n == 3);
}

TEST_CASE("tls records: a record is counted when its header is whole, before its body") {
  Bytes b;
  append_record(b, 23, 100);
  TlsRecordWalker w;
  const std::span<const std::uint8_t> all(b);
  CHECK(w.feed(all.first(4)) == 0);
  CHECK(w.feed(all.subspan(4, 1)) == 1);
  CHECK(w.feed(all.subspan(5)) == 0);
}

TEST_CASE("tls records: bytes that are not TLS records stop the walk") {
  const auto walk = [](const Bytes& b) {
    TlsRecordWalker w;
    w.feed(b);
    return w.malformed();
  };
  CHECK(walk(Bytes{'G', 'E', 'T', ' ', '/'}));     // an HTTP request
  CHECK(walk(Bytes{19, 3, 3, 0, 1, 0}));           // content type below 20
  CHECK(walk(Bytes{25, 3, 3, 0, 1, 0}));           // above 24
  CHECK(walk(Bytes{23, 2, 0, 0, 1, 0}));           // SSL 2 version
  CHECK(walk(Bytes{23, 3, 3, 0x48, 0x01}));        // 18,433 bytes: beyond 2^14 + 2048
  CHECK_FALSE(walk(Bytes{23, 3, 3, 0x48, 0x00}));  // 18,432: the largest allowed
  CHECK_FALSE(walk(Bytes{22, 3, 1, 0, 0}));        // a TLS 1.0 record header
  TlsRecordWalker w;
  CHECK(w.feed(Bytes{0, 0, 0, 0, 0}) == 0);
  CHECK(w.malformed());
  Bytes later;
  append_record(later, 23, 1);
  CHECK(w.feed(later) == 0);  // stays stopped
}

}  // namespace sluice
