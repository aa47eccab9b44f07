// The handle a running task handler uses to talk back to the server.
#pragma once

#include <chrono>

namespace offload {

// Thread-safe. Owned by the server; valid for the duration of the handler call.
class Context {
 public:
  virtual ~Context() = default;

  // True once the job was canceled or timed out. A long handler checks it often
  // (every few milliseconds) and returns early: offload promises cancellation
  // within 50 ms for its built-ins.
  virtual bool canceled() const = 0;

  // Sleeps for `d`, or less if the job is canceled meanwhile. Returns false when it
  // woke up because of cancellation.
  virtual bool SleepFor(std::chrono::milliseconds d) = 0;

  // Reports progress in [0, 1]; values outside are clamped. Cheap: an atomic store.
  virtual void ReportProgress(double fraction) = 0;
};

}  // namespace offload
