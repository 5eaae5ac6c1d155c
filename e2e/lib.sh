# shellcheck shell=bash
# Shared settings and helpers of e2e/federation, e2e/smoke and e2e/ci.sh. Source it; beyond variables and
# functions it only completes HOME and PATH when CI runs with a bare environment.

E2E_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)

# CI may run with a bare environment: find HOME and the toolchains in their usual places.
[[ -n ${HOME:-} ]] || export HOME=$(getent passwd "$(id -u)" | cut -d: -f6)
command -v go >/dev/null 2>&1 || export PATH=$PATH:/usr/local/go/bin
command -v cargo >/dev/null 2>&1 || export PATH=$PATH:$HOME/.cargo/bin

# Where everything lives.
TB_STATE=${MARSHAL_TB_STATE:-/tmp/marshal-tb}
TB_NETNS=${MARSHAL_TB_NETNS:-marshal-tb}
TB_PORT_BASE=${MARSHAL_TB_PORT_BASE:-36000}
TB_CACHE=${MARSHAL_TESTBED_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/marshal-testbed}

# The federation of DESIGN.md section 9.
TB_CLUSTERS=(hub pol-1 deu-1 ltu-1)
TB_MEMBERS=(pol-1 deu-1 ltu-1)

# Nodes per member: name:tier:zone.
tb_nodes() {
  case $1 in
    pol-1) echo "pol-1-core-0:core:pol-1a pol-1-core-1:core:pol-1b pol-1-edge-0:edge:pol-1-edge" ;;
    deu-1) echo "deu-1-core-0:core:deu-1a deu-1-core-1:core:deu-1b" ;;
    ltu-1) echo "ltu-1-edge-0:edge:ltu-1-edge ltu-1-edge-1:edge:ltu-1-edge" ;;
    *) echo "" ;;
  esac
}

# Port plan: etcd at BASE (client) and BASE+1 (peer); cluster number i (hub=0, pol-1=1, deu-1=2, ltu-1=3)
# gets BASE+10*(i+1) + 0 apiserver, 1 controller-manager, 2 scheduler, 3 link proxy, 4 kwok.
tb_index() {
  local i
  for i in "${!TB_CLUSTERS[@]}"; do
    if [[ ${TB_CLUSTERS[$i]} == "$1" ]]; then
      echo "$i"
      return 0
    fi
  done
  return 1
}
tb_port() { # cluster role
  local i off
  i=$(tb_index "$1") || tb_die "unknown cluster '$1' (known: ${TB_CLUSTERS[*]})"
  case $2 in
    apiserver) off=0 ;; kcm) off=1 ;; scheduler) off=2 ;; proxy) off=3 ;; kwok) off=4 ;;
    *) tb_die "unknown role $2" ;;
  esac
  echo $((TB_PORT_BASE + 10 * (i + 1) + off))
}
TB_ETCD_PORT=$((TB_PORT_BASE))
TB_ETCD_PEER_PORT=$((TB_PORT_BASE + 1))
tb_all_ports() {
  local c
  echo "$TB_ETCD_PORT" "$TB_ETCD_PEER_PORT"
  for c in "${TB_CLUSTERS[@]}"; do
    echo "$(tb_port "$c" apiserver)" "$(tb_port "$c" kcm)" "$(tb_port "$c" scheduler)" "$(tb_port "$c" proxy)" \
      "$(tb_port "$c" kwok)"
  done
}

# FOO-1 -> FOO_1 (for variable names).
tb_var() { local v=${1^^}; echo "${v//-/_}"; }

tb_log() { printf '[%s %s] %s\n' "${TB_PROG:-e2e}" "$(date +%H:%M:%S)" "$*" >&2; }
tb_die() {
  tb_log "ERROR: $*"
  exit 1
}

# tb_stop_recorded PIDFILE...: kill the process each file records (a test's controller or agent) and remove the file.
tb_stop_recorded() {
  local f
  for f in "$@"; do
    if [[ -f $f ]]; then kill "$(cat "$f")" 2>/dev/null || true; fi
    rm -f "$f"
  done
}

# Run a command inside the federation's network namespace.
tb_in() { ip netns exec "$TB_NETNS" "$@"; }

# Every command a tier needs beyond bash and coreutils, with the Debian package that provides it: the one list
# e2e/preflight installs from and tb_require checks against. The federation's network namespace has only
# loopback, so nothing inside it can reach a package registry: install *before* entering it.
TB_REQUIRED=(
  ip:iproute2 ss:iproute2 openssl:openssl curl:curl setsid:util-linux flock:util-linux awk:gawk
  diff:diffutils cmp:diffutils find:findutils getent:libc-bin jq:jq yq:yq python3:python3
  prometheus:prometheus promtool:prometheus
)

# The Debian package of a command in TB_REQUIRED (empty when it is not listed).
tb_package_of() {
  local pair
  for pair in "${TB_REQUIRED[@]}"; do
    [[ ${pair%%:*} == "$1" ]] && { echo "${pair#*:}"; return 0; }
  done
  return 1
}

# tb_require [CMD...]: every CMD (default: all of TB_REQUIRED) is on PATH, or die naming each missing command,
# its package and the preflight step. It never installs anything: it also runs inside the network namespace.
tb_require() {
  local cmd pkg missing=() cmds=("$@")
  ((${#cmds[@]})) || for pkg in "${TB_REQUIRED[@]}"; do cmds+=("${pkg%%:*}"); done
  for cmd in "${cmds[@]}"; do
    command -v "$cmd" >/dev/null 2>&1 && continue
    pkg=$(tb_package_of "$cmd") || pkg="?"
    missing+=("$cmd (Debian package $pkg)")
  done
  ((${#missing[@]})) || return 0
  local list
  list=$(printf '%s, ' "${missing[@]}")
  tb_die "missing: ${list%, }. Install them before entering the network namespace: run \`bash e2e/preflight\` as root (e2e/ci.sh, make demo and make bench-failover run it first)"
}
