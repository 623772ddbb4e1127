#!/usr/bin/env bash
# Install Debian's QGIS 3.22 and the QGIS test venv (.venv-qgis) used by `make test-qgis`.
#
#   scripts/install_qgis.sh            # apt packages (if missing) + .venv-qgis
#   SKIP_APT=1 scripts/install_qgis.sh # only the venv (QGIS already installed)
#
# The venv uses Debian's /usr/bin/python3 (QGIS's Python bindings are built for it; never a pyenv
# python) with --system-site-packages, so `import qgis` works inside it.
set -euo pipefail
cd "$(dirname "$0")/.."
VENV=${VENV_QGIS:-.venv-qgis}
SYS_PY=/usr/bin/python3
PKGS="python3-qgis qgis-providers python3-gdal python3-venv qgis xvfb xauth"

need_apt=0
for p in $PKGS; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || need_apt=1
done
if [ "${SKIP_APT:-0}" != 1 ] && [ "$need_apt" = 1 ]; then
  SUDO=""
  [ "$(id -u)" = 0 ] || SUDO="sudo"
  export DEBIAN_FRONTEND=noninteractive
  $SUDO apt-get update -q
  # qgis (desktop) + xvfb/xauth are for the one end-to-end run of the desktop application.
  $SUDO apt-get install -y -q --no-install-recommends $PKGS
fi

"$SYS_PY" -c "import qgis.core" || { echo "error: $SYS_PY cannot import qgis.core" >&2; exit 1; }
if [ ! -x "$VENV/bin/python" ]; then
  "$SYS_PY" -m venv --system-site-packages "$VENV"
fi
"$VENV/bin/python" -m pip install -q --upgrade pip
"$VENV/bin/python" -m pip install -q -c constraints-qgis.txt -r tests/qgis/requirements.txt
QT_QPA_PLATFORM=offscreen "$VENV/bin/python" -c \
  "from qgis.core import Qgis; import pytest_qgis, numpy; print('QGIS', Qgis.QGIS_VERSION, '| numpy', numpy.__version__)"
