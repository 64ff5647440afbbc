#!/usr/bin/env bash
# Set up the workbook (once) and run it or its tests.
#
#   bash workbook.sh run [PROFILE] [runner options]   set up, fetch LFW-a, run notebooks 01-06
#   bash workbook.sh test [pytest options]            set up, run the tests (notebooks: smoke)
#   bash workbook.sh setup                            only set up
#
# Setup makes a virtual environment in .venv (SIAMLIB_VENV to move it) with the pinned versions
# of environment.yml, and does nothing when that is already done. Data comes from
# $SIAMLIB_LFW_SOURCE (a local lfw2.zip or a folder with it) or else the public mirrors.
set -euo pipefail
cd "$(dirname "$0")"
venv=${SIAMLIB_VENV:-.venv}
python=${PYTHON:-python3}

setup() {
    if [ ! -x "$venv/bin/python" ]; then
        echo "Creating $venv ..."
        "$python" -m venv "$venv"
    fi
    local stamp="$venv/.workbook-installed"
    local wanted
    wanted=$(cat environment.yml pyproject.toml | sha256sum | cut -c1-16)
    if [ "$(cat "$stamp" 2>/dev/null)" = "$wanted" ]; then
        return
    fi
    echo "Installing the pinned environment (first time: a few minutes) ..."
    # environment.yml's pip section is the single list of pins; turn it into pip constraints.
    local constraints="$venv/constraints.txt"
    sed -n 's/^ *- \([A-Za-z0-9_.-]*==[^ #]*\).*/\1/p' environment.yml > "$constraints"
    "$venv/bin/python" -m pip install --quiet --upgrade pip
    "$venv/bin/python" -m pip install --quiet -c "$constraints" -e ".[notebooks,test]"
    echo "$wanted" > "$stamp"
}

command=${1:-}
shift || true
case "$command" in
    setup)
        setup
        ;;
    run)
        setup
        profile=${1:-auto}
        shift || true
        "$venv/bin/python" -m siamlib.data fetch
        # Whoever runs the whole workbook has chosen its length: no per-notebook time guard
        # (a later -p max_minutes N wins).
        "$venv/bin/python" -m siamlib.runner --profile "$profile" -p max_minutes 0 "$@"
        ;;
    test)
        setup
        "$venv/bin/python" -m pytest "$@"
        ;;
    *)
        sed -n '2,10p' "$0"
        exit 2
        ;;
esac
