# shellcheck shell=bash
# Certificates, kubeconfigs and the objects e2e/federation applies to the clusters. Sourced by e2e/federation
# (uses TB_STATE, BIN and the helpers of e2e/lib.sh).
# ---------------------------------------------------------------------------------------------------------------
# Certificates (openssl, EC P-256) and kubeconfigs.

sign() { # dir name subject ext-lines...
  local dir=$1 name=$2 subj=$3
  shift 3
  openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out "$dir/$name.key" 2>/dev/null
  openssl req -new -key "$dir/$name.key" -subj "$subj" -out "$dir/$name.csr" 2>/dev/null
  printf '%s\n' "[v3]" "basicConstraints=critical,CA:FALSE" "$@" >"$dir/$name.ext"
  openssl x509 -req -in "$dir/$name.csr" -CA "$dir/ca.crt" -CAkey "$dir/ca.key" -set_serial "0x$(openssl rand -hex 16)" \
    -days 3650 -sha256 -extfile "$dir/$name.ext" -extensions v3 -out "$dir/$name.crt" 2>/dev/null
  rm -f "$dir/$name.csr" "$dir/$name.ext"
}

make_pki() { # cluster
  local c=$1 dir=$TB_STATE/$1/pki
  mkdir -p "$dir"
  chmod 700 "$dir"
  openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out "$dir/ca.key" 2>/dev/null
  cat >"$dir/ca.cnf" <<EOF
[req]
distinguished_name = dn
prompt = no
[dn]
CN = marshal-tb-$c-ca
[v3_ca]
basicConstraints = critical,CA:TRUE
keyUsage = critical,keyCertSign,cRLSign,digitalSignature
subjectKeyIdentifier = hash
EOF
  openssl req -x509 -new -key "$dir/ca.key" -config "$dir/ca.cnf" -extensions v3_ca -days 3650 -sha256 \
    -out "$dir/ca.crt" 2>/dev/null
  sign "$dir" apiserver "/CN=kube-apiserver" "keyUsage=critical,digitalSignature,keyEncipherment" \
    "extendedKeyUsage=serverAuth" \
    "subjectAltName=IP:127.0.0.1,DNS:localhost,DNS:kubernetes,DNS:kubernetes.default,DNS:kubernetes.default.svc,DNS:kubernetes.default.svc.cluster.local"
  sign "$dir" admin "/O=system:masters/CN=marshal-tb-admin" "keyUsage=critical,digitalSignature" \
    "extendedKeyUsage=clientAuth"
  sign "$dir" marshal "/CN=marshal" "keyUsage=critical,digitalSignature" "extendedKeyUsage=clientAuth"
  openssl genpkey -algorithm RSA -pkeyopt rsa_keygen_bits:2048 -out "$dir/sa.key" 2>/dev/null
  openssl pkey -in "$dir/sa.key" -pubout -out "$dir/sa.pub" 2>/dev/null
}

b64() { base64 -w0 <"$1"; }

kubeconfig() { # out cluster server user cert key
  cat >"$1" <<EOF
apiVersion: v1
kind: Config
clusters:
- name: $2
  cluster:
    server: $3
    certificate-authority-data: $(b64 "$TB_STATE/$2/pki/ca.crt")
users:
- name: $4
  user:
    client-certificate-data: $(b64 "$5")
    client-key-data: $(b64 "$6")
contexts:
- name: $4@$2
  context:
    cluster: $2
    user: $4
current-context: $4@$2
EOF
  chmod 600 "$1"
}

kc() { echo "$TB_STATE/$1/admin.kubeconfig"; }
kubectl_in() { local c=$1; shift; tb_in "$BIN/kubectl" --kubeconfig "$(kc "$c")" "$@"; }

# ---------------------------------------------------------------------------------------------------------------
# Objects applied into the clusters.

member_rbac() {
  cat <<'EOF'
apiVersion: v1
kind: Namespace
metadata:
  name: marshal-system
---
# What the hub's Marshal needs in a member cluster (push mode), nothing more.
apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRole
metadata:
  name: marshal-member
rules:
- apiGroups: [""]
  resources: [namespaces]
  verbs: [get, list, watch, create, patch, delete]
- apiGroups: [apps]
  resources: [deployments]
  verbs: [get, list, watch, create, patch, update, delete]
- apiGroups: [""]
  resources: [nodes, pods]
  verbs: [get, list, watch]
- apiGroups: [""]
  resources: [events]
  verbs: [create, patch]
- apiGroups: [events.k8s.io]
  resources: [events]
  verbs: [create, patch]
---
apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRoleBinding
metadata:
  name: marshal-member
roleRef:
  apiGroup: rbac.authorization.k8s.io
  kind: ClusterRole
  name: marshal-member
subjects:
- apiGroup: rbac.authorization.k8s.io
  kind: User
  name: marshal
---
# The member's own clearance (DESIGN.md section 6) is read from marshal-system/marshal-clearance only.
apiVersion: rbac.authorization.k8s.io/v1
kind: Role
metadata:
  name: marshal-member-clearance
  namespace: marshal-system
rules:
- apiGroups: [""]
  resources: [configmaps]
  verbs: [get, list, watch]
# The tombstones of removed workloads: the one ConfigMap the syncer rewrites (the member chart creates it).
- apiGroups: [""]
  resources: [configmaps]
  resourceNames: [marshal-removed]
  verbs: [update]
---
apiVersion: v1
kind: ConfigMap
metadata:
  name: marshal-removed
  namespace: marshal-system
---
apiVersion: rbac.authorization.k8s.io/v1
kind: RoleBinding
metadata:
  name: marshal-member-clearance
  namespace: marshal-system
roleRef:
  apiGroup: rbac.authorization.k8s.io
  kind: Role
  name: marshal-member-clearance
subjects:
- apiGroup: rbac.authorization.k8s.io
  kind: User
  name: marshal
EOF
}

member_nodes() { # cluster
  local spec name tier zone cpu mem pods
  for spec in $(tb_nodes "$1"); do
    IFS=: read -r name tier zone <<<"$spec"
    if [[ $tier == core ]]; then cpu=8 mem=32Gi pods=110; else cpu=2 mem=4Gi pods=30; fi
    cat <<EOF
---
apiVersion: v1
kind: Node
metadata:
  name: $name
  annotations:
    kwok.x-k8s.io/node: fake
    node.alpha.kubernetes.io/ttl: "0"
  labels:
    kubernetes.io/hostname: $name
    kubernetes.io/os: linux
    kubernetes.io/arch: amd64
    type: kwok
    marshal.dev/cluster: $1
    marshal.dev/tier: $tier
    topology.kubernetes.io/zone: $zone
status:
  capacity: {cpu: "$cpu", memory: $mem, pods: "$pods", ephemeral-storage: 100Gi}
  allocatable: {cpu: "$cpu", memory: $mem, pods: "$pods", ephemeral-storage: 100Gi}
  nodeInfo:
    architecture: amd64
    operatingSystem: linux
    kubeletVersion: fake
EOF
  done
}

member_secret() { # cluster
  local c=$1 kcfg=$TB_STATE/$1/marshal.kubeconfig
  cat <<EOF
# The hub's credentials for member $c, addressed through the link proxy (user marshal, RBAC marshal-member).
apiVersion: v1
kind: Secret
metadata:
  name: $c-kubeconfig
  namespace: marshal-system
  labels:
    marshal.dev/cluster: $c
    marshal.dev/kubeconfig: "true"
type: Opaque
data:
  kubeconfig: $(b64 "$kcfg")
EOF
}

