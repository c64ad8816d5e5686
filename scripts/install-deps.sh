#!/usr/bin/env bash
# Installs what huatuo-bamai needs on Debian (as root), only when missing.
#   scripts/install-deps.sh build   clang-19, llvm-19 (llvm-strip), libbpf-dev
#   scripts/install-deps.sh test    build deps + bpftool, promtool (prometheus), gdb, iproute2,
#                                   e2fsprogs, python3, iptables, golang-go (go tool pprof), gcc,
#                                   chromium, systemd (systemd-analyze), kubernetes-client (kubectl),
#                                   curl,
#                                   python3-pip, and from PyPI osmem-server (an in-memory
#                                   OpenSearch-compatible server) and grafana-foundation-sdk
#                                   (Grafana's dashboard schema models), PyYAML, and
#                                   arize-phoenix (an OpenTelemetry trace store) and rotel (a
#                                   collector) in /opt/phoenix
set -euo pipefail

profile="${1:-build}"
missing=()

# The Rust toolchain comes from rustup, not apt (Debian's rustc is too old for the dependencies).
if ! command -v cargo >/dev/null 2>&1; then
    echo "cargo not found: install Rust >= 1.95 with rustup (https://rustup.rs), then re-run." >&2
    exit 1
fi
rust_minor=$(rustc --version | sed -E 's/^rustc 1\.([0-9]+).*/\1/')
if [[ "$rust_minor" =~ ^[0-9]+$ ]] && ((rust_minor < 95)); then
    echo "rustc $(rustc --version) is too old: Rust >= 1.95 is required (rustup update)." >&2
    exit 1
fi
need() { # need COMMAND-OR-FILE PACKAGE
    if [[ "$1" == /* ]]; then [[ -e "$1" ]] || missing+=("$2"); else command -v "$1" >/dev/null 2>&1 || missing+=("$2"); fi
}

need clang-19 clang-19
need llvm-strip-19 llvm-19
need /usr/include/bpf/bpf_helpers.h libbpf-dev
if [[ "$profile" == test ]]; then
    need bpftool bpftool
    need promtool prometheus
    need gdb gdb
    need ip iproute2
    # tests/bpf_events.rs: an ext4 on a loop device to freeze (hungtask), an allocator (oom).
    need mkfs.ext4 e2fsprogs
    need python3 python3
    # tests/bpf_dropwatch.rs: a DROP rule inside a network namespace.
    need iptables iptables
    # tests/kubelet_https.rs: the test certificates.
    need openssl openssl
    # tests/pprof.rs, tests/pyroscope*.rs: `go tool pprof`, the independent pprof decoder.
    need go golang-go
    # tests/bpf_profile.rs: test programs built with frame pointers, the SVG in headless Chromium.
    need gcc gcc
    need /usr/bin/chromium chromium
    # tests/packaging.rs: `systemd-analyze verify` of the unit, `kubectl kustomize` of the base.
    need systemd-analyze systemd
    need kubectl kubernetes-client
    # scripts/stack.sh (`make stack`, tests/stack.rs): waits for its services over HTTP.
    need curl curl
    # tests/es_sink.rs: osmem-server comes from PyPI, so pip is needed.
    python3 -m pip --version >/dev/null 2>&1 || missing+=(python3-pip)
    # tests/nettrace.rs: Arize Phoenix goes into a venv of its own.
    python3 -c 'import ensurepip, venv' >/dev/null 2>&1 || missing+=(python3-venv)
fi

# PyPI packages of the tests: osmem-server 0.1.6 (tests/es_sink.rs), an in-memory
# OpenSearch-compatible server (a static binary inside the wheel; the test finds it through
# `import osmem_server`); grafana-foundation-sdk (tests/dashboards.rs decodes our dashboards with
# Grafana's own schema models).
pip_install() { # pip_install MODULE REQUIREMENT
    python3 -c "import $1" >/dev/null 2>&1 && return 0
    echo "installing: $2 (pip)" >&2
    # Debian's own python refuses installs without --break-system-packages (PEP 668).
    python3 -m pip install -q --root-user-action=ignore --break-system-packages "$2" \
        || python3 -m pip install -q "$2"
}
install_pip_packages() {
    [[ "$profile" == test ]] || return 0
    pip_install osmem_server osmem-server==0.1.6
    pip_install grafana_foundation_sdk 'grafana-foundation-sdk==1769699998!10.1.0'
    # tests/packaging.rs turns `kubectl kustomize` output into JSON with PyYAML.
    pip_install yaml 'PyYAML>=6'
    # tests/nettrace.rs: Arize Phoenix, an OpenTelemetry trace store (OTLP receivers, REST
    # queries), and rotel, an OpenTelemetry collector (a Rust binary in its wheel) in front of
    # it. Phoenix is large (its own pins of fastapi, sqlalchemy, numpy...), so a venv of its
    # own keeps them away from the packages above; the test looks in /opt/phoenix.
    if [[ ! -x /opt/phoenix/bin/phoenix ]]; then
        echo "installing: arize-phoenix (pip, venv /opt/phoenix)" >&2
        python3 -m venv /opt/phoenix
        /opt/phoenix/bin/pip install -q 'arize-phoenix==20.26.1'
    fi
    if ! /opt/phoenix/bin/python3 -c 'import rotel' >/dev/null 2>&1; then
        echo "installing: rotel (pip, venv /opt/phoenix)" >&2
        /opt/phoenix/bin/pip install -q 'rotel==0.0.1a15'
    fi
}

if ((${#missing[@]} == 0)); then
    install_pip_packages
    exit 0
fi
if [[ $(id -u) -ne 0 ]]; then
    echo "missing packages: ${missing[*]}; run as root or: sudo apt-get install -y ${missing[*]}" >&2
    exit 1
fi
echo "installing: ${missing[*]}" >&2
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
# --no-install-recommends keeps prometheus from pulling in extra services.
apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
# Debian's prometheus package starts a server on :9090 where systemd runs; tests start their own.
if [[ " ${missing[*]} " == *" prometheus "* ]] && command -v systemctl >/dev/null 2>&1; then
    systemctl disable --now prometheus >/dev/null 2>&1 || true
fi
install_pip_packages
