// CompressedFramer: outer frames, inflated inner packets, splits, stored frames, corrupt data.
#include <doctest/doctest.h>

#include <zlib.h>

#include <random>
#include <vector>

#include "common/compressed_framer.h"

namespace sluice {
namespace {

using Bytes = std::vector<std::uint8_t>;

Bytes inner_packet(std::uint32_t len, std::uint8_t seq, std::uint8_t first) {
  Bytes p{static_cast<std::uint8_t>(len), static_cast<std::uint8_t>(len >> 8),
          static_cast<std::uint8_t>(len >> 16), seq};
  for (std::uint32_t i = 0; i < len; ++i) p.push_back(static_cast<std::uint8_t>(first + i));
  return p;
}

// One compressed-protocol frame around `inner` (deflated unless `stored`).
Bytes outer_frame(const Bytes& inner, std::uint8_t seq, bool stored) {
  Bytes body = inner;
  std::uint32_t uncomp = 0;
  if (!stored) {
    uLongf n = compressBound(inner.size());
    body.resize(n);
    REQUIRE(compress(body.data(), &n, inner.data(), inner.size()) == Z_OK);
    body.resize(n);
    uncomp = static_cast<std::uint32_t>(inner.size());
  }
  const auto len = static_cast<std::uint32_t>(body.size());
  Bytes f{static_cast<std::uint8_t>(len),         static_cast<std::uint8_t>(len >> 8),
          static_cast<std::uint8_t>(len >> 16),   seq,
          static_cast<std::uint8_t>(uncomp),      static_cast<std::uint8_t>(uncomp >> 8),
          static_cast<std::uint8_t>(uncomp >> 16)};
  f.insert(f.end(), body.begin(), body.end());
  return f;
}

struct Walk {
  std::vector<std::uint64_t> inner_lengths;
  std::vector<std::uint8_t> inner_first_bytes;
  std::vector<std::size_t> outer_ends;  // stream offsets
  std::vector<bool> boundary_at_end;
  bool error = false;
  bool stuck = false;  // no progress: the walk gave up
};

// Feeds s[pos, pos + chunk) to `f` until it needs more input and has
// nothing pending, recording into `w`. False on an error or no progress.
bool feed_chunk(CompressedFramer& f, const Bytes& s, std::size_t& pos, std::size_t chunk, Walk& w) {
  const std::size_t end = pos + std::min(chunk, s.size() - pos);
  for (std::size_t calls = 0;; ++calls) {
    if (calls > 8 * chunk + 1000) {
      w.stuck = true;
      return false;
    }
    const auto ev = f.next(s.data() + pos, end - pos);
    pos += ev.consumed;
    using K = CompressedFramer::Event::Kind;
    if (ev.kind == K::kError) {
      w.error = true;
      return false;
    }
    if (ev.kind == K::kOuterEnd) {
      w.outer_ends.push_back(pos);
      w.boundary_at_end.push_back(f.inner_at_boundary());
    }
    if (ev.kind == K::kInner && ev.inner.kind == FrameEvent::Kind::kPacketEnd) {
      w.inner_lengths.push_back(ev.inner.logical_length);
      w.inner_first_bytes.push_back(f.prefix_length() > 0 ? f.prefix()[0] : 0);
    }
    if (ev.kind == K::kNeedMore && pos == end && !f.has_pending()) return true;
  }
}

Walk walk(const Bytes& s, std::size_t chunk) {
  Walk w;
  CompressedFramer::Workspace workspace;
  CompressedFramer f(workspace);
  std::size_t pos = 0;
  while (feed_chunk(f, s, pos, chunk, w) && pos < s.size()) {
  }
  return w;
}

TEST_CASE("compressed framer: inner packets inside deflated and stored frames, any split") {
  Bytes a = inner_packet(10, 0, 0x03);
  const Bytes b = inner_packet(40000, 1, 0x41);  // spans two frames below
  Bytes stream;
  Bytes first = a;
  first.insert(first.end(), b.begin(), b.begin() + 20000);
  const Bytes second(b.begin() + 20000, b.end());
  const Bytes third = inner_packet(7, 2, 0xFE);
  const Bytes f1 = outer_frame(first, 0, false);
  const Bytes f2 = outer_frame(second, 1, false);
  const Bytes f3 = outer_frame(third, 2, true);
  stream.insert(stream.end(), f1.begin(), f1.end());
  stream.insert(stream.end(), f2.begin(), f2.end());
  stream.insert(stream.end(), f3.begin(), f3.end());
  for (const std::size_t chunk :
       {std::size_t{1}, std::size_t{3}, std::size_t{7}, std::size_t{1000}, stream.size()}) {
    const Walk w = walk(stream, chunk);
    CAPTURE(chunk);
    CHECK_FALSE(w.error);
    CHECK(w.inner_lengths == std::vector<std::uint64_t>{10, 40000, 7});
    CHECK(w.inner_first_bytes == std::vector<std::uint8_t>{0x03, 0x41, 0xFE});
    CHECK(w.outer_ends ==
          std::vector<std::size_t>{f1.size(), f1.size() + f2.size(), stream.size()});
    // The first frame ends mid-packet: it must not be forwarded alone.
    CHECK(w.boundary_at_end == std::vector<bool>{false, true, true});
  }
}

TEST_CASE("compressed framer: an empty inner packet ends where its frame ends") {
  // LOAD DATA LOCAL ends its data with an empty packet, and a packet of
  // exactly 0xFFFFFF bytes ends with an empty frame: the frame holding it is
  // between packets once read, or a client's last frame would be held for good.
  const Bytes end = inner_packet(0, 3, 0);
  Bytes both = inner_packet(5, 2, 0x61);
  both.insert(both.end(), end.begin(), end.end());
  for (const bool stored : {true, false}) {
    CAPTURE(stored);
    for (const Bytes* inner : std::initializer_list<const Bytes*>{&end, &both}) {
      const Bytes f = outer_frame(*inner, 2, stored);
      for (const std::size_t chunk : {std::size_t{1}, std::size_t{7}, f.size()}) {
        CAPTURE(chunk);
        const Walk w = walk(f, chunk);
        CHECK_FALSE(w.error);
        CHECK(w.outer_ends == std::vector<std::size_t>{f.size()});
        CHECK(w.boundary_at_end == std::vector<bool>{true});
        CHECK(w.inner_lengths ==
              (inner == &end ? std::vector<std::uint64_t>{0} : std::vector<std::uint64_t>{5, 0}));
      }
    }
    // 0xFFFFFF bytes: a full frame and an empty one, in two outer frames (an
    // outer frame holds at most 0xFFFFFF bytes), the second ending with the
    // empty frame's header.
    Bytes full = inner_packet(0xFFFFFF, 0, 0x03);
    full.insert(full.end(), end.begin(), end.end());
    const std::size_t split = full.size() - 10;
    Bytes stream = outer_frame(Bytes(full.begin(), full.begin() + split), 0, stored);
    const Bytes last = outer_frame(Bytes(full.begin() + split, full.end()), 1, stored);
    stream.insert(stream.end(), last.begin(), last.end());
    const Walk w = walk(stream, 1 << 16);
    CHECK_FALSE(w.error);
    CHECK(w.boundary_at_end == std::vector<bool>{false, true});
    CHECK(w.inner_lengths == std::vector<std::uint64_t>{0xFFFFFF});
  }
}

TEST_CASE("compressed framer: a large inner packet is seen from its header before it is inflated") {
  const Bytes big = inner_packet(1 << 20, 0, 0x03);
  const Bytes f = outer_frame(big, 0, false);
  CompressedFramer::Workspace workspace;
  CompressedFramer fr(workspace);
  std::size_t pos = 0;
  std::uint64_t announced = 0;
  std::size_t consumed_at_header = 0;
  while (pos < f.size() && announced == 0) {
    const auto ev = fr.next(f.data() + pos, std::min<std::size_t>(512, f.size() - pos));
    pos += ev.consumed;
    if (ev.kind == CompressedFramer::Event::Kind::kInner &&
        ev.inner.kind == FrameEvent::Kind::kHeader) {
      announced = ev.inner.logical_length;
      consumed_at_header = pos;
    }
  }
  CHECK(announced == 1 << 20);
  CHECK(consumed_at_header < f.size());
}

TEST_CASE(
    "compressed framer: framers sharing a workspace, walked in turn, see what each sees alone") {
  // A worker's sessions share one: frames inflating to several scratches'
  // worth, stored and deflated, fed in turns of different sizes.
  Bytes a_inner;
  Bytes b_inner;
  for (std::uint8_t i = 0; i < 6; ++i) {
    const Bytes pa = inner_packet(5000u + i, 0, static_cast<std::uint8_t>(0x10 + i));
    const Bytes pb = inner_packet(7000u - i, 0, static_cast<std::uint8_t>(0x40 + i));
    a_inner.insert(a_inner.end(), pa.begin(), pa.end());
    b_inner.insert(b_inner.end(), pb.begin(), pb.end());
  }
  Bytes a = outer_frame(a_inner, 0, false);
  const Bytes a2 = outer_frame(a_inner, 1, true);
  a.insert(a.end(), a2.begin(), a2.end());
  Bytes b = outer_frame(b_inner, 0, true);
  const Bytes b2 = outer_frame(b_inner, 1, false);
  b.insert(b.end(), b2.begin(), b2.end());
  const Walk alone_a = walk(a, 333);
  const Walk alone_b = walk(b, 517);
  REQUIRE(alone_a.inner_lengths.size() == 12);
  REQUIRE(alone_b.inner_lengths.size() == 12);

  CompressedFramer::Workspace workspace;
  CompressedFramer fa(workspace);
  CompressedFramer fb(workspace);
  Walk wa;
  Walk wb;
  std::size_t pa = 0;
  std::size_t pb = 0;
  while (pa < a.size() || pb < b.size()) {
    if (pa < a.size()) REQUIRE(feed_chunk(fa, a, pa, 333, wa));
    if (pb < b.size()) REQUIRE(feed_chunk(fb, b, pb, 517, wb));
  }
  for (const auto& [shared, alone] : {std::pair{&wa, &alone_a}, std::pair{&wb, &alone_b}}) {
    CHECK(shared->inner_lengths == alone->inner_lengths);
    CHECK(shared->inner_first_bytes == alone->inner_first_bytes);
    CHECK(shared->outer_ends == alone->outer_ends);
  }
}

TEST_CASE("compressed framer: bytes after a frame's deflate stream has ended are skipped") {
  // As mysqld's uncompress() does. inflate() takes none of them, so asking
  // it again made no progress, forever.
  const Bytes inner = inner_packet(40, 0, 3);
  Bytes f = outer_frame(inner, 0, false);
  const Bytes trailing{'e', 'x', 't', 'r', 'a'};
  f.insert(f.end(), trailing.begin(), trailing.end());
  const std::uint32_t len = static_cast<std::uint32_t>(f.size() - 7);
  f[0] = static_cast<std::uint8_t>(len);
  f[1] = static_cast<std::uint8_t>(len >> 8);
  const Bytes next = outer_frame(inner_packet(2, 0, 9), 1, true);
  Bytes s = f;
  s.insert(s.end(), next.begin(), next.end());
  for (std::size_t chunk : {std::size_t{1}, std::size_t{3}, std::size_t{7}, s.size()}) {
    CAPTURE(chunk);
    const Walk w = walk(s, chunk);
    REQUIRE(!w.stuck);
    CHECK(!w.error);
    CHECK(w.inner_lengths == std::vector<std::uint64_t>{40, 2});
    CHECK(w.outer_ends == std::vector<std::size_t>{f.size(), s.size()});
  }
  // Fewer bytes inflated than the header declared: the stream's own output
  // counts, as for uncompress(). More is an error, and so is a stream cut
  // short or a deflated frame of no bytes.
  Bytes shorter = f;
  shorter[4] = static_cast<std::uint8_t>(inner.size() + 1);
  Walk w = walk(shorter, 4);
  CHECK(!w.stuck);
  CHECK(!w.error);
  CHECK(w.inner_lengths == std::vector<std::uint64_t>{40});
  Bytes longer = f;
  longer[4] = static_cast<std::uint8_t>(inner.size() - 1);
  CHECK(walk(longer, 4).error);
  Bytes cut = outer_frame(inner, 0, false);
  cut.resize(cut.size() - 2);  // the adler-32 trailer's last bytes
  cut[0] = static_cast<std::uint8_t>(cut.size() - 7);
  w = walk(cut, 5);
  CHECK(!w.stuck);
  CHECK(w.error);
  const Bytes empty{0, 0, 0, 0, 4, 0, 0};
  CHECK(walk(empty, 7).error);
}

TEST_CASE("compressed framer: corrupt deflate data is an error, not a crash") {
  Bytes f = outer_frame(inner_packet(100, 0, 1), 0, false);
  for (std::size_t i = 7; i < f.size(); ++i) f[i] ^= 0x5A;
  CHECK(walk(f, 16).error);
  std::mt19937 rng(3);
  for (int round = 0; round < 200; ++round) {
    Bytes noise(1 + rng() % 2000);
    for (auto& b : noise) b = static_cast<std::uint8_t>(rng());
    (void)walk(noise, 1 + rng() % 64);  // must terminate without tripping sanitizers
  }
}

}  // namespace
}  // namespace sluice
