#!/usr/bin/env bash
# gangflash developer entry point: one script sets everything up, then runs the job asked for.
#   ./dev.sh demo    set up, then run the main job on simulated boards
#   ./dev.sh test    set up, then run the whole test suite (what CI runs)
#   ./dev.sh setup   set up only
# Needs only Python 3.11+ and pip. Debian packages the tests need are installed with apt-get when
# missing and we are root (CI runs as root); otherwise the script says what to install.
set -euo pipefail
cd "$(dirname "$0")"

PY=${PYTHON:-python3}
VENV=.venv
APT_PACKAGES=(binutils-arm-none-eabi umockdev gir1.2-umockdev-1.0 libgirepository1.0-dev libcairo2-dev pkg-config openocd stlink-tools)

log() { printf '[dev.sh] %s\n' "$*" >&2; }

need_apt() {
    local missing=()
    for p in "${APT_PACKAGES[@]}"; do
        dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
    done
    printf '%s\n' "${missing[@]}"
}

setup_system() {
    command -v dpkg-query >/dev/null 2>&1 || { log "not a Debian system: install ${APT_PACKAGES[*]} by hand"; return 0; }
    mapfile -t missing < <(need_apt | sed '/^$/d')
    [ ${#missing[@]} -eq 0 ] && return 0
    if [ "$(id -u)" = 0 ]; then
        log "installing Debian packages: ${missing[*]}"
        export DEBIAN_FRONTEND=noninteractive
        apt-get update -qq
        apt-get install -y -qq "${missing[@]}" >/dev/null
    else
        log "missing Debian packages (run as root or: sudo apt-get install ${missing[*]})"
        [ "${CI:-}" = true ] && { log "CI needs them"; exit 1; }
    fi
}

setup_python() {
    if [ ! -x "$VENV/bin/python" ]; then
        log "creating $VENV"
        "$PY" -m venv "$VENV"
    fi
    local stamp="$VENV/.installed" extras
    extras=$(pip_extras)
    # Reinstall when pyproject changed or the extras did (e.g. the -dev packages appeared).
    if [ ! -f "$stamp" ] || [ pyproject.toml -nt "$stamp" ] || [ "$(cat "$stamp")" != "$extras" ]; then
        log "installing gangflash[$extras] into $VENV"
        "$VENV/bin/python" -m pip install -q --upgrade pip
        "$VENV/bin/python" -m pip install -q -e ".[$extras]"
        echo "$extras" > "$stamp"
    fi
}

# USB tests (libusb backend) and `gangflash sim exec`: PyGObject, in the "usb-tests" and
# "sim-exec" extras, builds from source (~20 s) against GObject introspection and cairo headers
# (libgirepository1.0-dev, libcairo2-dev, from APT_PACKAGES). Install those extras only where they
# are present, so a machine without them can still set up and run the demo; the USB and sim exec
# tests then skip (and fail in CI, see tests/conftest.py).
pip_extras() {
    if command -v pkg-config >/dev/null 2>&1 && pkg-config --exists gobject-introspection-1.0 cairo; then
        echo "test,usb-tests,sim-exec"
    else
        echo "test"
    fi
}

# Two pytest runs: everything but the USB tests, then the USB tests (marker "usb") under
# umockdev's preload, which must be in the process from its start (umockdev-wrapper). Either
# failing fails the script. pytest's exit 5 ("no tests ran", e.g. a path selecting no test of
# one kind) is fine for one run as long as the other ran tests. Arguments with their own -m run
# once, under the preload.
run_tests() {
    local wrapper=() rc_main=0 rc_usb=0
    if command -v umockdev-wrapper >/dev/null 2>&1; then
        wrapper=(umockdev-wrapper)
    else
        log "umockdev-wrapper not found: USB tests will skip (apt-get install umockdev)"
    fi
    case " $* " in
        *" -m "*) "${wrapper[@]}" "$VENV/bin/python" -m pytest "$@"; return ;;
    esac
    "$VENV/bin/python" -m pytest -m "not usb" "$@" || rc_main=$?
    "${wrapper[@]}" "$VENV/bin/python" -m pytest -m usb "$@" || rc_usb=$?
    if [ "$rc_main" = 5 ] && [ "$rc_usb" = 5 ]; then return 5; fi
    [ "$rc_main" = 5 ] && rc_main=0
    [ "$rc_usb" = 5 ] && rc_usb=0
    [ "$rc_main" != 0 ] && return "$rc_main"
    return "$rc_usb"
}

cmd=${1:-test}
shift || true
case "$cmd" in
    setup)
        setup_system; setup_python ;;
    test)
        setup_system; setup_python
        run_tests "$@" ;;
    demo)
        setup_python
        exec "$VENV/bin/gangflash" run configs/demo.toml "$@" ;;
    *)
        echo "usage: ./dev.sh [setup|test|demo] [args...]" >&2; exit 2 ;;
esac
