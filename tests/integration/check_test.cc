// `sluice --check` refuses what a run of the same binary would refuse, naming the key and where it
// was set, and a run refuses it at once.
#include <doctest/doctest.h>

#include <chrono>
#include <string>
#include <vector>

#include "tests/support/process.h"
#include "tests/support/sluice_process.h"
#include "tests/support/temp_dir.h"

namespace sluice::test {
namespace {

using namespace std::chrono_literals;

std::string describe(const ProcessResult& result) {
  return result.status.describe() + (result.timed_out ? " (timed out)" : "") + "\nstdout:\n" +
         result.out + "\nstderr:\n" + result.err;
}

bool contains(const std::string& text, const std::string& part) {
  return text.find(part) != std::string::npos;
}

// A file with one listener on line 3; metrics on an address nothing else uses.
struct CheckFile {
  TempDir dir{"sluice-check"};
  std::string path = (dir / "sluice.yaml").string();

  explicit CheckFile(const std::string& extra_listeners = "") {
    write_file(path,
               "metrics:\n  listen: 127.0.0.1:0\n"
               "listeners:\n  - listen: 127.0.0.1:16033\n    upstreams: [127.0.0.1:3306]\n" +
                   extra_listeners);
  }
  ProcessResult check(std::vector<std::string> extra = {}) const {
    std::vector<std::string> args = {"--config", path, "--check"};
    args.insert(args.end(), extra.begin(), extra.end());
    return run_sluice(args, 20s);
  }
};

TEST_CASE("check: the same listen address written another way is a duplicate") {
  const CheckFile file(
      "  - listen: \"[::ffff:127.0.0.1]:16033\"\n    upstreams: [127.0.0.1:3306]\n");
  const ProcessResult r = file.check();
  CHECK_MESSAGE((r.status.exited && r.status.code == 1), describe(r));
  CHECK_MESSAGE(contains(r.err,
                         "listeners[1].listen (line 6): address [::ffff:127.0.0.1]:16033 "
                         "is also listeners[0].listen (127.0.0.1:16033)"),
                describe(r));
  CHECK_FALSE(contains(r.out, "configuration ok"));
}

TEST_CASE(
    "check: an unreadable metrics password file is refused by --check and by a run, at once") {
  const CheckFile file;
  const std::vector<std::string> auth = {"--set", "metrics.username=u", "--set",
                                         "metrics.password_file=/nonexistent"};
  const ProcessResult checked = file.check(auth);
  CHECK_MESSAGE((checked.status.exited && checked.status.code == 1), describe(checked));
  CHECK_MESSAGE(contains(checked.err,
                         "metrics.password_file (--set): cannot read /nonexistent: "
                         "No such file or directory"),
                describe(checked));
  CHECK_FALSE(contains(checked.out, "configuration ok"));

  // A run says the same and exits 1 before any worker or the metrics endpoint starts (it used
  // to start them, then wait out civetweb's two-second stop).
  std::vector<std::string> args = {"--config", file.path};
  args.insert(args.end(), auth.begin(), auth.end());
  const auto started = std::chrono::steady_clock::now();
  const ProcessResult ran = run_sluice(args, 20s);
  const auto took = std::chrono::steady_clock::now() - started;
  CHECK_MESSAGE((ran.status.exited && ran.status.code == 1), describe(ran));
  CHECK_MESSAGE(contains(ran.err, "metrics.password_file (--set): cannot read /nonexistent"),
                describe(ran));
  CHECK_FALSE(contains(ran.err, "metrics_listen_failed"));
  CHECK(took < 1500ms);
}

TEST_CASE("check: a key that a --set override requires is reported as (--set)") {
  const CheckFile file;  // its metrics section is on line 1
  const ProcessResult r = file.check({"--set", "metrics.username=u"});
  CHECK_MESSAGE((r.status.exited && r.status.code == 1), describe(r));
  CHECK_MESSAGE(
      contains(r.err, "metrics.password_file (--set): is required when metrics.username is set"),
      describe(r));
  CHECK_FALSE(contains(r.err, "(line 1)"));
}

}  // namespace
}  // namespace sluice::test
