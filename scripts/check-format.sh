#!/usr/bin/env bash
# Checks C++ files against .clang-format without changing them: prints each place
# that would change and fails if there is one. Usage:
#   scripts/check-format.sh [FILE...]
# With no FILE, every C++ file under src/ include/ tests/ bench/ examples/ fuzz/. Files that
# are not C++ (.h .hpp .cc .cpp) or no longer exist are skipped, so the output of
# `git diff --name-only main` can be passed as it is. To apply the format instead:
# clang-format-14 -i FILE...
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
format="${CLANG_FORMAT:-clang-format-14}"

files=()
if (($# == 0)); then
  while IFS= read -r -d '' f; do files+=("$f"); done < <(
    cd "$root" && find src include tests bench examples fuzz -type f \
      \( -name '*.h' -o -name '*.hpp' -o -name '*.cc' -o -name '*.cpp' \) -print0 2>/dev/null | sort -z)
  cd "$root"
else
  for f in "$@"; do
    case "$f" in *.h | *.hpp | *.cc | *.cpp) [ -f "$f" ] && files+=("$f") ;; esac
  done
fi
((${#files[@]})) || exit 0

failed=()
for f in "${files[@]}"; do
  "$format" --dry-run -Werror "$f" || failed+=("$f")
done
if ((${#failed[@]})); then
  echo "check-format: ${#failed[@]} of ${#files[@]} file(s) differ from .clang-format: ${failed[*]}" >&2
  exit 1
fi
