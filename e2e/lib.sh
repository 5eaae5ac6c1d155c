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

# Run a command inside the federation's network namespace.
tb_in() { ip netns exec "$TB_NETNS" "$@"; }

# Install Debian packages for the commands that are missing (CI machines start bare).
tb_need() { # cmd:package ...
  local pair missing=()
  for pair in "$@"; do
    command -v "${pair%%:*}" >/dev/null 2>&1 || missing+=("${pair#*:}")
  done
  ((${#missing[@]})) || return 0
  [[ $(id -u) == 0 ]] || tb_die "missing packages ${missing[*]} and not root to install them"
  tb_log "installing ${missing[*]}"
  DEBIAN_FRONTEND=noninteractive apt-get update -qq >/dev/null
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
}
tb_need_tools() {
  tb_need ip:iproute2 ss:iproute2 openssl:openssl curl:curl setsid:util-linux flock:util-linux \
    base64:coreutils awk:gawk
}
