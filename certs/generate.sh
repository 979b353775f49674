#!/usr/bin/env bash
# Bring-your-own certificates for metrics-adapter, made with openssl: a CA and a serving
# certificate for <service>.<namespace>.svc, the name kube-apiserver's aggregator verifies.
#
#   certs/generate.sh [OUT_DIR] [SERVICE] [NAMESPACE] [DAYS]     # defaults: ./out metrics-adapter keda 365
#
# Then:
#   kubectl -n keda create secret tls metrics-adapter-tls --cert=OUT/tls.crt --key=OUT/tls.key
#   and put base64(OUT/ca.crt) into the APIService's spec.caBundle (see certs/README.md).
set -euo pipefail
out=${1:-./out}
service=${2:-metrics-adapter}
namespace=${3:-keda}
days=${4:-365}
umask 077
mkdir -p "$out"
host="$service.$namespace.svc"

openssl ecparam -name prime256v1 -genkey -noout -out "$out/ca.key.ec"
openssl pkcs8 -topk8 -nocrypt -in "$out/ca.key.ec" -out "$out/ca.key" && rm "$out/ca.key.ec"
openssl req -x509 -new -key "$out/ca.key" -sha256 -days $((days * 10)) \
  -subj "/CN=metrics-adapter-ca" \
  -addext "basicConstraints=critical,CA:TRUE,pathlen:0" \
  -addext "keyUsage=critical,keyCertSign,cRLSign,digitalSignature" \
  -out "$out/ca.crt"

openssl ecparam -name prime256v1 -genkey -noout -out "$out/tls.key.ec"
openssl pkcs8 -topk8 -nocrypt -in "$out/tls.key.ec" -out "$out/tls.key" && rm "$out/tls.key.ec"
openssl req -new -key "$out/tls.key" -subj "/CN=$host" -out "$out/tls.csr"
cat > "$out/tls.ext" <<EXT
basicConstraints=critical,CA:FALSE
keyUsage=critical,digitalSignature,keyEncipherment
extendedKeyUsage=serverAuth
subjectAltName=DNS:$host,DNS:$host.cluster.local,DNS:$service.$namespace,DNS:$service
EXT
openssl x509 -req -in "$out/tls.csr" -CA "$out/ca.crt" -CAkey "$out/ca.key" -CAcreateserial \
  -days "$days" -sha256 -extfile "$out/tls.ext" -out "$out/tls.crt" 2>/dev/null
rm -f "$out/tls.csr" "$out/tls.ext" "$out/ca.srl"
chmod 644 "$out/ca.crt" "$out/tls.crt"
echo "wrote $out/ca.crt, $out/ca.key, $out/tls.crt, $out/tls.key for $host" >&2
