#!/usr/bin/env sh
# One-time setup of OpenBao for Schleuse: initialise, unseal, enable transit, create the KEK
# `schleuse` and a token that may only encrypt/decrypt with it. Run from deploy/compose:
#   docker compose up -d openbao && ./openbao/init.sh
# Store the printed unseal keys and root token OFFLINE (e.g. split among two people); put only the
# schleuse token into .env as SCHLEUSE_VAULT_TOKEN. After a restart run: bao operator unseal (x3).
set -eu
bao() { docker compose exec -T -e BAO_ADDR=http://127.0.0.1:8200 ${BAO_TOKEN:+-e BAO_TOKEN="$BAO_TOKEN"} openbao bao "$@"; }

if ! bao status -format=json 2>/dev/null | grep -q '"initialized": true'; then
  echo "== initialising (5 key shares, threshold 3): keep this output safe and offline"
  bao operator init -key-shares=5 -key-threshold=3
  echo "== now unseal with three of the keys: docker compose exec openbao bao operator unseal"
  echo "== then re-run this script with BAO_TOKEN=<root token> to create the transit key"
  exit 0
fi

: "${BAO_TOKEN:?set BAO_TOKEN to the root token (once) to configure transit}"
bao secrets enable transit 2>/dev/null || true
bao write -f transit/keys/schleuse type=aes256-gcm96 exportable=false deletion_allowed=false
bao policy write schleuse - <<'POLICY'
path "transit/encrypt/schleuse" { capabilities = ["update"] }
path "transit/decrypt/schleuse" { capabilities = ["update"] }
POLICY
echo "== SCHLEUSE_VAULT_TOKEN for .env (periodic, renew by use):"
bao token create -policy=schleuse -period=768h -orphan -field=token
