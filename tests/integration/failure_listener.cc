// A doctest listener telling the harness an assertion failed, so sluice's stderr gets printed.
#include <doctest/doctest.h>

#include "tests/support/sluice_process.h"

namespace sluice::test {
namespace {

// Listeners see every event; only failed assertions matter here.
class FailureListener : public doctest::IReporter {
 public:
  explicit FailureListener(const doctest::ContextOptions&) {}
  void report_query(const doctest::QueryData&) override {}
  void test_run_start() override {}
  void test_run_end(const doctest::TestRunStats&) override {}
  void test_case_start(const doctest::TestCaseData&) override {}
  void test_case_reenter(const doctest::TestCaseData&) override {}
  void test_case_end(const doctest::CurrentTestCaseStats&) override {}
  void test_case_exception(const doctest::TestCaseException&) override { note_assertion_failed(); }
  void subcase_start(const doctest::SubcaseSignature&) override {}
  void subcase_end() override {}
  void log_assert(const doctest::AssertData& data) override {
    if (data.m_failed) note_assertion_failed();
  }
  void log_message(const doctest::MessageData&) override {}
  void test_case_skipped(const doctest::TestCaseData&) override {}
};

REGISTER_LISTENER("sluice_failures", 1, FailureListener);

}  // namespace
}  // namespace sluice::test
