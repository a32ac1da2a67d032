# Sourced by the scripts that start a server under valgrind.
# listening_url LOG WHO: waits (up to 2 minutes: a server under valgrind
# starts slowly) for the "listening on ws://…/ws" line a server writes to
# LOG and prints the URL; fails, showing LOG, if none comes.
listening_url() {
  local log=$1 who=$2 url=""
  for _ in $(seq 1 1200); do
    url=$(sed -n 's|.*listening on \(ws://[0-9.:]*/ws\).*|\1|p' "$log" | head -n1)
    if [ -n "$url" ]; then echo "$url"; return 0; fi
    sleep 0.1
  done
  echo "$who did not start" >&2
  cat "$log" >&2
  return 1
}
