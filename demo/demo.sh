#!/usr/bin/env bash
# A guided tour of what sq does today, on a freshly generated example vault.
# Run it with `make demo` (which puts .venv/bin on PATH); it recreates
# ./demo-vault every time and touches nothing else.
set -euo pipefail

VAULT=demo-vault
D1="$VAULT/drive1"
D2="$VAULT/drive2"

if [ -t 1 ]; then BOLD=$'\033[1m' PLAIN=$'\033[0m'; else BOLD='' PLAIN=''; fi
step() { printf '\n%s== %s%s\n' "$BOLD" "$*" "$PLAIN"; }
# Show the command, then run it with its stderr summary kept in order.
run() { printf '$ %s\n' "$*"; "$@" 2>&1; }

command -v sq >/dev/null || { echo "sq is not on PATH: run this through 'make demo'" >&2; exit 1; }

step "Generating a small example collection in $D1"
rm -rf "$VAULT"
mkdir -p "$D1/photos/2023" "$D1/photos/2024" "$D1/videos" "$D2"
for i in 1 2 3; do head -c $((20000 + i * 1000)) /dev/urandom >"$D1/photos/2023/img_000$i.jpg"; done
for i in 4 5; do head -c $((30000 + i * 1000)) /dev/urandom >"$D1/photos/2024/img_000$i.jpg"; done
head -c 200000 /dev/urandom >"$D1/videos/holiday.mp4"
printf 'Trip to the coast, summer 2023.\n' >"$D1/notes.txt"
find "$D1" -type f | sort

step "Making it a replica: sq init creates .squirrel/ and indexes every file"
run sq init "$D1" --name drive1

step "What the index holds (kind, object id, size, mtime, modification time, sync time, path)"
run sq ls-index "$D1"

step "Changing things: edit notes.txt, delete one photo, move one, add one"
printf 'Added the 2024 pictures.\n' >>"$D1/notes.txt"
rm "$D1/photos/2023/img_0001.jpg"
mv "$D1/photos/2023/img_0002.jpg" "$D1/photos/2024/img_0002.jpg"
head -c 25000 /dev/urandom >"$D1/photos/2024/img_0006.jpg"

step "sq status: what changed since the last scan (nothing is recorded yet)"
run sq status "$D1"

step "sq scan: record the changes as one new event of drive1"
run sq scan "$D1"

step "The index again: changed paths and their folders now carry drive1:2"
run sq ls-index "$D1"

step "A second replica of the same vault"
head -c 22000 /dev/urandom >"$D2/img_0100.jpg"
run sq init "$D2" --name drive2 --join "$D1"

step "Both identities: same vault id, different replica ids"
run cat "$D1/.squirrel/replica.json"
echo
run cat "$D2/.squirrel/replica.json"
echo

step "sq reconcile: both drives end up with the same files"
run sq reconcile "$D1" "$D2"
for d in "$D1" "$D2"; do
    printf '$ find %s -type f   # (without .squirrel/)\n' "$d"
    find "$d" -path "$d/.squirrel" -prune -o -type f -print | sort
done

step "sq status again: nothing pending (exit code 0 with --exit-code)"
run sq status --exit-code "$D1"

step "Done. The example vault is in $VAULT; delete it when you like."
