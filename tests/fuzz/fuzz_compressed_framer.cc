// Fuzzes the CompressedFramer, which inflates what clients and servers send: no crash or hang on
// any bytes, the same events in any split, and inside valid frames exactly the inner stream's.
#include <zlib.h>

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <vector>

#include "common/compressed_framer.h"
#include "common/framer.h"
#include "common/wire.h"

namespace {

using sluice::CompressedFramer;
using sluice::FrameEvent;
using Kind = CompressedFramer::Event::Kind;

void require(bool ok) {
  if (!ok) std::abort();
}

struct Event {
  Kind kind;
  std::uint32_t comp_length;
  std::uint32_t uncomp_length;
  std::uint8_t comp_seq;
  FrameEvent::Kind inner_kind;
  std::uint32_t inner_frame_length;
  std::uint8_t inner_seq;
  bool inner_first;
  std::uint64_t inner_logical;
  bool operator==(const Event&) const = default;
};

Event record(const CompressedFramer::Event& ev) {
  const FrameEvent& in = ev.inner;
  const bool inner = ev.kind == Kind::kInner;
  return {ev.kind,
          ev.comp_length,
          ev.uncomp_length,
          ev.comp_seq,
          inner ? in.kind : FrameEvent::Kind::kNeedMore,
          inner ? in.frame_length : 0,
          inner ? in.seq : std::uint8_t{0},
          inner && in.first_frame,
          inner ? in.logical_length : 0};
}

struct Run {
  std::vector<Event> events;
  bool error = false;
};

// Feeds [data, data+len) as Session::scan_compressed does: next() until it
// needs more input and has nothing pending. Stops at the first error.
void feed(CompressedFramer& framer, const std::uint8_t* data, std::size_t len, Run& run) {
  std::size_t pos = 0;
  for (int guard = 0;; ++guard) {
    require(guard < (1 << 22));  // every call makes progress or reports an event
    const CompressedFramer::Event ev = framer.next(data + pos, len - pos);
    require(ev.consumed <= len - pos);
    pos += ev.consumed;
    require(framer.header_have() < CompressedFramer::kOuterHeader);
    require(framer.prefix_length() <= CompressedFramer::kPrefix);
    if (ev.kind == Kind::kError) {
      run.error = true;
      return;
    }
    if (ev.kind == Kind::kNeedMore) {
      if (pos == len && !framer.has_pending()) return;
      continue;
    }
    run.events.push_back(record(ev));
  }
}

Run parse(const std::uint8_t* stream, std::size_t size, const std::uint8_t* cuts,
          std::size_t n_cuts) {
  static CompressedFramer::Workspace workspace;
  CompressedFramer framer(workspace);
  Run run;
  std::size_t consumed = 0;
  for (std::size_t cut = 0; consumed < size && !run.error; ++cut) {
    const std::size_t want = n_cuts ? std::max<std::size_t>(cuts[cut % n_cuts], 1) : size;
    const std::size_t n = std::min(want, size - consumed);
    feed(framer, stream + consumed, n, run);
    consumed += n;
  }
  if (!run.error) feed(framer, stream + consumed, 0, run);
  return run;
}

// Builds valid compressed frames around `inner` (the fuzzer's bytes, taken
// as the inner packet stream): each frame takes the next size byte's worth
// (times 64, at least 1), stored or deflated as its flag bit says.
std::vector<std::uint8_t> build_frames(const std::uint8_t* inner, std::size_t size,
                                       const std::uint8_t* sizes, std::size_t n_sizes) {
  std::vector<std::uint8_t> out;
  std::uint8_t seq = 0;
  for (std::size_t pos = 0, i = 0; pos < size; ++i) {
    const std::uint8_t s = n_sizes ? sizes[i % n_sizes] : 0xFF;
    const std::size_t n =
        std::min<std::size_t>(std::max<std::size_t>((s & 0x7F) * 64u, 1), size - pos);
    std::vector<std::uint8_t> payload;
    std::uint32_t uncomp = 0;
    if (s & 0x80) {
      uLongf bound = compressBound(static_cast<uLong>(n));
      payload.resize(bound);
      require(compress2(payload.data(), &bound, inner + pos, static_cast<uLong>(n), 6) == Z_OK);
      payload.resize(bound);
      uncomp = static_cast<std::uint32_t>(n);
    } else {
      payload.assign(inner + pos, inner + pos + n);
    }
    const std::uint32_t comp = static_cast<std::uint32_t>(payload.size());
    out.insert(out.end(),
               {static_cast<std::uint8_t>(comp), static_cast<std::uint8_t>(comp >> 8),
                static_cast<std::uint8_t>(comp >> 16), seq++, static_cast<std::uint8_t>(uncomp),
                static_cast<std::uint8_t>(uncomp >> 8), static_cast<std::uint8_t>(uncomp >> 16)});
    out.insert(out.end(), payload.begin(), payload.end());
    pos += n;
  }
  return out;
}

// The inner events a plain Framer gives for the inner stream.
std::vector<Event> inner_reference(const std::uint8_t* inner, std::size_t size) {
  sluice::Framer framer;
  std::vector<Event> events;
  std::size_t pos = 0;
  for (int guard = 0; guard < (1 << 22); ++guard) {
    const FrameEvent in = framer.next(inner + pos, size - pos);
    pos += in.consumed;
    if (in.kind == FrameEvent::Kind::kNeedMore) {
      if (pos == size) break;
      continue;
    }
    CompressedFramer::Event ev;
    ev.kind = Kind::kInner;
    ev.inner = in;
    events.push_back(record(ev));
  }
  return events;
}

}  // namespace

// Input: 1 byte mode, 1 byte n, then n bytes (chunk sizes for feeding; in
// mode 1 also frame sizes), then the data. Mode 0: the data is the
// compressed stream itself. Mode 1: the data is an inner packet stream,
// wrapped in valid frames here.
extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  if (size < 2) return 0;
  const bool wrap = data[0] & 1;
  const std::size_t n_cuts = std::min<std::size_t>(data[1], size - 2);
  const std::uint8_t* cuts = data + 2;
  const std::uint8_t* body = cuts + n_cuts;
  const std::size_t body_size = size - 2 - n_cuts;

  std::vector<std::uint8_t> stream(body, body + body_size);
  if (wrap) stream = build_frames(body, body_size, cuts, n_cuts);

  const Run whole = parse(stream.data(), stream.size(), nullptr, 0);
  const Run split = parse(stream.data(), stream.size(), cuts, n_cuts);
  const Run bytewise =
      parse(stream.data(), stream.size(), reinterpret_cast<const std::uint8_t*>("\1"), 1);
  // Corrupt data is found in any split; the events before it may differ (a
  // frame's excess output is seen in a different call), so only the
  // outcome is compared then.
  require(split.error == whole.error && bytewise.error == whole.error);
  if (!whole.error) {
    require(split.events == whole.events);
    require(bytewise.events == whole.events);
  }
  if (wrap) {
    // Valid frames: never an error, and inside them exactly the inner stream.
    require(!whole.error);
    std::vector<Event> inner;
    for (const Event& e : whole.events) {
      if (e.kind == Kind::kInner) inner.push_back(e);
    }
    require(inner == inner_reference(body, body_size));
  }
  return 0;
}
