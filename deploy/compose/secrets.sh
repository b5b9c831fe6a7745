#!/usr/bin/env sh
# Creates the shared internal key (signs actors between services) once; never overwrites it.
set -eu
cd "$(dirname "$0")"
mkdir -p secrets calls
if [ ! -f secrets/internal.key ]; then
  umask 077
  head -c 32 /dev/urandom > secrets/internal.key
  echo "created secrets/internal.key"
fi
