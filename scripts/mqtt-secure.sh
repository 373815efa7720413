#!/usr/bin/env bash
# TEST MATERIAL for a secured Mosquitto (docker/mosquitto-secure.conf, docker/mosquitto.acl):
# a private CA, a server certificate, client certificates and a password file, made with openssl
# and mosquitto_passwd. For local use and for the tests (tests/integration/test_mqtt_secure.py
# runs it in its temporary folder); never commit what it makes. In production the certificates
# come from your own CA and the passwords from your secret store.
#
#   scripts/mqtt-secure.sh OUTDIR [--host NAME]... [--client NAME]... [USER[=PASSWORD]]...
#
#   --host NAME     a name the server certificate is valid for (DNS name or IP address);
#                   default: localhost and 127.0.0.1
#   --client NAME   also make client-NAME.pem/.key, a client certificate with CN=NAME
#   USER=PASSWORD   a login of the password file; USER alone gets a random password, printed once
#
# OUTDIR gets: ca.pem (give it to clients as mqtt.tls.ca_file), ca.key, server.pem, server.key,
# passwd (hashed, for password_file) and client-*.pem/.key. Keys are readable by their owner only:
# a broker that drops privileges (Mosquitto started as root becomes user "mosquitto") must be
# able to read server.key.
set -euo pipefail

usage() { sed -n '8,14p' "$0" >&2; exit 2; }
[ $# -ge 1 ] || usage
out=$1
shift
hosts=()
clients=()
users=()
while [ $# -gt 0 ]; do
  case $1 in
    --host) [ $# -ge 2 ] || usage; hosts+=("$2"); shift 2 ;;
    --client) [ $# -ge 2 ] || usage; clients+=("$2"); shift 2 ;;
    -*) usage ;;
    *) users+=("$1"); shift ;;
  esac
done
[ ${#hosts[@]} -gt 0 ] || hosts=(localhost 127.0.0.1)

for tool in openssl mosquitto_passwd; do
  command -v "$tool" >/dev/null || { echo "$0: $tool is not installed" >&2; exit 1; }
done

mkdir -p "$out"
umask 077
days=30

# ECDSA P-256 keys: as safe as RSA 3072 and made in milliseconds.
newkey() { openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out "$1" 2>/dev/null; }

newkey "$out/ca.key"
openssl req -x509 -new -key "$out/ca.key" -out "$out/ca.pem" -days "$days" \
  -subj "/O=ctiwatch test material/CN=ctiwatch test CA" \
  -addext "basicConstraints=critical,CA:TRUE" -addext "keyUsage=critical,keyCertSign,cRLSign"

sign() {  # sign NAME SUBJECT EXTENSIONS: NAME.key + NAME.pem signed by the CA
  newkey "$out/$1.key"
  openssl req -new -key "$out/$1.key" -subj "$2" -out "$out/$1.csr"
  printf '%s\n' "$3" >"$out/$1.ext"
  openssl x509 -req -in "$out/$1.csr" -CA "$out/ca.pem" -CAkey "$out/ca.key" -CAcreateserial \
    -out "$out/$1.pem" -days "$days" -extfile "$out/$1.ext" 2>/dev/null
  rm -f "$out/$1.csr" "$out/$1.ext"
}

san=""
for host in "${hosts[@]}"; do
  if [[ $host =~ ^[0-9.]+$ || $host == *:* ]]; then entry="IP:$host"; else entry="DNS:$host"; fi
  san=${san:+$san,}$entry
done
sign server "/O=ctiwatch test material/CN=${hosts[0]}" \
  "subjectAltName=$san
extendedKeyUsage=serverAuth"
for client in "${clients[@]}"; do
  sign "client-$client" "/O=ctiwatch test material/CN=$client" "extendedKeyUsage=clientAuth"
done
rm -f "$out/ca.srl"
chmod 644 "$out"/*.pem  # certificates are public; keys stay private

# The password file: "user:password" lines, hashed in place by mosquitto_passwd -U (so no
# password is ever on a command line).
: >"$out/passwd"
for entry in "${users[@]}"; do
  user=${entry%%=*}
  if [[ $entry == *=* ]]; then
    password=${entry#*=}
  else
    password=$(openssl rand -hex 16)
    echo "$user $password"
  fi
  case $user in
    "" | *:* | *[/+#]*) echo "$0: $user: a login must not be empty or hold ':', '/', '+', '#'" >&2; exit 2 ;;
  esac
  printf '%s:%s\n' "$user" "$password" >>"$out/passwd"
done
[ ! -s "$out/passwd" ] || mosquitto_passwd -U "$out/passwd"
