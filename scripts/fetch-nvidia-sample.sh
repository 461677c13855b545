#!/usr/bin/env bash
# Fetches NVIDIA's Hopper attestation sample (certificate chain, device root, SPDM report)
# from the nv-local-gpu-verifier 2.7.3 wheel on PyPI (BSD-3-Clause) for the certs tests.
# The files stay outside git (.fixtures/ is ignored).
#
# Usage: scripts/fetch-nvidia-sample.sh [folder]      (default: .fixtures/nvidia)
# Then:  export CHIPWARD_NV_SAMPLES=<the folder printed last>
set -euo pipefail

version="2.7.3"
wheel="nv_local_gpu_verifier-${version}-py3-none-any.whl"
wheel_sha256="27259ce3d828ca102db17f4b70c7b85c1882a55f99153eb706fcb1866db0fe7a"
dest="${1:-.fixtures/nvidia}"

mkdir -p "$dest"
dest="$(cd "$dest" && pwd)"

if [[ -f "$dest/verifier/samples/hopperCertChain.txt" && -f "$dest/verifier/samples/hopperAttestationReport.txt" && -f "$dest/verifier/certs/verifier_device_root.pem" && -f "$dest/verifier/certs/verifier_RIM_root.pem" ]]; then
    echo "already extracted in $dest" >&2
else
    if [[ ! -f "$dest/$wheel" ]]; then
        python3 -m pip download --quiet --no-deps --dest "$dest" "nv-local-gpu-verifier==${version}"
    fi
    echo "${wheel_sha256}  $dest/$wheel" | sha256sum --check --quiet
    python3 - "$dest/$wheel" "$dest" <<'PY'
import sys
import zipfile

wheel, dest = sys.argv[1], sys.argv[2]
with zipfile.ZipFile(wheel) as archive:
    archive.extractall(dest)
PY
fi

echo "export CHIPWARD_NV_SAMPLES=$dest"
