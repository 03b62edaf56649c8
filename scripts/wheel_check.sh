#!/usr/bin/env bash
# The package as a user gets it: build the sdist, build the wheel from that sdist (so a file
# the sdist leaves out fails here), install the wheel into a fresh virtual environment beside
# the locked dependencies, and run it from outside the checkout: `telesurgery --version`, the
# Foxglove layout, then a 5 s headless demo. Needs .venv (scripts/setup.sh): its setuptools
# builds, its pip installs. Writes under out/wheel/.
set -euo pipefail
cd "$(dirname "$0")/.."
root=$PWD
out=$root/out/wheel
rm -rf "$out"
mkdir -p "$out/dist" "$out/run"

# The PEP 517 hooks of the locked setuptools, called directly: no build frontend to install.
# Their file-by-file chatter goes to a log, kept for when a build fails.
build() {
  "$root/.venv/bin/python" - "$1" "$out/dist" >>"$out/build.log" <<'PY'
import sys
from setuptools import build_meta
hook = {"sdist": build_meta.build_sdist, "wheel": build_meta.build_wheel}[sys.argv[1]]
print(sys.argv[1], hook(sys.argv[2]), file=sys.stderr)
PY
}
build sdist
tar -xzf "$out"/dist/telesurgery-*.tar.gz -C "$out"
(cd "$out"/telesurgery-*/ && build wheel)

# Every data file of the package (web page, link profiles, layouts) is in the wheel.
.venv/bin/python - "$out"/dist/telesurgery-*.whl <<'PY'
import sys
import zipfile
from pathlib import Path

names = set(zipfile.ZipFile(sys.argv[1]).namelist())
src = Path("src")
data = {str(p.relative_to(src)) for p in (src / "telesurgery").rglob("*")
        if p.is_file() and p.suffix not in (".py", ".pyc")}
missing = sorted(data - names)
sys.exit(f"the wheel lacks {', '.join(missing)}: add them to package-data" if missing else 0)
PY

python3 -m venv --without-pip "$out/venv"
pip=(.venv/bin/python -m pip --python "$out/venv/bin/python")
"${pip[@]}" install -q --require-hashes -r requirements.lock
"${pip[@]}" install -q --no-deps "$out"/dist/telesurgery-*.whl
# The wheel's own dependencies must be what the lock installed: nothing missing, no clash.
"${pip[@]}" check

# From outside the checkout, so nothing of src/ can stand in for the installed package.
cd "$out/run"
"$out/venv/bin/telesurgery" --version
"$out/venv/bin/telesurgery" record --write-layout layout.json
# No --summary: the table and the path of the JSON, written in the work folder.
"$out/venv/bin/telesurgery" demo --headless --duration 5 --workdir work 2>&1 | tee demo.txt
grep -q "summary written to work/summary.json" demo.txt
"$out/venv/bin/python" - <<'PY'
import json
import sys

s = json.load(open("work/summary.json"))
control, video = s["control"], s.get("video", {})
ok = control["applied"] > 0 and control["rejected"] == 0 and video.get("frames", {}).get(
    "shown", 0) > 0
print(f"wheel demo: {control['applied']} commands applied, video "
      f"{video.get('frames', {}).get('shown', 0)} frames shown")
sys.exit(0 if ok else "the demo from the wheel moved nothing or showed no video")
PY
