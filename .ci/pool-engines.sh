#!/usr/bin/env bash
# Two extra Docker engines on this machine for the engine-pool tests (test/pool/), as remote hosts:
#   ssh: reached through OpenSSH (Debian's sshd on 127.0.0.1, a key made here) forwarding its socket;
#   tls: tcp://127.0.0.1:PORT with TLS client certificates made here with openssl.
# Each has its own socket, --data-root, --exec-root, --pidfile and bridge, --iptables=false; the
# test image is copied in with `docker save | docker load`.
#
# Not `--bridge none`: with it dockerd deletes the interface docker0 at start-up (libnetwork's
# removeDefaultBridgeInterface), which on a shared network namespace is the main engine's bridge.
# Each engine gets a bridge of its own (lempb<N>, 10.213.<N>.1/24) instead; containers use no network.
#
#   .ci/pool-engines.sh start DIR [IMAGE]   → writes DIR/pool.env (shell) and DIR/pool.json
#   .ci/pool-engines.sh stop DIR            → stops every daemon by its pid file, removes the bridges
# Needs root (dockerd), openssh-server (installed when missing), openssl.
set -euo pipefail
cmd=${1:?start|stop}
DIR=${2:?directory}
IMAGE=${3:-${LEM_TEST_IMAGE:-lem-cpu}}
as_root() { if [ "$(id -u)" -eq 0 ]; then "$@"; else sudo "$@"; fi; }

stop_pid() {
  local f=$1
  [ -f "$f" ] || return 0
  local pid; pid=$(cat "$f")
  if kill -0 "$pid" 2>/dev/null; then
    as_root kill "$pid" 2>/dev/null || true
    for _ in $(seq 30); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    kill -0 "$pid" 2>/dev/null && as_root kill -9 "$pid" 2>/dev/null || true
  fi
  rm -f "$f"
}

if [ "$cmd" = stop ]; then
  [ -d "$DIR" ] || exit 0
  stop_pid "$DIR/sshd.pid"
  stop_engine() {
    local d="$DIR/d$1"
    stop_pid "$d/docker.pid"   # a running dockerd stops its containers and its containerd
    # After a kill -9 of dockerd (the host-loss test) its containers and containerd are left running:
    # stop them by their pid files (each container's init.pid, its shim is that process's parent).
    for f in $(find "$d/exec" -name init.pid 2>/dev/null); do
      pid=$(cat "$f"); ppid=$(awk '/^PPid:/ {print $2}' "/proc/$pid/status" 2>/dev/null || true)
      as_root kill -9 "$pid" 2>/dev/null || true
      if [ -n "$ppid" ] && grep -qa containerd-shim "/proc/$ppid/cmdline" 2>/dev/null; then as_root kill -9 "$ppid" 2>/dev/null || true; fi
    done
    # and any shim of that containerd whose container was already gone (found by its -address).
    for p in /proc/[0-9]*; do
      if { tr '\0' ' ' < "$p/cmdline"; } 2>/dev/null | grep -q "^/usr/bin/containerd-shim.* -address $d/exec/containerd/"; then as_root kill -9 "${p#/proc/}" 2>/dev/null || true; fi
    done
    stop_pid "$d/exec/containerd/containerd.pid"
  }
  stop_engine 1 & stop_engine 2 & wait
  [ -f "$DIR/image" ] && docker rmi -f "$(cat "$DIR/image")" >/dev/null 2>&1 || true
  { grep -F " $DIR/" /proc/mounts || true; } | awk '{print $2}' | sort -r | while read -r m; do as_root umount -l "$m" 2>/dev/null || true; done
  for b in $(cat "$DIR/bridges" 2>/dev/null); do as_root ip link del "$b" 2>/dev/null || true; done
  as_root rm -rf "$DIR"
  exit 0
fi

[ -x /usr/sbin/sshd ] || { as_root apt-get update -qq; as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends openssh-server >/dev/null; }
mkdir -p "$DIR"
DIR=$(cd "$DIR" && pwd)
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }

start_engine() { # N, extra dockerd args…
  local n=$1; shift
  local d="$DIR/d$n" bridge="lempb${n}x$(( $$ % 10000 ))"
  mkdir -p "$d"
  as_root ip link add "$bridge" type bridge
  echo "$bridge" >> "$DIR/bridges"
  as_root ip addr add "10.213.$(( ($$ % 200) + n )).1/24" dev "$bridge"
  as_root ip link set "$bridge" up
  as_root dockerd --host "unix://$d/docker.sock" "$@" --data-root "$d/data" --exec-root "$d/exec" --pidfile "$d/docker.pid" --shutdown-timeout 1 \
    --bridge "$bridge" --iptables=false --ip6tables=false --ip-masq=false >"$d/dockerd.log" 2>&1 &
  for _ in $(seq 150); do docker -H "unix://$d/docker.sock" version >/dev/null 2>&1 && break; sleep 0.2; done
  docker -H "unix://$d/docker.sock" version >/dev/null || { tail -20 "$d/dockerd.log"; exit 1; }
  docker -H "unix://$d/docker.sock" load -q -i "$DIR/image.tar" >/dev/null
}

# TLS certificates: a CA, the server's (127.0.0.1), the client's.
T="$DIR/tls"; mkdir -p "$T"
openssl req -x509 -newkey rsa:2048 -nodes -days 2 -subj /CN=lem-test-ca -keyout "$T/ca-key.pem" -out "$T/ca.pem" 2>/dev/null
openssl req -newkey rsa:2048 -nodes -subj /CN=127.0.0.1 -keyout "$T/server-key.pem" -out "$T/server.csr" 2>/dev/null
printf 'subjectAltName=IP:127.0.0.1\nextendedKeyUsage=serverAuth\n' > "$T/server.ext"
openssl x509 -req -in "$T/server.csr" -CA "$T/ca.pem" -CAkey "$T/ca-key.pem" -CAcreateserial -days 2 -extfile "$T/server.ext" -out "$T/server.pem" 2>/dev/null
openssl req -newkey rsa:2048 -nodes -subj /CN=lem-client -keyout "$T/key.pem" -out "$T/client.csr" 2>/dev/null
printf 'extendedKeyUsage=clientAuth\n' > "$T/client.ext"
openssl x509 -req -in "$T/client.csr" -CA "$T/ca.pem" -CAkey "$T/ca-key.pem" -CAcreateserial -days 2 -extfile "$T/client.ext" -out "$T/cert.pem" 2>/dev/null

# The test image with this checkout's worker on top (a stale image must not decide the test).
POOL_IMAGE="lem-pool-worker:$(basename "$DIR" | tr 'A-Z' 'a-z' | tr -c 'a-z0-9\n' '-')"
printf 'FROM %s\nCOPY lem_worker /opt/lem/worker/lem_worker\n' "$IMAGE" | DOCKER_BUILDKIT=0 docker build -q -t "$POOL_IMAGE" -f - "$(dirname "$0")/../images/worker" >/dev/null
echo "$POOL_IMAGE" > "$DIR/image"
docker save -o "$DIR/image.tar" "$POOL_IMAGE"
TLS_PORT=$(free_port)
start_engine 1 &
start_engine 2 --host "tcp://127.0.0.1:$TLS_PORT" --tlsverify --tlscacert "$T/ca.pem" --tlscert "$T/server.pem" --tlskey "$T/server-key.pem" &
wait

# sshd on loopback, a host key and a client key made here; root logs in with the key only.
S="$DIR/ssh"; mkdir -p "$S"; chmod 700 "$S"
ssh-keygen -q -t ed25519 -N '' -f "$S/host_key"
ssh-keygen -q -t ed25519 -N '' -f "$S/id"
cp "$S/id.pub" "$S/authorized_keys"; chmod 600 "$S/authorized_keys"
SSH_PORT=$(free_port)
cat > "$S/sshd_config" <<CONF
ListenAddress 127.0.0.1
Port $SSH_PORT
HostKey $S/host_key
PidFile $DIR/sshd.pid
AuthorizedKeysFile $S/authorized_keys
PasswordAuthentication no
KbdInteractiveAuthentication no
PermitRootLogin prohibit-password
AllowStreamLocalForwarding yes
StrictModes no
UsePAM no
CONF
mkdir -p /run/sshd
as_root /usr/sbin/sshd -f "$S/sshd_config" -E "$S/sshd.log"
for _ in $(seq 50); do [ -f "$DIR/sshd.pid" ] && break; sleep 0.1; done
echo "[127.0.0.1]:$SSH_PORT $(cut -d' ' -f1,2 "$S/host_key.pub")" > "$S/known_hosts"

cat > "$DIR/pool.json" <<JSON
{"image": "$POOL_IMAGE",
 "ssh": {"engine": "ssh://$(id -un)@127.0.0.1:$SSH_PORT$DIR/d1/docker.sock", "identity": "$S/id", "known_hosts": "$S/known_hosts", "socket": "$DIR/d1/docker.sock", "pidfile": "$DIR/d1/docker.pid"},
 "tls": {"engine": "tcp://127.0.0.1:$TLS_PORT", "ca": "$T/ca.pem", "cert": "$T/cert.pem", "key": "$T/key.pem", "socket": "$DIR/d2/docker.sock", "pidfile": "$DIR/d2/docker.pid"}}
JSON
rm -f "$DIR/image.tar"
echo "pool-engines: ssh engine on 127.0.0.1:$SSH_PORT, tls engine on 127.0.0.1:$TLS_PORT ($DIR)"
