#!/usr/bin/env bash
# The arm64 check: does the base install (`pip install .`, no TensorFlow) give the same answers on a
# Raspberry Pi's OS as on this x86 machine?
#
#   bash tests/arm64/check.sh            # what CI runs
#
# It builds a Debian bookworm arm64 userland (Raspberry Pi OS Bookworm 64-bit is Debian bookworm
# arm64 with Python 3.11) with mmdebstrap from Debian's packages, runs it on this x86 host through
# qemu-user-static and binfmt_misc, installs the checkout into a venv there with pip, and runs
# `digits predict` on rendered digit images and `digits run --headless --format jsonl` on a short
# rendered clip, on x86 (the host venv) and on arm64, and compares the two outputs line by line.
# QEMU emulates a Cortex-A72 (the Pi 4's core) so that no instruction a Pi lacks is used; set
# DIGITS_ARM64_CPU=cortex-a76 for a Pi 5.
#
# Emulated timings say nothing about a real Pi's speed and are not reported as such.
#
# Environment (all optional):
#   DIGITS_ARM64_CACHE   where the userland is kept between runs
#                        (default ${XDG_CACHE_HOME:-$HOME/.cache}/digits-arm64)
#   DIGITS_ARM64_CPU     QEMU CPU model (default cortex-a72)
#   DIGITS_ARM64_MIRROR  Debian mirror (default http://deb.debian.org/debian)
#   DIGITS_X86_PYTHON    the x86 Python with the project installed (default: .venv/bin/python, else python3)
#   DIGITS_MNIST_DIR     MNIST for the rendered digits (default ../shared/data/mnist if present;
#                        without MNIST the digits are drawn in Hershey fonts)
#   DIGITS_ARM64_KEEP=1  keep the work folder (inputs and outputs of both architectures)
set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
REPO="$(cd "$HERE/../.." && pwd)"
SUITE=bookworm
MIRROR="${DIGITS_ARM64_MIRROR:-http://deb.debian.org/debian}"
QEMU_CPU_MODEL="${DIGITS_ARM64_CPU:-cortex-a72}"
CACHE="${DIGITS_ARM64_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/digits-arm64}"
# Python 3.11 with venv, as on Raspberry Pi OS; the X11/GL/GLib libraries that the opencv-python
# wheel links (`import cv2` fails without them: Pi OS Lite needs the same apt line, see the README);
# and the shell tools the check itself runs in there.
# python3-numpy: Debian's NumPy 1.24, which apt's Picamera2 is built against (the "Pi route" below).
PACKAGES="python3,python3-venv,python3-numpy,libgl1,libglib2.0-0,libsm6,libxext6,bash,coreutils,dash,libc-bin"
# 'extract' unpacks the packages (and their dependencies) without running their maintainer scripts:
# under emulation those take 4-8 minutes (update-ca-certificates alone forks a QEMU per certificate),
# and nothing this check uses depends on them except the linker cache, which we build with ldconfig.
VARIANT=extract
USERLAND_RECIPE="v3 $SUITE arm64 $MIRROR $VARIANT $PACKAGES"
HOST_PACKAGES=(mmdebstrap qemu-user-static)
MODELS=(cnn_int8.tflite cnn_float32.tflite cnn_int8.onnx cnn_float32.onnx)  # every runtime, both precisions
# `digits predict` with one model per runtime (each process costs ~10 s to start under emulation);
# probe.py reads all four models in one process, bit for bit.
PREDICT_MODELS=(cnn_int8.tflite cnn_float32.onnx)
# `digits run` is slower under emulation: one model per runtime on the lossless clip, and the default
# model on the MJPG clip (compared on what a user reads: see compare.py).
RUN_MODELS=(cnn_int8.tflite cnn_float32.onnx)
# What the Pi route (apt NumPy 1.x, `pip install . "numpy<2"`) is compared on.
PI_ROUTE_FILES="predict-cnn_int8.tflite.jsonl predict-cnn_float32.onnx.jsonl run-cnn_int8.tflite.jsonl"
CLIP_FRAMES=48

START=$SECONDS
say() { printf '[arm64 %4ds] %s\n' "$((SECONDS - START))" "$*"; }
fail() { printf 'arm64 check: FAIL: %s\n' "$*" >&2; exit 1; }

# ---------------------------------------------------------------- host requirements
[ "$(uname -s)" = Linux ] || fail "needs Linux (binfmt_misc and chroot); this is $(uname -s)"
if [ "$(id -u)" -ne 0 ]; then
    # chroot, mounts and binfmt registration need root; re-run under sudo when it asks no password.
    if command -v sudo >/dev/null && sudo -n true 2>/dev/null; then
        exec sudo -n --preserve-env=DIGITS_ARM64_CACHE,DIGITS_ARM64_CPU,DIGITS_ARM64_MIRROR,DIGITS_X86_PYTHON,DIGITS_MNIST_DIR,DIGITS_ARM64_KEEP,CI \
            bash "$0" "$@"
    fi
    fail "needs root (chroot, mounts, binfmt_misc): run it as root or with passwordless sudo"
fi

missing=()
command -v mmdebstrap >/dev/null || missing+=(mmdebstrap)
[ -e /usr/libexec/qemu-binfmt/aarch64-binfmt-P ] || [ -e /usr/bin/qemu-aarch64-static ] || missing+=(qemu-user-static)
if [ ${#missing[@]} -gt 0 ]; then
    command -v apt-get >/dev/null || fail "missing ${missing[*]} and no apt-get to install them: install them by hand"
    say "installing host packages: ${missing[*]}"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq >/dev/null || fail "apt-get update failed: check the network to the Debian mirror"
    apt-get install -y -qq --no-install-recommends "${HOST_PACKAGES[@]}" >/dev/null \
        || fail "apt-get install ${HOST_PACKAGES[*]} failed"
fi

# binfmt_misc lets the kernel hand aarch64 programs to QEMU, including every program started inside
# the userland. The F flag (qemu-user-static registers with it) keeps the interpreter usable in a chroot.
ensure_binfmt() {
    local node=/proc/sys/fs/binfmt_misc
    if [ ! -e "$node/register" ]; then
        mount -t binfmt_misc binfmt_misc "$node" 2>/dev/null \
            || fail "binfmt_misc is not available and cannot be mounted (a container without it?): run on a VM or host where 'mount -t binfmt_misc binfmt_misc $node' works"
    fi
    if [ ! -e "$node/qemu-aarch64" ]; then
        update-binfmts --enable qemu-aarch64 2>/dev/null || true
    fi
    if [ ! -e "$node/qemu-aarch64" ]; then
        local interpreter=/usr/libexec/qemu-binfmt/aarch64-binfmt-P
        [ -e "$interpreter" ] || interpreter=/usr/bin/qemu-aarch64-static
        # The magic and mask of an aarch64 ELF executable, as Debian's qemu-user-static registers them.
        printf '%s' ":qemu-aarch64:M::\x7fELF\x02\x01\x01\x00\x00\x00\x00\x00\x00\x00\x00\x00\x02\x00\xb7\x00:\xff\xff\xff\xff\xff\xff\xff\x00\xff\xff\xff\xff\xff\xff\xff\xff\xfe\xff\xff\xff:$interpreter:PF" \
            > "$node/register" 2>/dev/null || fail "cannot register qemu-aarch64 with binfmt_misc (no permission to write $node/register)"
    fi
    grep -q '^enabled' "$node/qemu-aarch64" || fail "binfmt_misc has qemu-aarch64 registered but disabled: echo 1 > $node/qemu-aarch64"
}
ensure_binfmt

# ---------------------------------------------------------------- x86 side
X86_PYTHON="${DIGITS_X86_PYTHON:-}"
if [ -z "$X86_PYTHON" ]; then
    if [ -x "$REPO/.venv/bin/python" ]; then X86_PYTHON="$REPO/.venv/bin/python"; else X86_PYTHON=python3; fi
fi
"$X86_PYTHON" -c "import edge_app.cli" 2>/dev/null \
    || fail "$X86_PYTHON cannot import edge_app: install the project on the host first (pip install .)"
if [ -z "${DIGITS_MNIST_DIR:-}" ] && [ -d "$REPO/../shared/data/mnist" ]; then
    export DIGITS_MNIST_DIR="$REPO/../shared/data/mnist"
fi
for model in "${MODELS[@]}"; do
    [ -f "$REPO/models/$model" ] || fail "models/$model is missing: export the models first (digits export)"
done

WORK="$(mktemp -d "${TMPDIR:-/tmp}/digits-arm64.XXXXXX")"
cleanup() { if [ "${DIGITS_ARM64_KEEP:-0}" = 1 ]; then say "kept $WORK"; else rm -rf "$WORK"; fi; }
trap cleanup EXIT

# Both architectures run the same commands from a folder with the same layout (inputs/ and models/),
# so paths in their outputs are identical text.
mkdir -p "$WORK/case/models" "$WORK/out-x86" "$WORK/out-arm64"
(cd "$REPO" && "$X86_PYTHON" "$HERE/render_inputs.py" "$WORK/case/inputs" --clip_frames "$CLIP_FRAMES") \
    | sed 's/^/    /' || fail "rendering the test inputs failed"
for model in "${MODELS[@]}"; do cp "$REPO/models/$model" "$WORK/case/models/"; done
cp "$HERE/probe.py" "$WORK/case/"

RUN_MODELS_NOW="${RUN_MODELS[*]}"
if [ ! -f "$REPO/edge_app/run.py" ]; then
    say "NOTE: edge_app/run.py is not in this checkout yet: comparing digits predict only"
    RUN_MODELS_NOW=""
fi
# The commands both architectures run: $1 is the python of that side, $2 its output folder.
# `python -m edge_app` is the `digits` console command without depending on where it was installed.
cat > "$WORK/case/commands.sh" <<EOF
set -eu
py="\$1"; out="\$2"; plan="\$3"
RUN_MODELS="$RUN_MODELS_NOW"
cd "\$(dirname "\$0")"
images=\$(ls inputs/digits/*.png)
predict() { "\$py" -m edge_app predict \$images --model "models/\$1" --format json > "\$out/predict-\$1.jsonl"; }
run() {  # \$1 model, \$2 clip, \$3 output name
    "\$py" -m edge_app run --source "inputs/\$2" --headless --format jsonl --max_frames $CLIP_FRAMES \\
        --model "models/\$1" > "\$out/\$3-\$1.jsonl"
}
if [ "\$plan" = full ]; then
    for model in ${PREDICT_MODELS[*]}; do predict "\$model"; done
    for model in \$RUN_MODELS; do run "\$model" clip_lossless.mkv run; done
    if [ -n "\$RUN_MODELS" ]; then run ${MODELS[0]} clip.avi readout; fi
    "\$py" probe.py \$(printf 'models/%s ' ${MODELS[*]}) -- \$images > "\$out/probe.jsonl"
else  # the Pi route: the files named in PI_ROUTE_FILES
    for file in $PI_ROUTE_FILES; do
        name="\${file%.jsonl}"
        case "\$name" in
            predict-*) predict "\${name#predict-}" ;;
            run-*) if [ -n "\$RUN_MODELS" ]; then run "\${name#run-}" clip_lossless.mkv run; fi ;;
        esac
    done
fi
EOF

say "x86: running the commands with $X86_PYTHON"
x86_start=$SECONDS
(cd "$REPO" && PYTHONPATH="$REPO" bash "$WORK/case/commands.sh" "$X86_PYTHON" "$WORK/out-x86" full) \
    || fail "the commands failed on x86 (see above): fix them there first"
say "x86: done in $((SECONDS - x86_start)) s"

# ---------------------------------------------------------------- arm64 userland (cached)
recipe_key="$(printf '%s' "$USERLAND_RECIPE" | sha256sum | cut -c1-16)"
ROOT="$CACHE/userland-$recipe_key"
mkdir -p "$CACHE"
exec 9>"$CACHE/.lock"
flock 9  # one check at a time per cache: a second run waits rather than sharing a half-built userland

if [ ! -x "$ROOT/usr/bin/python3" ]; then
    say "building the $SUITE arm64 userland with mmdebstrap (cold: about a minute; cached afterwards in $ROOT)"
    build_start=$SECONDS
    # Userlands of older recipes are dead weight (about 600 MB each): drop them.
    find "$CACHE" -mindepth 1 -maxdepth 1 -name 'userland-*' -exec rm -rf {} +
    mmdebstrap --quiet --arch=arm64 --variant="$VARIANT" --include="$PACKAGES" \
        --dpkgopt='path-exclude=/usr/share/doc/*' --dpkgopt='path-exclude=/usr/share/man/*' \
        --dpkgopt='path-exclude=/usr/share/locale/*' \
        "$SUITE" "$ROOT.partial" "$MIRROR" \
        || fail "mmdebstrap could not build the $SUITE arm64 userland (network to $MIRROR? binfmt?)"
    mv "$ROOT.partial" "$ROOT"  # only a complete userland ever appears under its cache name
    say "userland built in $((SECONDS - build_start)) s"
else
    say "using the cached userland $ROOT"
fi

# Run a command inside the userland, in a private mount namespace so nothing leaks onto the host.
# /sys: onnxruntime's CPU probe crashes on import when it sees the host's /sys under emulation, and
# works with a tmpfs holding just the CPU lists it reads.
in_arm64() {
    unshare --mount --propagation private -- bash -euc '
        root=$1; shift
        mount -t proc proc "$root/proc"
        mount -t tmpfs -o size=1m,mode=755 sys "$root/sys"
        mkdir -p "$root/sys/devices/system/cpu"
        for list in possible present online; do
            cat "/sys/devices/system/cpu/$list" > "$root/sys/devices/system/cpu/$list"
        done
        mount --bind /dev "$root/dev"
        mount -t tmpfs -o mode=1777 tmp "$root/tmp"
        exec chroot "$root" /usr/bin/env -i PATH=/usr/local/bin:/usr/bin:/bin HOME=/root LANG=C.UTF-8 \
            QEMU_CPU="$QEMU_CPU" PIP_CERT=/etc/digits-host-ca.crt PIP_DISABLE_PIP_VERSION_CHECK=1 \
            PIP_DEFAULT_TIMEOUT=180 PIP_NO_INPUT=1 PYTHONDONTWRITEBYTECODE=1 \
            ${HTTPS_PROXY:+HTTPS_PROXY=$HTTPS_PROXY} ${HTTP_PROXY:+HTTP_PROXY=$HTTP_PROXY} \
            ${https_proxy:+https_proxy=$https_proxy} ${http_proxy:+http_proxy=$http_proxy} \
            ${NO_PROXY:+NO_PROXY=$NO_PROXY} ${no_proxy:+no_proxy=$no_proxy} \
            "$@"
    ' _ "$ROOT" "$@"
}
export QEMU_CPU="$QEMU_CPU_MODEL"

arch="$(in_arm64 uname -m 2>&1)" || fail "cannot run programs in the arm64 userland ($arch): binfmt_misc/qemu-aarch64 not working"
[ "$arch" = aarch64 ] || fail "the userland reports machine '$arch', expected aarch64"
# What the skipped maintainer scripts would have done that matters here: the BLAS/LAPACK alternatives
# (Debian's NumPy loads libblas.so.3 through them) and the linker cache (libc-bin's trigger).
multiarch="$ROOT/usr/lib/aarch64-linux-gnu"
for lib in blas lapack; do
    if [ -e "$multiarch/$lib/lib$lib.so.3" ] && [ ! -e "$multiarch/lib$lib.so.3" ]; then
        ln -s "$lib/lib$lib.so.3" "$multiarch/lib$lib.so.3"
        rm -f "$ROOT/etc/ld.so.cache"
    fi
done
[ -f "$ROOT/etc/ld.so.cache" ] || in_arm64 /sbin/ldconfig
# pip in the userland must trust the same certificate authorities as this host (a proxy may re-sign TLS).
for bundle in "${PIP_CERT:-}" "${SSL_CERT_FILE:-}" /etc/ssl/certs/ca-certificates.crt; do
    if [ -n "$bundle" ] && [ -f "$bundle" ]; then cp "$bundle" "$ROOT/etc/digits-host-ca.crt"; break; fi
done
cp -L /etc/resolv.conf "$ROOT/etc/resolv.conf" 2>/dev/null || true

# ---------------------------------------------------------------- install the checkout on arm64
# The files git would commit (tracked and new, not ignored), so a stale .venv or build/ never travels.
rm -rf "$ROOT/work" && mkdir -p "$ROOT/work/src"
(cd "$REPO" && git ls-files -z --cached --others --exclude-standard \
    | while IFS= read -r -d '' path; do [ -e "$path" ] && printf '%s\0' "$path"; done \
    | tar --null -T - -cf -) | tar -xf - -C "$ROOT/work/src"
cp -r "$WORK/case" "$ROOT/work/case"
mkdir -p "$ROOT/work/out"

# The venv is kept with the userland and rebuilt when the project's dependencies change; the project
# itself is reinstalled every run with the same `pip install .` a Pi user types.
deps_key="$( (sed -n '/^dependencies/,/^]/p' "$REPO/pyproject.toml"; echo "$recipe_key") | sha256sum | cut -c1-12)"
VENV="/opt/digits-venv-$deps_key"
install_start=$SECONDS
if [ ! -f "$ROOT$VENV/.ready" ]; then
    say "arm64: creating $VENV (the first pip install . then fetches the aarch64 wheels: about 2 minutes)"
    rm -rf "$ROOT"/opt/digits-venv-*
    in_arm64 python3 -m venv "$VENV"
    # setuptools in the venv lets `pip install --no-build-isolation .` skip a build env per run.
    in_arm64 "$VENV/bin/pip" install --quiet "setuptools>=68" wheel \
        || fail "pip in the arm64 userland cannot reach the package index (network? CA bundle?)"
    touch "$ROOT$VENV/.ready"
fi
# Pin the runtime packages to the x86 side's versions, so the comparison is between architectures,
# not between releases. (A Pi user's plain `pip install .` gets the newest; so did these, when built.)
"$X86_PYTHON" -c "
from importlib.metadata import version, PackageNotFoundError
for name in ('numpy', 'opencv-python', 'ai-edge-litert', 'onnxruntime'):
    try:
        print(f'{name}=={version(name)}')
    except PackageNotFoundError:
        pass" > "$ROOT/work/x86-versions.txt"
say "arm64: pip install . (the base install, no TensorFlow), pinned to x86's $(tr '\n' ' ' < "$ROOT/work/x86-versions.txt")"
if ! in_arm64 bash -c "cd /work/src && $VENV/bin/pip install --quiet --no-build-isolation \
        --constraint /work/x86-versions.txt . 2>&1" | sed 's/^/    /'; then
    fail "pip install . failed on arm64 (above); if an x86 version has no aarch64 wheel, align the host venv"
fi
in_arm64 "$VENV/bin/python" -c "import importlib.util, sys; sys.exit(importlib.util.find_spec('tensorflow') is not None)" \
    || fail "TensorFlow got into the arm64 base install: the base dependencies must not pull it in"
versions="$(in_arm64 "$VENV/bin/python" -c "
import platform
from importlib.metadata import version
print(platform.machine(), 'Python', platform.python_version(), *(f'{n} {version(n)}' for n in
      ('numpy', 'opencv-python', 'ai-edge-litert', 'onnxruntime')))")"
say "arm64: installed in $((SECONDS - install_start)) s: $versions"

# ---------------------------------------------------------------- run and compare
# onnxruntime warns once per process that it does not know QEMU's CPU vendor: true, and harmless.
quiet_qemu_noise() { { grep -v "cpuid_info warning: Unknown CPU vendor" || true; } >&2; }

say "arm64: running the commands under qemu-aarch64 -cpu $QEMU_CPU_MODEL (emulated: slow by design)"
arm_start=$SECONDS
# cd to / first: the checkout's own edge_app/ must not shadow the installed one; we test the install.
in_arm64 bash -c "cd / && bash /work/case/commands.sh $VENV/bin/python /work/out full" 2> >(quiet_qemu_noise) \
    || fail "the commands failed on arm64 (see above)"
cp "$ROOT"/work/out/*.jsonl "$WORK/out-arm64/"
say "arm64: done in $((SECONDS - arm_start)) s (emulated time, not a Raspberry Pi figure)"

say "comparing x86 and arm64 outputs"
verdicts=()
if "$X86_PYTHON" "$HERE/compare.py" "$WORK/out-x86" "$WORK/out-arm64"; then
    verdicts+=("base install: same answers")
else
    verdicts+=("base install: DIFFERENT answers")
fi

# ---------------------------------------------------------------- the Pi route (Picamera2 users)
# Picamera2 comes from apt and is built against Debian's NumPy 1.24, so the README tells Pi users to
# make a --system-site-packages venv and `pip install . "numpy<2"`: apt's NumPy, and whichever
# OpenCV/LiteRT releases still support it. Check that this resolves, installs and gives the same answers.
PI_VENV="/opt/digits-pi-venv-$deps_key"
pi_start=$SECONDS
if [ ! -d "$ROOT$PI_VENV" ]; then
    # No pip of its own (ensurepip under emulation takes a minute): the base venv's pip installs into it.
    rm -rf "$ROOT"/opt/digits-pi-venv-*
    in_arm64 python3 -m venv --without-pip --system-site-packages "$PI_VENV"
fi
say "arm64, Pi route: pip install . \"numpy<2\" into a --system-site-packages venv (apt's NumPy)"
# The wheel of the checkout that the base venv's `pip install .` built (pip wheel . builds the same
# one), so this venv needs no build backend of its own.
if ! in_arm64 bash -c "cd /work/src && $VENV/bin/pip wheel --quiet --no-deps --no-build-isolation -w /work/wheel . \
        && $VENV/bin/pip --python $PI_VENV/bin/python install --quiet --force-reinstall --no-deps /work/wheel/*.whl \
        && $VENV/bin/pip --python $PI_VENV/bin/python install --quiet /work/wheel/*.whl 'numpy<2' 2>&1" | sed 's/^/    /'; then
    fail "pip install . 'numpy<2' failed on arm64 (above): the README's Picamera2 route is broken"
fi
pi_versions="$(in_arm64 "$PI_VENV/bin/python" -c "
from importlib.metadata import version
print(*(f'{n} {version(n)}' for n in ('numpy', 'opencv-python', 'ai-edge-litert', 'onnxruntime')))")"
mkdir -p "$ROOT/work/out-pi" "$WORK/out-x86-pi" "$WORK/out-arm64-pi"
in_arm64 bash -c "cd / && bash /work/case/commands.sh $PI_VENV/bin/python /work/out-pi pi" 2> >(quiet_qemu_noise) \
    || fail "the commands failed on arm64 in the Pi-route venv ($pi_versions; see above)"
for file in $PI_ROUTE_FILES; do
    if [ -f "$WORK/out-x86/$file" ]; then cp "$WORK/out-x86/$file" "$WORK/out-x86-pi/"; fi
done
cp "$ROOT"/work/out-pi/*.jsonl "$WORK/out-arm64-pi/"
say "arm64, Pi route: $pi_versions; installed and run in $((SECONDS - pi_start)) s"
if "$X86_PYTHON" "$HERE/compare.py" "$WORK/out-x86-pi" "$WORK/out-arm64-pi"; then
    verdicts+=("Pi route (numpy<2): same answers")
else
    verdicts+=("Pi route (numpy<2): DIFFERENT answers")
fi

summary="$(IFS=';'; echo "${verdicts[*]}" | sed 's/;/; /g')"
if [[ "$summary" == *DIFFERENT* ]]; then
    fail "$summary (QEMU $QEMU_CPU_MODEL; details above; DIGITS_ARM64_KEEP=1 keeps the outputs)"
fi
printf 'arm64 check: PASS: %s (QEMU %s; base: %s) in %d s\n' "$summary" "$QEMU_CPU_MODEL" "$versions" "$((SECONDS - START))"
