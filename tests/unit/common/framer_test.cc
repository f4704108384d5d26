// Framer: packet boundaries over every split of a stream, continuation frames, garbage.
#include <doctest/doctest.h>

#include <cstdint>
#include <random>
#include <vector>

#include "common/framer.h"

namespace sluice {
namespace {

struct Seen {
  std::vector<std::uint32_t> frame_lengths;
  std::vector<std::uint8_t> seqs;
  std::vector<std::uint64_t> packet_lengths;
  std::vector<std::size_t> packet_ends;  // stream offsets just past each logical packet
};

void append_frame(std::vector<std::uint8_t>& s, std::uint32_t len, std::uint8_t seq,
                  std::uint8_t fill = 0xAB) {
  s.push_back(static_cast<std::uint8_t>(len));
  s.push_back(static_cast<std::uint8_t>(len >> 8));
  s.push_back(static_cast<std::uint8_t>(len >> 16));
  s.push_back(seq);
  s.insert(s.end(), len, fill);
}

// Feeds `stream` in chunks whose sizes come from `cuts` (offsets where a read ends),
// through next() or (whole_steps) next_packet(), whose kPacket counts as both events.
Seen feed(const std::vector<std::uint8_t>& stream, const std::vector<std::size_t>& cuts,
          bool whole_steps = false) {
  Seen seen;
  Framer f;
  std::size_t begin = 0;
  std::vector<std::size_t> ends = cuts;
  ends.push_back(stream.size());
  for (const std::size_t end : ends) {
    std::size_t pos = begin;
    for (;;) {
      const FrameEvent ev = whole_steps ? f.next_packet(stream.data() + pos, end - pos)
                                        : f.next(stream.data() + pos, end - pos);
      pos += ev.consumed;
      REQUIRE(pos <= end);
      if (ev.kind == FrameEvent::Kind::kPacket) {
        CHECK(ev.first_frame);
        CHECK(ev.logical_length == ev.frame_length);
        CHECK(f.at_boundary());
        seen.frame_lengths.push_back(ev.frame_length);
        seen.seqs.push_back(ev.seq);
        seen.packet_lengths.push_back(ev.logical_length);
        seen.packet_ends.push_back(pos);
      } else if (ev.kind == FrameEvent::Kind::kHeader) {
        seen.frame_lengths.push_back(ev.frame_length);
        seen.seqs.push_back(ev.seq);
      } else if (ev.kind == FrameEvent::Kind::kPacketEnd) {
        seen.packet_lengths.push_back(ev.logical_length);
        seen.packet_ends.push_back(pos);
      } else if (pos == end) {
        break;
      }
    }
    begin = end;
  }
  return seen;
}

TEST_CASE("framer: every single split point of a multi-packet stream gives the same packets") {
  std::vector<std::uint8_t> s;
  append_frame(s, 5, 0);
  append_frame(s, 0, 1);  // an empty packet
  append_frame(s, 1, 2);
  append_frame(s, 300, 3);
  const Seen whole = feed(s, {});
  REQUIRE(whole.packet_lengths == std::vector<std::uint64_t>{5, 0, 1, 300});
  CHECK(whole.seqs == std::vector<std::uint8_t>{0, 1, 2, 3});
  CHECK(whole.packet_ends == std::vector<std::size_t>{9, 13, 18, 322});
  for (std::size_t cut = 1; cut < s.size(); ++cut) {
    const Seen split = feed(s, {cut});
    CHECK(split.packet_lengths == whole.packet_lengths);
    CHECK(split.packet_ends == whole.packet_ends);
    CHECK(split.seqs == whole.seqs);
  }
}

TEST_CASE("framer: byte-by-byte and random splits") {
  std::vector<std::uint8_t> s;
  for (int i = 0; i < 50; ++i) append_frame(s, static_cast<std::uint32_t>(i * 7 % 40), i & 0xFF);
  const Seen whole = feed(s, {});
  std::vector<std::size_t> every;
  for (std::size_t i = 1; i < s.size(); ++i) every.push_back(i);
  CHECK(feed(s, every).packet_ends == whole.packet_ends);
  std::mt19937 rng(42);
  for (int round = 0; round < 200; ++round) {
    std::vector<std::size_t> cuts;
    std::size_t at = 0;
    while (true) {
      at += 1 + rng() % 30;
      if (at >= s.size()) break;
      cuts.push_back(at);
    }
    CHECK(feed(s, cuts).packet_ends == whole.packet_ends);
  }
}

TEST_CASE("framer: next_packet's whole-packet steps give what next's events give, in any split") {
  std::vector<std::uint8_t> s;
  for (int i = 0; i < 40; ++i) append_frame(s, static_cast<std::uint32_t>(i * 13 % 70), i & 0xFF);
  append_frame(s, wire::kMaxFrame, 40, 0x01);  // a two-frame packet: never one kPacket
  append_frame(s, 3, 41);
  append_frame(s, 9, 0);
  const auto same = [](const Seen& a, const Seen& b) {
    CHECK(a.frame_lengths == b.frame_lengths);
    CHECK(a.seqs == b.seqs);
    CHECK(a.packet_lengths == b.packet_lengths);
    CHECK(a.packet_ends == b.packet_ends);
  };
  const Seen reference = feed(s, {});
  REQUIRE(reference.packet_lengths.size() == 42);
  same(feed(s, {}, true), reference);
  std::mt19937 rng(7);
  for (int round = 0; round < 100; ++round) {
    std::vector<std::size_t> cuts;
    std::size_t at = 0;
    while (true) {
      at += 1 + rng() % (round % 2 == 0 ? 40 : 4000);
      if (at >= s.size()) break;
      cuts.push_back(at);
    }
    same(feed(s, cuts, true), reference);
  }
}

TEST_CASE("framer: next_packet waits for a packet's last byte") {
  std::vector<std::uint8_t> s;
  append_frame(s, 10, 0);
  Framer f;
  const FrameEvent partial = f.next_packet(s.data(), s.size() - 1);
  CHECK(partial.kind == FrameEvent::Kind::kHeader);  // next()'s step: the header only
  CHECK(partial.consumed == wire::kHeaderSize);
  Framer g;
  const FrameEvent full = g.next_packet(s.data(), s.size());
  CHECK(full.kind == FrameEvent::Kind::kPacket);
  CHECK(full.consumed == s.size());
  CHECK(full.seq == 0);
}

TEST_CASE("framer: exactly 0xFFFFFF payload is continued by an empty trailer frame") {
  std::vector<std::uint8_t> s;
  append_frame(s, 0xFFFFFF, 0);
  append_frame(s, 0, 1);  // the trailer ends the logical packet
  append_frame(s, 3, 2);  // the next packet
  const Seen seen = feed(s, {4, 0xFFFFFF + 4, 0xFFFFFF + 6});
  REQUIRE(seen.packet_lengths.size() == 2);
  CHECK(seen.packet_lengths[0] == 0xFFFFFF);
  CHECK(seen.packet_ends[0] == 0xFFFFFF + 8);
  CHECK(seen.packet_lengths[1] == 3);
  CHECK(seen.frame_lengths == std::vector<std::uint32_t>{0xFFFFFF, 0, 3});
}

TEST_CASE("framer: a 40 MiB logical packet is three frames summed") {
  std::vector<std::uint8_t> s;
  const std::uint32_t last = 40 * 1024 * 1024 - 2 * 0xFFFFFF;
  append_frame(s, 0xFFFFFF, 5, 0);
  append_frame(s, 0xFFFFFF, 6, 0);
  append_frame(s, last, 7, 0);
  Framer f;
  std::size_t pos = 0;
  std::vector<std::uint64_t> logical_at_header;
  std::vector<bool> first;
  std::uint64_t total = 0;
  while (pos < s.size()) {
    const FrameEvent ev = f.next(s.data() + pos, std::min<std::size_t>(65536, s.size() - pos));
    pos += ev.consumed;
    if (ev.kind == FrameEvent::Kind::kHeader) {
      logical_at_header.push_back(ev.logical_length);
      first.push_back(ev.first_frame);
    }
    if (ev.kind == FrameEvent::Kind::kPacketEnd) total = ev.logical_length;
  }
  CHECK(total == 40ull * 1024 * 1024);
  CHECK(logical_at_header ==
        std::vector<std::uint64_t>{0xFFFFFF, 2ull * 0xFFFFFF, 40ull * 1024 * 1024});
  CHECK(first == std::vector<bool>{true, false, false});
  CHECK(f.at_boundary());
}

TEST_CASE("framer: state between packets and mid-packet") {
  Framer f;
  const std::uint8_t half_header[] = {10, 0};
  CHECK(f.at_boundary());
  FrameEvent ev = f.next(half_header, 2);
  CHECK(ev.kind == FrameEvent::Kind::kNeedMore);
  CHECK(f.header_have() == 2);
  CHECK_FALSE(f.at_boundary());
  const std::uint8_t rest[] = {0, 3, 1, 2, 3};
  ev = f.next(rest, sizeof rest);
  CHECK(ev.kind == FrameEvent::Kind::kHeader);
  CHECK(ev.frame_length == 10);
  CHECK(ev.seq == 3);
  ev = f.next(rest + ev.consumed, sizeof rest - 2);
  CHECK(f.payload_left() == 7);
  CHECK_FALSE(f.at_boundary());
}

TEST_CASE("framer: garbage never overruns and reports what the bytes claim") {
  // An HTTP request read as MySQL: "GET " announces a 5.5 MB frame with seq 0x20.
  const std::string http = "GET / HTTP/1.1\r\nHost: x\r\n\r\n";
  Framer f;
  const auto* d = reinterpret_cast<const std::uint8_t*>(http.data());
  const FrameEvent ev = f.next(d, http.size());
  CHECK(ev.kind == FrameEvent::Kind::kHeader);
  CHECK(ev.frame_length == 0x544547);
  CHECK(ev.seq == 0x20);
  std::mt19937 rng(7);
  for (int round = 0; round < 100; ++round) {
    std::vector<std::uint8_t> noise(1 + rng() % 4096);
    for (auto& b : noise) b = static_cast<std::uint8_t>(rng());
    Framer g;
    std::size_t pos = 0;
    int guard = 0;
    while (pos < noise.size() && ++guard < 100000) {
      const FrameEvent e = g.next(noise.data() + pos, noise.size() - pos);
      pos += e.consumed;
      REQUIRE(pos <= noise.size());
    }
    CHECK(pos == noise.size());
  }
}

}  // namespace
}  // namespace sluice
