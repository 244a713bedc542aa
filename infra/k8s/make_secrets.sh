#!/usr/bin/env bash
# Create the credentials the platform's Secrets are generated from, idempotently:
#   infra/k8s/make_secrets.sh [DIR]      (DIR defaults to infra/k8s/base/secrets)
# For every DIR/NAME.env.example without a DIR/NAME.env, writes NAME.env (mode 600) with each
# value CHANGE_ME replaced by a fresh random password (48 hex characters: URL-safe, so it can
# sit inside MLflow's database URL). An existing NAME.env is never touched: rotate a password
# by editing or deleting its file and applying again.
# Without DIR/gateway-keys.json, creates one API key for the serving gateway: the key itself
# goes to DIR/gateway-client.key (mode 600, also printed once), only its SHA-256 to
# gateway-keys.json (the Secret gateway-keys; the format of serving/gateway/auth.py). Add keys
# for more callers to that file, or delete both files to start over.
# From postgres.env and promotion-lock.env it (re)writes promotion-lock-url.env: the URL of the
# promotion lock that pipeline runs get as MLOPS_PROMOTION_LOCK (the Secret promotion-lock in
# the kubeflow namespace, ../pipeline-runs), so it always follows the current password.
# Every file written here is gitignored (secrets/.gitignore).
set -euo pipefail

DIR="${1:-$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)/base/secrets}"
say() { echo "make_secrets.sh: $*" >&2; }  # stderr: stdout stays clean for pipes
[ -d "$DIR" ] || { echo "make_secrets.sh: ERROR: no directory $DIR" >&2; exit 1; }

random_password() { od -An -N24 -tx1 /dev/urandom | tr -d ' \n'; }

umask 077
shopt -s nullglob
examples=("$DIR"/*.env.example)
[ ${#examples[@]} -gt 0 ] || { echo "make_secrets.sh: ERROR: no *.env.example in $DIR" >&2; exit 1; }
for example in "${examples[@]}"; do
    target="${example%.example}"
    if [ -e "$target" ]; then
        say "kept $target (exists)"
        continue
    fi
    tmp="$target.tmp.$$"
    trap 'rm -f "$tmp"' EXIT
    while IFS= read -r line || [ -n "$line" ]; do
        if [[ "$line" == *=CHANGE_ME ]]; then
            printf '%s%s\n' "${line%CHANGE_ME}" "$(random_password)"
        else
            printf '%s\n' "$line"
        fi
    done <"$example" >"$tmp"
    mv "$tmp" "$target"
    say "wrote $target"
done

# The gateway's key: "gw_" + 32 random bytes, URL-safe base64 without padding (what
# serving.gateway.auth.add_key makes). Its hash is the SHA-256 hex of those characters.
keys="$DIR/gateway-keys.json"
client_key="$DIR/gateway-client.key"
if [ -e "$keys" ]; then
    say "kept $keys (exists)"
else
    key="gw_$(head -c 32 /dev/urandom | base64 | tr '+/' '-_' | tr -d '=\n')"
    digest="$(printf '%s' "$key" | sha256sum | cut -d' ' -f1)"
    [[ "$digest" =~ ^[0-9a-f]{64}$ ]] || { echo "make_secrets.sh: ERROR: sha256sum failed" >&2; exit 1; }
    tmp="$client_key.tmp.$$"
    trap 'rm -f "$tmp"' EXIT
    printf '%s\n' "$key" >"$tmp"
    mv "$tmp" "$client_key"
    printf '{"keys": [{"name": "default-client", "sha256": "%s"}]}\n' "$digest" >"$tmp"
    mv "$tmp" "$keys"
    say "wrote $keys (the hash) and $client_key (the key, shown once here; keep it secret):"
    say "  $key"
fi

# The promotion lock's URL for pipeline runs: role promotion_lock on MLflow's database.
env_value() { sed -n "s/^$2=//p" "$1" | tail -n 1; }
lock_password="$(env_value "$DIR/promotion-lock.env" PROMOTION_LOCK_PASSWORD)"
database="$(env_value "$DIR/postgres.env" POSTGRES_DB)"
[ -n "$lock_password" ] && [ -n "$database" ] || {
    echo "make_secrets.sh: ERROR: PROMOTION_LOCK_PASSWORD (promotion-lock.env) or POSTGRES_DB" \
        "(postgres.env) is empty" >&2
    exit 1
}
url_file="$DIR/promotion-lock-url.env"
tmp="$url_file.tmp.$$"
trap 'rm -f "$tmp"' EXIT
printf 'MLOPS_PROMOTION_LOCK=postgresql://promotion_lock:%s@postgres.mlops.svc.cluster.local:5432/%s\n' \
    "$lock_password" "$database" >"$tmp"
mv "$tmp" "$url_file"
say "derived $url_file"
