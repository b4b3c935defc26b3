#!/bin/sh
# The namespace and the search attributes of CONTRACT.md (models/search_attributes.py), on a
# running server. Idempotent: what exists is kept. `gd worker --check` verifies the same.
set -eu
ADDRESS="${TEMPORAL_ADDRESS:?TEMPORAL_ADDRESS não definido}"
NAMESPACE="${GD_NAMESPACE:-default}"
RETENTION="${GD_NAMESPACE_RETENTION:-30d}"

# name:type, as `temporal operator search-attribute create` spells them.
SEARCH_ATTRIBUTES="
GdStatus:Keyword
GdKind:Keyword
GdClass:Keyword
GdServiceNote:Keyword
GdProtocol:Keyword
GdTechnician:Keyword
GdNextActor:Keyword
GdDueAt:Datetime
GdSlaBreached:Bool
GdAssignee:Keyword
"

until temporal operator cluster health --address "$ADDRESS" >/dev/null 2>&1; do
  echo "aguardando o Temporal em $ADDRESS"
  sleep 2
done

if temporal operator namespace describe --address "$ADDRESS" -n "$NAMESPACE" >/dev/null 2>&1; then
  echo "namespace $NAMESPACE já existe"
else
  temporal operator namespace create --address "$ADDRESS" -n "$NAMESPACE" --retention "$RETENTION"
fi

# A namespace just registered reaches the server's namespace cache some seconds later.
tries=0
until existing=$(temporal operator search-attribute list --address "$ADDRESS" -n "$NAMESPACE" 2>/dev/null); do
  tries=$((tries + 1))
  if [ "$tries" -ge 60 ]; then
    echo "namespace $NAMESPACE não ficou disponível" >&2
    exit 1
  fi
  sleep 1
done
for entry in $SEARCH_ATTRIBUTES; do
  name=${entry%%:*}
  type=${entry#*:}
  if printf '%s\n' "$existing" | grep -qw "$name"; then
    echo "atributo $name já existe"
  else
    temporal operator search-attribute create --address "$ADDRESS" -n "$NAMESPACE" \
      --name "$name" --type "$type"
  fi
done
echo "namespace $NAMESPACE e atributos de busca prontos"
