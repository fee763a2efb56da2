#!/usr/bin/env bash
# The million-certificate bench (`make bench-1m`): seeds 1 000 000
# subscribers with real certificates (a P-256 key each, 10 % revoked, so the
# full CRL lists 100 000), then measures
#   1. the seed's time,
#   2. start until /readyz: the first start after the seed and a restart
#      (the seed has built the CRLs and pre-signed the OCSP responses, so
#      neither has anything to repair),
#   3. the full CRL: its size, and its build time if a start rebuilt it,
#   4. resident memory (RssAnon, RssFile) idle after start,
#   5. OCSP against the bare Go server (bench/ocsp, alternating rounds),
#   6. LDAP against OpenLDAP slapd on the same entries (bench/ldap).
# Environment: DATA (default /tmp/certcenter-1m; reused if it holds a
# store), COUNT (1000000), ROUNDS (10), SKIP_OCSP=1, SKIP_LDAP=1, OUT (report file),
# OCSP_FLAGS (more bench/ocsp flags, e.g. "-duration 10s -same-headers").
set -euo pipefail
cd "$(dirname "$0")/../.."
COUNT=${COUNT:-1000000}
DATA=${DATA:-/tmp/certcenter-1m}
ROUNDS=${ROUNDS:-10}
WORK=${WORK:-$(dirname "$DATA")/certcenter-1m-work}
OUT=${OUT:-$WORK/report.md}
BIN=$WORK/certcenter
mkdir -p "$WORK"
go build -o "$BIN" ./cmd/certcenter
report() { echo "$*" | tee -a "$OUT"; }
: > "$OUT"
report "# certcenter with $COUNT certificates ($(date -u '+%Y-%m-%d %H:%M UTC'))"
report ""
report "Machine: $(nproc) CPUs, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs), load average before: $(cut -d' ' -f1-3 /proc/loadavg)"

if [ ! -d "$DATA/db" ]; then
  start=$(date +%s)
  # GNU time for the seed's CPU and peak RSS; its progress lines (every 5 s)
  # give the time per 1 000 as the store grows; the CPU profile says where.
  /usr/bin/time -o "$WORK/seed.time" -f '%e s wall, %U s user + %S s sys CPU, peak RSS %M kB' \
    "$BIN" seed --data "$DATA" --count "$COUNT" --revoked-fraction 0.1 --cpuprofile "$WORK/seed.cpu.prof" 2>"$WORK/seed.log" | tee -a "$WORK/seed.log"
  report "- seed of $COUNT (10 % revoked, OCSP responses pre-signed): $(( $(date +%s) - start )) s ($(tail -1 "$WORK/seed.log")); $(cat "$WORK/seed.time")"
  report "- seed, wall time per 1 000 subscribers: $(awk -v n="$COUNT" 'BEGIN { k = 0 } /msg=seeding/ {
      split($1, a, "T"); split(a[2], h, ":"); sub("Z", "", h[3]); t[k] = h[1]*3600 + h[2]*60 + h[3]
      for (i = 2; i <= NF; i++) if ($i ~ /^done=/) { split($i, d, "="); done[k] = d[2] }
      k++ }
    END { if (k < 4) { print "too few progress lines"; exit }
      f = 1; while (f < k - 1 && done[f] < n / 10) f++
      l = k - 2; while (l > 0 && done[l] > n * 9 / 10) l--
      printf "%.2f s over the first tenth, %.2f s over the last", 1000 * (t[f] - t[0]) / (done[f] - done[0]), 1000 * (t[k-1] - t[l]) / (done[k-1] - done[l]) }' "$WORK/seed.log")"
else
  report "- seed: reused $DATA"
fi
report "- database on disk: $(du -sh --apparent-size "$DATA/db" | cut -f1) apparent, $(du -sh "$DATA/db" | cut -f1) allocated"

serve() { # serve LOG -> prints seconds until /readyz; PID in $WORK/pid, http address in $WORK/addr
  local t0 t1 pid addr=""
  t0=$(date +%s.%N)
  # Port 0 everywhere: the machine is shared, the log says what was bound.
  "$BIN" serve --data "$DATA" --http-addr 127.0.0.1:0 --api-addr 127.0.0.1:0 \
    --ldap-addr 127.0.0.1:0 --ldaps-addr 127.0.0.1:0 >"$1" 2>&1 &
  pid=$!
  echo $pid >"$WORK/pid"
  until [ -n "$addr" ] && [ "$(curl -s -o /dev/null -w '%{http_code}' "http://$addr/readyz")" = 200 ]; do
    kill -0 $pid 2>/dev/null || { echo "serve died, log in $1" >&2; exit 1; }
    [ -n "$addr" ] || addr=$(grep -m1 -oE 'certcenter ready.* http=[0-9.:]+' "$1" | grep -oE '[0-9.]+:[0-9]+$' || true)
    sleep 0.05
  done
  t1=$(date +%s.%N)
  echo "$addr" >"$WORK/addr"
  echo "$t1 - $t0" | bc
}
mem() { grep -E '^(RssAnon|RssFile)' /proc/$1/status | tr -s ' \t' ' ' | tr '\n' ' '; }

for start in first second; do
  secs=$(serve "$WORK/serve-$start.log")
  pid=$(cat "$WORK/pid")
  sleep 2
  report "- $start start until /readyz: $secs s; idle after start: $(mem $pid)"
  if [ $start = first ]; then
    curl -s -o "$WORK/full.crl" "http://$(cat "$WORK/addr")/crl/demo.crl"
    built=$(grep -m1 'full CRLs built' "$WORK/serve-$start.log" | grep -oE 'entries=[0-9]+ read=[^ ]+ sign=[^ ]+ deltas=[^ ]+ store=[^ ]+' || true)
    report "- full CRL: $(stat -c %s "$WORK/full.crl") bytes, $(openssl crl -inform DER -in "$WORK/full.crl" -noout -text | grep -c 'Serial Number') entries; built at start: ${built:-not rebuilt at this start}"
  fi
  kill $pid
  while kill -0 $pid 2>/dev/null; do sleep 0.1; done
done

if [ "${SKIP_OCSP:-}" != 1 ]; then
  report ""
  report "## OCSP (bench/ocsp, $ROUNDS alternating rounds)"
  go run ./bench/ocsp -bin "$BIN" -data "$DATA" -rounds "$ROUNDS" -no-openssl -revoked 0.1 ${OCSP_FLAGS:-} 2>"$WORK/ocsp.log" | tee -a "$OUT"
fi

if [ "${SKIP_LDAP:-}" != 1 ]; then
  report ""
  report "## LDAP (bench/ldap against slapd)"
  mkdir -p "$WORK/ldap"
  ln -sfn "$DATA" "$WORK/ldap/certcenter"
  touch "$DATA/seeded"
  go run ./bench/ldap -certcenter "$BIN" -dir "$WORK/ldap" -count "$COUNT" -rounds 3 2>"$WORK/ldap.log" | tee -a "$OUT"
fi
report ""
report "load average after: $(cut -d' ' -f1-3 /proc/loadavg)"
