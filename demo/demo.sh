#!/usr/bin/env bash
# A guided tour of sq on a freshly generated example vault: three drives that
# never meet, and a laptop whose carrier is smaller than the collection.
# Run it with `make demo` (which puts .venv/bin on PATH); it recreates
# ./demo-vault every time and touches nothing else (the carrier lives in
# demo-vault/laptop-carrier, never in your real one).
set -euo pipefail

VAULT=demo-vault
D1="$VAULT/drive1"
D2="$VAULT/drive2"
D3="$VAULT/drive3"
CARRIER="$VAULT/laptop-carrier"
export SQ_NO_PROGRESS=1

if [ -t 1 ]; then BOLD=$'\033[1m' PLAIN=$'\033[0m'; else BOLD='' PLAIN=''; fi
step() { printf '\n%s== %s%s\n' "$BOLD" "$*" "$PLAIN"; }
# Show the command, then run it with its stderr summary kept in order.
run() { printf '$ %s\n' "$*"; "$@" 2>&1; }
visit() { run sq sync "$1" --carrier "$CARRIER"; }
files() {
    for d in "$@"; do
        printf '%s:\n' "$d"
        (cd "$d" && find . -path ./.squirrel -prune -o -type f -print | sed 's|^\./|    |' | sort)
    done
}

command -v sq >/dev/null || { echo "sq is not on PATH: run this through 'make demo'" >&2; exit 1; }

step "A collection of about 650 KiB on drive1; drive2 and drive3 are empty"
rm -rf "$VAULT"
mkdir -p "$D1/photos/2023" "$D1/photos/2024" "$D1/videos" "$D2" "$D3"
for i in 1 2 3; do head -c 60000 /dev/urandom >"$D1/photos/2023/img_000$i.jpg"; done
for i in 4 5 6; do head -c 80000 /dev/urandom >"$D1/photos/2024/img_000$i.jpg"; done
head -c 250000 /dev/urandom >"$D1/videos/holiday.mp4"
printf 'Trip to the coast, summer 2023.\n' >"$D1/notes.txt"
files "$D1"

step "drive1 becomes a replica; the laptop's carrier gets a 400 KiB budget and meets it"
run sq init "$D1" --name drive1
run sq sync "$D1" --carrier "$CARRIER" --max-size 400K

step "drive2 and drive3 join the vault from the carrier"
run sq init "$D2" --name drive2 --join "$CARRIER"
run sq init "$D3" --name drive3 --join "$CARRIER"

step "Visits: each round carries what fits in 400 KiB from drive1 to the others"
for round in 1 2; do
    printf -- '-- round %s\n' "$round"
    for d in "$D2" "$D3" "$D1"; do visit "$d"; done
done
visit "$D2"
visit "$D3"
files "$D2" "$D3"

step "Life goes on, on different drives"
echo "# drive1: a new video; drive2: a photo deleted; drive3: a folder renamed"
head -c 120000 /dev/urandom >"$D1/videos/sunset.mp4"
rm "$D2/photos/2024/img_0004.jpg"
mv "$D3/photos/2023" "$D3/photos/2023-coast"
echo "# drive1 and drive3 both edit notes.txt before any visit (drive3's edit is later)"
printf 'Trip to the coast, summer 2023. Edited on drive1.\n' >"$D1/notes.txt"
touch -d '2024-06-01 10:00' "$D1/notes.txt"
printf 'Trip to the coast, summer 2023. Edited on drive3.\n' >"$D3/notes.txt"
touch -d '2024-06-01 11:00' "$D3/notes.txt"

step "Visits in another order: drive3, drive1, drive2"
visit "$D3"
visit "$D1"
run sq carrier status --carrier "$CARRIER"
visit "$D2"

step "Another round, drive3 then drive1: every change reaches every drive"
visit "$D3"
visit "$D1"

step "The conflict: both versions are kept, the later at the path, the other beside it"
for f in "$D1"/notes*.txt; do printf '%s: %s' "$f" "$(cat "$f")"; echo; done
run sq conflicts "$D1"
echo "# (sq resolve $D1 notes.txt --keep path|copy would settle it; the guide shows how)"

step "At the end"
run sq carrier status --carrier "$CARRIER"
printf '$ diff -r -x .squirrel %s %s && diff -r -x .squirrel %s %s\n' "$D1" "$D2" "$D1" "$D3"
if diff -r -x .squirrel "$D1" "$D2" && diff -r -x .squirrel "$D1" "$D3"; then
    echo "all three drives are identical"
else
    echo "the drives differ: please report this" >&2
    exit 1
fi
files "$D1"

step "Done. The example vault is in $VAULT; delete it when you like."
