#!/usr/bin/env bash
# Pre-promotion gate for a plain CI script: promote CANDIDATE only when its outputs kept the
# diversity of BASELINE's on the same prompts. Files are JSONL/CSV with 'prompt' and 'output'
# (or give MODEL@VERSION and COLLAPSE_WATCH_DATABASE_URL to compare versions in the history).
#
#   examples/pre_promotion.sh BASELINE CANDIDATE [--no-embeddings ...]
#
# Exit status (that of `collapse-watch compare`): 0 ok -> promote; 1 collapse_suspected -> block;
# 3 watch -> block unless ALLOW_WATCH=1; 4 inconclusive -> block unless ALLOW_INCONCLUSIVE=1
# (more prompts or outputs per prompt are needed); 2 usage or input error.
# The two files are always taken as files (a name such as '--help' or '-x.jsonl' too); what follows
# them must be options of `collapse-watch compare`.
set -uo pipefail
usage="usage: pre_promotion.sh BASELINE CANDIDATE [--no-embeddings ...]"
if [ $# -lt 2 ]; then
  echo "pre-promotion: $usage" >&2
  exit 2
fi
baseline=$1
candidate=$2
shift 2
for arg in "$@"; do
  case $arg in
    --?*) ;;
    *) echo "pre-promotion: '$arg' is not an option; only options of 'collapse-watch compare' follow the two files ($usage)" >&2
       exit 2 ;;
  esac
done
for name in ALLOW_WATCH ALLOW_INCONCLUSIVE; do
  case ${!name:-0} in
    0|1) ;;
    *) echo "pre-promotion: $name must be 0 or 1, got '${!name}'" >&2
       exit 2 ;;
  esac
done
collapse-watch compare "$@" -- "$baseline" "$candidate"
code=$?
case $code in
  0) echo "pre-promotion: ok, promote $candidate" ;;
  3) [ "${ALLOW_WATCH:-0}" = 1 ] && { echo "pre-promotion: watch, allowed (ALLOW_WATCH=1)"; code=0; } ;;
  4) [ "${ALLOW_INCONCLUSIVE:-0}" = 1 ] && { echo "pre-promotion: inconclusive, allowed"; code=0; } ;;
esac
[ $code = 0 ] || echo "pre-promotion: blocked (collapse-watch compare exited $code)" >&2
exit $code
