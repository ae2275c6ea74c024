#!/bin/sh
# Every lem image runs this once at build time. The worker checks the config it receives and the
# result it writes against the JSON Schemas in lem_worker/schemas/ with jsonschema: kept when the base
# has it, else Debian's python3-jsonschema for a Debian/Ubuntu system python, else from PyPI.
set -e
python3 -c 'import jsonschema' 2>/dev/null \
  || { [ "$(command -v python3)" = /usr/bin/python3 ] && command -v apt-get >/dev/null \
       && apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends python3-jsonschema \
       && rm -rf /var/lib/apt/lists/*; } \
  || python3 -m pip install --no-cache-dir jsonschema
python3 -c 'import jsonschema'
