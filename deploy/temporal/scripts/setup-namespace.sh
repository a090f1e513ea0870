#!/bin/sh
# Once the Temporal frontend serves: create our namespace if it is missing, then register the custom
# search attributes given as arguments (NAME=TYPE, e.g. OrgId=Keyword) on it.
# Safe to run again: it only adds what is missing, and fails if a name exists with another type.
set -eu

: "${TEMPORAL_ADDRESS:?TEMPORAL_ADDRESS is required}"
NAMESPACE="${TEMPORAL_NAMESPACE:-default}"
RETENTION="${TEMPORAL_NAMESPACE_RETENTION:-168h}"
ATTEMPTS="${SETUP_MAX_ATTEMPTS:-60}"
DELAY="${SETUP_RETRY_SECONDS:-2}"

if [ "$#" -eq 0 ]; then
    echo "usage: setup-namespace.sh NAME=TYPE..." >&2
    exit 2
fi

retry() {  # retry WHAT COMMAND...: run COMMAND until it succeeds, at most ATTEMPTS times
    what=$1
    shift
    n=1
    until "$@"; do
        if [ "$n" -ge "$ATTEMPTS" ]; then
            echo "temporal-namespace: gave up on $what after $n attempts" >&2
            exit 1
        fi
        n=$((n + 1))
        sleep "$DELAY"
    done
}

frontend_serving() {
    # -w: NOT_SERVING must not count as SERVING.
    temporal operator cluster health --address "$TEMPORAL_ADDRESS" 2>/dev/null | grep -qw SERVING
}

namespace_exists() {
    temporal operator namespace describe --namespace "$NAMESPACE" --address "$TEMPORAL_ADDRESS" >/dev/null 2>&1
}

ensure_namespace() {
    namespace_exists && return 0
    temporal operator namespace create --namespace "$NAMESPACE" --retention "$RETENTION" \
        --address "$TEMPORAL_ADDRESS" >/dev/null 2>&1 || true
    # Another run may have created it meanwhile; either way it must now be there.
    namespace_exists
}

attribute_type() {  # attribute_type NAME: its registered type, or nothing
    temporal operator search-attribute list --namespace "$NAMESPACE" --address "$TEMPORAL_ADDRESS" \
        2>/dev/null | awk -v name="$1" '$1 == name { print $2 }'
}

ensure_attribute() {  # ensure_attribute NAME TYPE
    current=$(attribute_type "$1")
    if [ "$current" = "$2" ]; then
        return 0
    fi
    if [ -n "$current" ]; then
        # Retrying cannot fix this: the attribute was registered by hand with another type.
        echo "temporal-namespace: search attribute $1 exists as $current, expected $2" >&2
        exit 1
    fi
    temporal operator search-attribute create --namespace "$NAMESPACE" --address "$TEMPORAL_ADDRESS" \
        --name "$1" --type "$2" >/dev/null 2>&1 || true
    [ "$(attribute_type "$1")" = "$2" ]
}

retry "Temporal frontend at $TEMPORAL_ADDRESS" frontend_serving
retry "namespace $NAMESPACE" ensure_namespace
echo "temporal-namespace: namespace $NAMESPACE ready"

for pair in "$@"; do
    name=${pair%%=*}
    type=${pair#*=}
    if [ -z "$name" ] || [ "$name" = "$pair" ] || [ -z "$type" ]; then
        echo "temporal-namespace: expected NAME=TYPE, got '$pair'" >&2
        exit 2
    fi
    retry "search attribute $name" ensure_attribute "$name" "$type"
    echo "temporal-namespace: search attribute $name ($type) registered"
done
