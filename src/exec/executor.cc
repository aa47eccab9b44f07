#include "exec/executor.h"

#include <atomic>

namespace offload {

namespace {

// The default batch: each execution through Start, the next once the previous has
// reported. An executor may report inside Start (a refusal) or later on another
// thread; the hand-over flag makes the loop continue on whichever side comes
// second, so a long batch of inline reports never deepens the stack.
struct SequentialBatch {
  Executor* executor;
  std::vector<Execution> execs;
  bool stop_on_failure;
  BatchDone done;
  std::vector<std::optional<Result>> outcomes;
  std::size_t next = 0;
  std::atomic<bool> in_start{false};

  static void Continue(const std::shared_ptr<SequentialBatch>& self) {
    for (;;) {
      const bool stop = self->next > 0 && self->stop_on_failure && !self->outcomes[self->next - 1]->ok();
      if (stop || self->next == self->execs.size() || self->execs[self->next].context->canceled()) {
        BatchDone done = std::move(self->done);
        return done(std::move(self->outcomes));
      }
      const std::size_t i = self->next++;
      self->in_start.store(true, std::memory_order_relaxed);
      self->executor->Start(std::move(self->execs[i]), [self, i](Result r) {
        self->outcomes[i] = std::move(r);
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

void Executor::StartBatch(std::vector<Execution> execs, bool stop_on_failure, BatchDone done) {
  auto batch = std::make_shared<SequentialBatch>();
  batch->executor = this;
  batch->outcomes.resize(execs.size());
  batch->execs = std::move(execs);
  batch->stop_on_failure = stop_on_failure;
  batch->done = std::move(done);
  SequentialBatch::Continue(batch);
}

}  // namespace offload
