#!/bin/sh
# Prints a fresh deploy/.env for the compose stack: random passwords and a codec key.
#   sh deploy/gen-env.sh > deploy/.env
# Keep the file: GD_CODEC_KEYS decrypts every payload already in Temporal (rotation: put a
# new key first, keep the old ones after it; see codec.py).
set -eu
rand() { head -c "$1" /dev/urandom | base64 | tr -d '\n'; }
secret() { rand 24 | tr -d '/+='; }
echo "GD_CODEC_KEYS=k1:$(rand 32)"
echo "GD_DB_PASSWORD=$(secret)"
echo "TEMPORAL_DB_PASSWORD=$(secret)"
echo "MAILPIT_SMTP_PASSWORD=$(secret)"
echo "KEYCLOAK_ADMIN_PASSWORD=$(secret)"
echo "GRAFANA_ADMIN_PASSWORD=$(secret)"
# The web inbox's session cookie key, shared by every API instance.
echo "GD_WEB_SESSION_KEY=$(rand 32)"
echo "GD_DOCUMENT_KEY=$(rand 32)"
