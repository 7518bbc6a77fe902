#!/usr/bin/env bash
# ctest test: the man pages and the bash completion that packaging/gen_docs.sh
# made at build time agree with the command as it is now:
#   - completing `pagewire [PATH...] X` offers every subcommand starting with X,
#     and `... --` every option, for the command and every (nested) subcommand;
#   - there is exactly one page per command path (pagewire, pagewire-shm,
#     pagewire-shm-create, ...): none missing, none for a removed subcommand;
#   - man renders each under its name, and its source names every option.
# Usage: test_docs.sh PAGEWIRE DOCS_DIR [HELP2MAN]   (no HELP2MAN: pages skipped)
set -euo pipefail
pagewire=$1
docs=$2
help2man=${3:-}
export LC_ALL=C

fail() {
    echo "FAIL: $*" >&2
    exit 1
}
# The entries of a CLI11 help section: lines with two spaces then a name,
# between "NAME:" and the next unindented line. Read here with sed, apart
# from gen_docs.sh's reading, so a mistake in one does not hide in both.
# shellcheck disable=SC2086  # a command path is words on purpose
subcommands_of() { "$pagewire" $1 --help | sed -n '/^Subcommands:$/,/^[^ ]/s/^  \([a-z][a-z0-9_-]*\) .*/\1/p'; }
# shellcheck disable=SC2086
long_options_of() { "$pagewire" $1 --help | sed -n '/^Options:$/,/^[^ ]/s/^  \(-[^ ]*\).*/\1/p' | tr ',' '\n' | grep '^--'; }

completion=$docs/bash-completion/pagewire
[ -f "$completion" ] || fail "no completion file $completion"
# shellcheck source=/dev/null
source "$completion"
complete -p pagewire >/dev/null || fail "$completion does not register a completion for pagewire"
complete_words() {  # complete_words WORD... : what completing the last word offers
    COMP_WORDS=("$@")
    COMP_CWORD=$(($# - 1))
    COMPREPLY=()
    _pagewire
    echo " ${COMPREPLY[*]} "
}

paths=("")
expected_pages=()
for ((i = 0; i < ${#paths[@]}; i++)); do
    path=${paths[i]}
    expected_pages+=("pagewire${path:+-${path// /-}}.1.gz")
    # shellcheck disable=SC2206
    words=(pagewire $path)
    for sub in $(subcommands_of "$path"); do
        paths+=("${path:+$path }$sub")
        offered=$(complete_words "${words[@]}" "${sub:0:1}")
        [[ $offered == *" $sub "* ]] || fail "completing '${words[*]} ${sub:0:1}' offers [$offered], not $sub"
    done
    offered=$(complete_words "${words[@]}" --)
    for opt in $(long_options_of "$path"); do
        [[ $offered == *" $opt "* ]] || fail "completing '${words[*]} --' offers [$offered], not $opt"
    done
done
[ ${#paths[@]} -gt 5 ] || fail "pagewire --help lists only ${#paths[@]} command paths: [${paths[*]}]"
echo "completion: ${#paths[@]} command paths, their subcommands and options"

if [ -z "$help2man" ]; then
    echo "help2man was not found at configure time: no man pages to check"
    exit 77
fi
actual=$(cd "$docs/man1" && ls | sort)
expected=$(printf '%s\n' "${expected_pages[@]}" | sort)
[ "$actual" = "$expected" ] || fail "man pages differ from the command paths:
$(diff <(echo "$expected") <(echo "$actual") || true)"
for ((i = 0; i < ${#paths[@]}; i++)); do
    path=${paths[i]}
    name=pagewire${path:+-${path// /-}}
    page=$docs/man1/$name.1.gz
    rendered=$(MANWIDTH=200 man -l "$page" 2>&1) || fail "man -l $page: $rendered"
    grep -q "^ *$name - " <<<"$rendered" || fail "$page renders without the NAME line '$name - ...'"
    source_text=$(zcat "$page")
    for opt in $(long_options_of "$path"); do
        # help2man writes each - of an option as \-
        grep -qF -- "${opt//-/\\-}" <<<"$source_text" || fail "$page does not mention $opt"
    done
done
echo "man pages: ${#paths[@]}, one per command path, each with its options"
