#!/usr/bin/env bash
# The launcher's network namespaces (net/launch.py, Netns): two peers' namespaces on one bridge, the
# sender's upload 20 Mb/s (tbf at 20 / TBF_TCP_SHARE, so that one TCP stream gets 20); a 5 MB TCP
# transfer between them must run at 18-22 Mb/s (timed by the receiver from its first byte to the
# end, so that the start of the processes under a loaded CI machine is not counted: counted, it gave
# 16.6 Mb/s there), and the namespaces and bridge must be gone afterwards.
# Needs root (ip netns, tc), as `crowdtrain launch` does for shaping; fails without it.
# usage: launch_shaping_test.sh <repo root>
set -u
ROOT=${1:?usage: launch_shaping_test.sh <repo root>}
PY=/usr/bin/python3
[ -x "$PY" ] || PY=python3
if [ "$(id -u)" -ne 0 ]; then
  echo "launch_shaping_test: FAIL: needs root (ip netns and tc), as the launcher's shaping does" >&2
  exit 1
fi
TAG=$(( $$ % 100000 ))
PYTHONPATH="$ROOT/net" timeout 60 "$PY" - "$TAG" <<'PYEOF'
import subprocess, sys, time
import launch
net = launch.Netns(2, {"seed": 1, "network": {"upload_mbps": 20, "download_mbps": 100}}, sys.argv[1])
net.setup()
try:
    server = subprocess.Popen(
        ["ip", "netns", "exec", net.ns(1), sys.executable, "-c",
         "import socket\ns = socket.socket()\ns.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)\n"
         f"s.bind(('{net.ip(1)}', 5999))\ns.listen()\nc, _ = s.accept()\n"
         "import time\nn = len(c.recv(65536))\nt0 = time.monotonic()\n"
         "while True:\n    d = c.recv(65536)\n    if not d: break\n    n += len(d)\n"
         "print(n, time.monotonic() - t0)"],
        stdout=subprocess.PIPE, text=True)
    time.sleep(0.5)
    subprocess.run(["ip", "netns", "exec", net.ns(0), sys.executable, "-c",
                    f"import socket\ns = socket.create_connection(('{net.ip(1)}', 5999))\n"
                    "s.sendall(b'x' * 5000000)\ns.close()"], check=True, timeout=30)
    received, seconds = server.communicate(timeout=30)[0].split()
    received = int(received)
    mbps = received * 8 / float(seconds) / 1e6
finally:
    net.teardown()
left = subprocess.run(["ip", "netns", "list"], stdout=subprocess.PIPE, text=True).stdout
print(f"{received} bytes at {mbps:.1f} Mb/s through a link of 20 Mb/s")
bad = []
if received != 5000000 or not 18 <= mbps <= 22:
    bad.append("the transfer did not run at the shaped rate")
if net.ns(0) in left or net.ns(1) in left:
    bad.append("namespaces left behind")
for b in bad:
    print("launch_shaping_test: FAIL: " + b, file=sys.stderr)
sys.exit(1 if bad else 0)
PYEOF
