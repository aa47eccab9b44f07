#include "auth/scope.h"

namespace offload {

namespace {

constexpr Scope kScopes[] = {Scope::kSubmit, Scope::kRead, Scope::kCancel, Scope::kAdmin};

}  // namespace

std::string_view ScopeName(Scope s) {
  switch (s) {
    case Scope::kSubmit:
      return "submit";
    case Scope::kRead:
      return "read";
    case Scope::kCancel:
      return "cancel";
    case Scope::kAdmin:
      return "admin";
  }
  return "?";
}

bool ParseScope(std::string_view name, Scope* out) {
  for (Scope s : kScopes) {
    if (ScopeName(s) == name) {
      *out = s;
      return true;
    }
  }
  return false;
}

}  // namespace offload
