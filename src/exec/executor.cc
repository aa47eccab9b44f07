#include "exec/executor.h"

#include <atomic>
#include <cstdio>
#include <fstream>
#include <iterator>
#include <utility>

#include "offload/error_types.h"
#include "util/base64.h"

namespace offload {

Execution Batch::ExecutionOf(std::size_t i) const {
  // An aliasing pointer: the element stays in the map's input.
  return Execution{IdOf(i),  task,         std::shared_ptr<const boost::json::value>(input, &InputOf(i)),
                   priority, AttemptOf(i), context};
}

void BatchOutcome::Add(Result outcome) {
  if (!outcome.ok()) return Fail(outcome.error());
  const std::shared_ptr<const Output>& shared = outcome.output();
  const Output& out = *shared;
  if (out.file) {
    // A map's result is one list in memory: an element's file is read into it.
    std::ifstream in(out.file->path, std::ios::binary);
    std::string bytes((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
    if (!in.good() && !in.eof()) {
      return Fail(JobError{error_type::kInvalidResult, "cannot read the result file " + out.file->path});
    }
    std::remove(out.file->path.c_str());
    values.emplace_back(boost::json::object{{"content_type", out.content_type}, {"base64", Base64Encode(bytes)}});
  } else if (!out.is_json()) {
    values.emplace_back(boost::json::object{{"content_type", out.content_type}, {"base64", Base64Encode(out.bytes)}});
  } else if (shared.use_count() == 1) {
    // Ours alone: moved, not copied. Every Output is made mutable (make_shared<Output>
    // in Result), so the cast is sound.
    values.emplace_back(std::move(const_cast<Output&>(out).json));
  } else {
    values.emplace_back(out.json);
  }
}

namespace {

// The default batch: each element through Start, the next once the previous has
// reported. An executor may report inside Start (a refusal) or later on another
// thread; the hand-over flag makes the loop continue on whichever side comes
// second, so a long batch of inline reports never deepens the stack.
struct SequentialBatch {
  Executor* executor;
  Batch batch;
  BatchDone done;
  BatchOutcome outcome;
  std::atomic<bool> in_start{false};

  static void Continue(const std::shared_ptr<SequentialBatch>& self) {
    for (;;) {
      const std::size_t next = self->outcome.ran();
      const bool failed = !self->outcome.errors.empty() && self->outcome.errors.back().first + 1 == next;
      if ((failed && self->batch.stop_on_failure) || next == self->batch.size() || self->batch.context->canceled()) {
        BatchDone done = std::move(self->done);
        return done(std::move(self->outcome));
      }
      self->in_start.store(true, std::memory_order_relaxed);
      self->executor->Start(self->batch.ExecutionOf(next), [self](Result r) {
        self->outcome.Add(std::move(r));
        // Reported inside Start: the loop below goes on.
        if (self->in_start.exchange(false, std::memory_order_acq_rel)) return;
        Continue(self);
      });
      // Still running: its report goes on.
      if (self->in_start.exchange(false, std::memory_order_acq_rel)) return;
    }
  }
};

}  // namespace

void Executor::StartBatch(Batch batch, BatchDone done) {
  auto sequential = std::make_shared<SequentialBatch>();
  sequential->executor = this;
  sequential->batch = std::move(batch);
  sequential->done = std::move(done);
  SequentialBatch::Continue(sequential);
}

}  // namespace offload
