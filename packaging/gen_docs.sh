#!/usr/bin/env bash
# Generates pagewire's man pages and bash completion from the built command's
# own --help, so every subcommand (and any added later) gets a page and is
# completed without anyone keeping a list. cmake/pagewire_docs.cmake runs it
# at build time, after linking the command.
#
# Usage: gen_docs.sh PAGEWIRE VERSION OUTDIR [HELP2MAN]
#   OUTDIR/man1/pagewire.1.gz, pagewire-SUB.1.gz, pagewire-SUB-SUBSUB.1.gz, ...
#       (only with HELP2MAN: without it man1/ is removed, so no stale page is
#       installed; the package build then refuses, see cmake/pagewire_cpack.cmake)
#   OUTDIR/bash-completion/pagewire
set -euo pipefail

if [ $# -lt 3 ]; then
    echo "usage: gen_docs.sh PAGEWIRE VERSION OUTDIR [HELP2MAN]" >&2
    exit 2
fi
pagewire=$1
version=$2
out=$3
help2man=${4:-}

# The sections of a CLI11 --help text this script reads:
#   Subcommands:                     Options:
#     NAME      description            -s,--size TEXT REQUIRED  description
# Entries start with exactly two spaces; continuation lines with more.
section() {  # section NAME < help: the entry lines of section NAME
    awk -v name="$1:" '$0 == name {on = 1; next} on && /^[^ ]/ {on = 0} on && /^  [^ ]/'
}
subcommands() { section Subcommands | awk '{print $1}'; }
description_of() {  # description_of SUB < parent help: SUB's one-line description
    section Subcommands | awk -v sub_="$1" '$1 == sub_ {$1 = ""; sub(/^ +/, ""); print; exit}'
}
option_names() { section Options | awk '$1 ~ /^-/ {n = split($1, a, ","); for (i = 1; i <= n; i++) print a[i]}'; }
# "-b,--backend TEXT:{posix,sysv,file}" -> "-b --backend<TAB>posix sysv file"
option_choices() {
    section Options | awk '$1 ~ /^-/ && match($0, /:\{[^}]*\}/) {
        c = substr($0, RSTART + 2, RLENGTH - 3); gsub(",", " ", c)
        names = $1; gsub(",", " ", names); print names "\t" c}'
}

mkdir -p "$(dirname "$out")"
work=$(mktemp -d "${out%/}.tmp.XXXXXX")
trap 'rm -rf "$work"' EXIT
mkdir -p "$work/man1" "$work/bash-completion"

# Breadth-first over the command tree; a path is the subcommand words after
# "pagewire" ("" for the command itself, then "shm", then "shm create", ...).
paths=("")
declare -A parent_of=() summary_of=()
subcommand_cases="" option_cases="" choice_cases=""
for ((i = 0; i < ${#paths[@]}; i++)); do
    path=${paths[i]}
    # shellcheck disable=SC2086  # the path is words on purpose
    help=$("$pagewire" $path --help)
    page=pagewire${path:+-${path// /-}}
    subs=$(subcommands <<<"$help" | tr '\n' ' ')
    subs=${subs% }
    if [ -z "$path" ] && [ -z "$subs" ]; then
        echo "gen_docs.sh: '$pagewire --help' lists no subcommands: has its format changed?" >&2
        exit 1
    fi
    see_also=()
    [ -n "$path" ] && see_also+=("${parent_of[$path]}")
    for sub in $subs; do
        child=${path:+$path }$sub
        paths+=("$child")
        parent_of[$child]=$page
        summary_of[$child]=$(description_of "$sub" <<<"$help")
        see_also+=("$page-$sub")
    done

    key="pagewire${path:+ $path}"
    [ -n "$subs" ] && subcommand_cases+="        \"$key\") echo \"$subs\" ;;"$'\n'
    opts=$(option_names <<<"$help" | tr '\n' ' ')
    option_cases+="        \"$key\") echo \"${opts% }\" ;;"$'\n'
    while IFS=$'\t' read -r names choices; do
        [ -z "$names" ] && continue
        pattern=""
        for n in $names; do pattern+="${pattern:+|}\"$key $n\""; done
        choice_cases+="        $pattern) echo \"$choices\" ;;"$'\n'
    done < <(option_choices <<<"$help")

    if [ -n "$help2man" ]; then
        if [ -z "$path" ]; then
            name="memory-mapped files, shared memory and zero-copy transfer"
        else
            name=${summary_of[$path]%:}  # "...; sections:" introduces a list
        fi
        include="$work/$page.h2m"
        if [ ${#see_also[@]} -gt 0 ]; then
            {
                echo "[SEE ALSO]"
                for ((s = 0; s < ${#see_also[@]}; s++)); do
                    sep=","
                    [ $s -eq $((${#see_also[@]} - 1)) ] && sep=""
                    echo ".BR ${see_also[s]} (1)$sep"
                done
            } >"$include"
        else
            : >"$include"
        fi
        # --version-string: the page names the command, not the build (type,
        # commit) that `pagewire --version` adds after its first line.
        "$help2man" --no-info --section=1 --no-discard-stderr \
            --name="$name" --version-string="$page $version" \
            --help-option="${path:+$path }--help" --include="$include" \
            --output="$work/man1/$page.1" "$pagewire"
        gzip -9n "$work/man1/$page.1"
        rm "$include"
    fi
done

cat >"$work/bash-completion/pagewire" <<EOF
# bash completion for pagewire $version: subcommands, their options and the
# values of options that take one of a few. Generated from \`pagewire --help\`
# by packaging/gen_docs.sh: do not edit.

# The subcommands of a command path ("pagewire", "pagewire shm", ...).
_pagewire_subcommands() {
    case "\$1" in
$subcommand_cases    esac
}

# The options of a command path.
_pagewire_options() {
    case "\$1" in
$option_cases    esac
}

# The values an option accepts ("\$path \$option"), when it names them.
_pagewire_choices() {
    case "\$1" in
$choice_cases    esac
}

_pagewire() {
    local cur=\${COMP_WORDS[COMP_CWORD]} prev=\${COMP_WORDS[COMP_CWORD - 1]}
    local path=pagewire word i
    # The command path: the words so far that are subcommands of the path before them.
    for ((i = 1; i < COMP_CWORD; i++)); do
        word=\${COMP_WORDS[i]}
        case " \$(_pagewire_subcommands "\$path") " in
            *" \$word "*) path="\$path \$word" ;;
        esac
    done
    local words
    words=\$(_pagewire_choices "\$path \$prev")
    if [ -z "\$words" ]; then
        if [[ \$cur == -* ]]; then
            words=\$(_pagewire_options "\$path")
        else
            words=\$(_pagewire_subcommands "\$path")
        fi
    fi
    # Nothing to offer (a FILE, an OFFSET): -o default completes file names.
    [ -n "\$words" ] && mapfile -t COMPREPLY < <(compgen -W "\$words" -- "\$cur")
    return 0
}
complete -o default -F _pagewire pagewire
EOF
bash -n "$work/bash-completion/pagewire"

rm -rf "$out/man1" "$out/bash-completion"
mkdir -p "$out"
if [ -n "$help2man" ]; then
    mv "$work/man1" "$out/man1"
fi
mv "$work/bash-completion" "$out/bash-completion"
