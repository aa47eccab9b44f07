// Scopes: what a token may do (docs/security.md). A request needs one; admin holds
// them all and sees every tenant's jobs.
#pragma once

#include <cstdint>
#include <string_view>

namespace offload {

enum class Scope : std::uint8_t {
  kSubmit = 1,  // POST /v1/jobs, /v1/tasks/NAME/run, a retry.
  kRead = 2,    // Jobs, results, events, tasks and resources.
  kCancel = 4,  // DELETE /v1/jobs/ID, POST /v1/jobs/cancel.
  kAdmin = 8,   // Everything, every tenant's jobs, /metrics, /openapi.json.
};

// A set of scopes, as the bits of Scope.
class ScopeSet {
 public:
  constexpr ScopeSet() = default;
  void Add(Scope s) { bits_ |= static_cast<std::uint8_t>(s); }
  // Admin holds every scope.
  bool Has(Scope s) const {
    return (bits_ & (static_cast<std::uint8_t>(s) | static_cast<std::uint8_t>(Scope::kAdmin))) != 0;
  }
  bool empty() const { return bits_ == 0; }
  bool operator==(const ScopeSet&) const = default;

 private:
  std::uint8_t bits_ = 0;
};

// "submit", "read", "cancel", "admin"; false for any other name.
bool ParseScope(std::string_view name, Scope* out);
std::string_view ScopeName(Scope s);

}  // namespace offload
