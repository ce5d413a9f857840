#!/bin/sh
# `make test-py314`: the test suite on Python 3.14 from Debian's packages.
#
# This machine's Debian (bookworm) has no Python 3.14, so a Debian sid
# chroot is made with debootstrap in build/py314-chroot (git-ignored, kept
# between runs), with python3.14, its headers, venv and gcc. The work tree
# is bind-mounted at /src inside it; the build and the virtual environment
# go to /build there (build/py314-chroot/build on the host), so the host's
# .venv and in-place extension are not touched.
#
#   tools/py314-chroot.sh setup   make the chroot (once; a few minutes)
#   tools/py314-chroot.sh test    setup, then build and run pytest there
#   PYTEST_ARGS="tests/test_x.py" tools/py314-chroot.sh test
#   tools/py314-chroot.sh run python bench/bench_leak.py   (after a test run)
#
# Needs root (debootstrap, chroot, mount) and Debian's archive.
set -eu
cd "$(dirname "$0")/.."
TOP=$(pwd)
ROOT=$TOP/build/py314-chroot
MIRROR=${DEBIAN_MIRROR:-http://deb.debian.org/debian}
PKGS=python3.14,python3.14-dev,python3.14-venv,gcc,libc6-dev,ca-certificates,iproute2,procps

need_root() {
    [ "$(id -u)" = 0 ] || { echo "py314-chroot: needs root (debootstrap, chroot, mount)" >&2; exit 1; }
}

setup() {
    need_root
    if [ -x "$ROOT/usr/bin/python3.14" ] && [ -e "$ROOT/.complete" ]; then
        return 0
    fi
    if ! command -v debootstrap >/dev/null 2>&1; then
        echo "py314-chroot: installing Debian's debootstrap" >&2
        apt-get install -y -q debootstrap >/dev/null 2>&1 || {
            apt-get update -q >/dev/null 2>&1 && apt-get install -y -q debootstrap >/dev/null; }
    fi
    rm -rf "$ROOT"
    mkdir -p "$ROOT"
    echo "py314-chroot: debootstrap sid into $ROOT (log: build/py314-debootstrap.log)" >&2
    debootstrap --variant=minbase --include="$PKGS" sid "$ROOT" "$MIRROR" \
        > "$TOP/build/py314-debootstrap.log" 2>&1 || {
        tail -20 "$TOP/build/py314-debootstrap.log" >&2; exit 1; }
    "$ROOT/usr/bin/python3.14" -c 'import sys; print("py314-chroot:", sys.version)' 2>/dev/null || \
        chroot "$ROOT" python3.14 -c 'import sys; print("py314-chroot:", sys.version)'
    touch "$ROOT/.complete"
}

mounts_up() {
    # The chroot's root a mount point of its own: `ip -n NS` (the multi-host
    # tests) remounts / as a slave, which fails on a plain folder.
    mountpoint -q "$ROOT" || mount --bind "$ROOT" "$ROOT"
    mkdir -p "$ROOT/src" "$ROOT/build" "$ROOT/opt/wheels" "$ROOT/opt/pypi" "$ROOT/opt/pypi-more"
    mountpoint -q "$ROOT/proc" || mount -t proc proc "$ROOT/proc"
    mountpoint -q "$ROOT/dev" || mount --rbind /dev "$ROOT/dev"
    mountpoint -q "$ROOT/dev/shm" || mount -t tmpfs shm "$ROOT/dev/shm"
    mountpoint -q "$ROOT/sys" || mount --rbind /sys "$ROOT/sys"
    # `ip netns` (tests/test_multihost.py) keeps its namespaces in /run/netns.
    mkdir -p "$ROOT/run"
    mountpoint -q "$ROOT/run" || mount -t tmpfs run "$ROOT/run"
    mountpoint -q "$ROOT/src" || mount --bind "$TOP" "$ROOT/src"
    # The host's pip configuration and local package folders, when it has them.
    for d in /opt/wheels /opt/pypi /opt/pypi-more; do
        [ -d "$d" ] && { mountpoint -q "$ROOT$d" || mount --bind "$d" "$ROOT$d"; }
    done
    mkdir -p "$ROOT/etc/xdg/pip"
    # The host's certificate bundle too: package downloads go through the
    # same network as the host's.
    for f in /etc/pip.conf /etc/xdg/pip/pip.conf /etc/xdg/pip/constraints.txt /etc/resolv.conf /etc/hosts \
             /etc/ssl/certs/ca-certificates.crt; do
        [ -f "$f" ] && cp "$f" "$ROOT$f"
    done
    true
}

mounts_down() {
    for m in run/netns src opt/pypi-more opt/pypi opt/wheels run sys dev/shm dev proc; do
        mountpoint -q "$ROOT/$m" 2>/dev/null && umount -l "$ROOT/$m" 2>/dev/null || true
    done
    mountpoint -q "$ROOT" && umount -l "$ROOT" 2>/dev/null || true
}

run_tests() {
    setup
    trap mounts_down EXIT INT TERM
    mounts_up
    # The suite inside: the sources copied to /build/src (no in-place .so or
    # .venv from the host), a venv of 3.14 with the dev extras, the extension
    # built there, then pytest.
    chroot "$ROOT" /usr/bin/env -i PATH=/usr/bin:/bin HOME=/root LANG=C.UTF-8 \
        PIP_DISABLE_PIP_VERSION_CHECK=1 PIP_CERT=/etc/ssl/certs/ca-certificates.crt \
        SSL_CERT_FILE=/etc/ssl/certs/ca-certificates.crt PYTEST_ARGS="${PYTEST_ARGS:-}" /bin/sh -euc '
        rm -rf /build/src && mkdir -p /build/src
        cd /src && tar --exclude=./.venv --exclude=./build --exclude="*.so" \
            --exclude=__pycache__ --exclude="*.egg-info" -cf - . | tar -C /build/src -xf -
        cd /build/src
        [ -x /build/venv/bin/python ] || python3.14 -m venv /build/venv
        SETUPTOOLS=$(grep -o -m1 "setuptools==[0-9.]*" pyproject.toml)
        /build/venv/bin/python -m pip install -q $SETUPTOOLS
        /build/venv/bin/python -m pip install -q -e ".[dev]" --no-build-isolation
        /build/venv/bin/python setup.py -q build_ext --inplace > /build/build.log 2>&1 || { cat /build/build.log; exit 1; }
        /build/venv/bin/python -m compileall -q src tests bench
        /build/venv/bin/python -c "import sys, subactor; print(\"py314:\", sys.version.split()[0], \"subactor\", subactor.__version__ if hasattr(subactor, \"__version__\") else \"\")"
        exec /build/venv/bin/python -m pytest -q $PYTEST_ARGS
    '
}

run_cmd() {
    # A command in the build of the last `test` run (/build/src, its venv on PATH).
    setup
    [ -e "$ROOT/build/venv/pyvenv.cfg" ] || { echo "py314-chroot: run \`$0 test\` first" >&2; exit 1; }
    trap mounts_down EXIT INT TERM
    mounts_up
    chroot "$ROOT" /usr/bin/env -i PATH=/build/venv/bin:/usr/bin:/bin HOME=/root LANG=C.UTF-8 \
        /bin/sh -c 'cd /build/src && exec "$@"' sh "$@"
}

case "${1:-test}" in
    setup) setup ;;
    test) run_tests ;;
    run) shift; run_cmd "$@" ;;
    *) echo "usage: $0 [setup|test|run CMD...]" >&2; exit 2 ;;
esac
