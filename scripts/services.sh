#!/usr/bin/env bash
# Local services for querybus development and tests, all on 127.0.0.1 free ports:
#   - Apache Kafka 4.0.x, KRaft single node (broker + controller), jars via Maven
#   - PostgreSQL 15 primary (private cluster made with initdb)
#   - a streaming replica of it (pg_basebackup -R -X stream)
#   - etcd 3.4 single member
#   - a second Kafka broker with TLS, SASL (SCRAM, PLAIN), mutual TLS and ACLs, for the
#     security tests and `querybus acl` (infra/kafka/secure.properties.template)
#
# Usage: scripts/services.sh up | down [--purge] | status
#
# `up` is idempotent: services already running and healthy are reused with the
# same ports; stopped ones are restarted on their previous ports when free.
# Settings are written to .stack/env as `export` lines (`. .stack/env`).
#
# Layout (all git-ignored):
#   .stack/env                  settings for shells and tests (mode 600: holds the password)
#   .stack/ports                ports chosen once, reused by later `up`s
#   .stack/secrets/             the postgres superuser and adapter passwords (generated once)
#   .stack/cache/kafka-lib/     Kafka classpath from infra/kafka/pom.xml (kept by --purge)
#   .stack/kafka/               server.properties, data/, logs/server.log, stdout.log, kafka.pid
#   .stack/kafka-secure/        the secured broker: the same files, plus tls/ (a local CA, the
#                               broker's and the mTLS users' certificates; keys mode 600)
#   .stack/secrets/kafka_*      the secured broker's SASL passwords (generated once, mode 600)
#   .stack/etcd/                data/, etcd.log, etcd.pid
#   .stack/pg                   PostgreSQL root: primary/, replica/, run/ (sockets), log/, pgpass
#                               When run as root the clusters belong to the `postgres` user
#                               (PostgreSQL refuses to run as root). If that user cannot reach
#                               .stack (e.g. a clone under /root), or the socket path would be
#                               too long, the root is /tmp/querybus-pg-<hash of repo path> and
#                               .stack/pg is a symlink to it.
set -euo pipefail

REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
STACK="$REPO/.stack"
PROBE="$REPO/scripts/stack_probe.py"
PYTHON="${PYTHON:-python3}"
KAFKA_LIB="$STACK/cache/kafka-lib"
KAFKA_DIR="$STACK/kafka"
ETCD_DIR="$STACK/etcd"
KSEC_DIR="$STACK/kafka-secure"
KSEC_TLS="$KSEC_DIR/tls"
# SASL users of the secured broker (SCRAM and PLAIN). admin is its super user.
KSEC_USERS=(admin adapter alice bob carol)
# Users that also get a client certificate for mutual TLS (CN=<name>).
KSEC_CERT_USERS=(alice bob)
PORTS_FILE="$STACK/ports"
PW_FILE="$STACK/secrets/postgres_password"
ADAPTER_PW_FILE="$STACK/secrets/adapter_password"
ADAPTER_ROLE=querybus_adapter
REPLICA_APP=querybus_replica
DB_NAME=querybus
# Every path below is absolute. Work from / so that commands run as the postgres
# user never start in a directory they cannot enter.
cd /

log() { printf '[services] %s\n' "$*" >&2; }
die() { printf '[services] ERROR: %s\n' "$*" >&2; exit 1; }

# --------------------------------------------------------------------------
# helpers

APT_UPDATED=0
apt_install() {
    command -v apt-get >/dev/null || die "apt-get not found; install $* by hand"
    [ "$(id -u)" = 0 ] || die "installing $* needs root (or install them by hand)"
    export DEBIAN_FRONTEND=noninteractive
    if [ "$APT_UPDATED" = 0 ]; then
        apt-get update -qq </dev/null
        APT_UPDATED=1
    fi
    # Packages must not start their own daemons (etcd on 2379, a postgres
    # cluster on 5432): a policy-rc.d answering 101 forbids it for the install.
    local policy=/usr/sbin/policy-rc.d added=0
    if [ ! -e "$policy" ]; then
        printf '#!/bin/sh\nexit 101\n' >"$policy" && chmod +x "$policy" && added=1
    fi
    local rc=0
    apt-get install -y -qq --no-install-recommends "$@" </dev/null >/dev/null || rc=$?
    [ "$added" = 1 ] && rm -f "$policy"
    [ "$rc" = 0 ] || die "apt-get install $* failed (exit $rc)"
}

pid_alive() {  # pid_alive PIDFILE PATTERN -> 0 when the pid runs a command matching PATTERN
    local pidfile=$1 pattern=$2 pid
    [ -f "$pidfile" ] || return 1
    pid=$(cat "$pidfile" 2>/dev/null) || return 1
    [ -n "$pid" ] && [ -r "/proc/$pid/cmdline" ] || return 1
    tr '\0' ' ' <"/proc/$pid/cmdline" | grep -q -- "$pattern"
}

stop_pid() {  # stop_pid PIDFILE PATTERN NAME TIMEOUT
    local pidfile=$1 pattern=$2 name=$3 timeout=$4 pid deadline
    if ! pid_alive "$pidfile" "$pattern"; then
        rm -f "$pidfile"
        return 0
    fi
    pid=$(cat "$pidfile")
    log "stopping $name (pid $pid)"
    kill -TERM "$pid" 2>/dev/null || true
    deadline=$((SECONDS + timeout))
    while kill -0 "$pid" 2>/dev/null; do
        if [ "$SECONDS" -ge "$deadline" ]; then
            log "$name did not stop within ${timeout}s; killing it"
            kill -KILL "$pid" 2>/dev/null || true
            break
        fi
        sleep 0.2
    done
    # Wait for the kernel to reap it (it is not our child: poll /proc).
    deadline=$((SECONDS + 10))
    while [ -e "/proc/$pid" ] && [ "$SECONDS" -lt "$deadline" ]; do sleep 0.1; done
    rm -f "$pidfile"
}

port_free() { "$PYTHON" "$PROBE" port-free "$1"; }

# Ports: remembered in .stack/ports so a restart keeps the same addresses.
KAFKA_PORT="" KAFKA_CONTROLLER_PORT="" PG_PORT="" PG_REPLICA_PORT="" ETCD_PORT="" ETCD_PEER_PORT=""
KSEC_SASL_PORT="" KSEC_SSL_PORT="" KSEC_CONTROLLER_PORT=""
load_ports() {
    if [ -f "$PORTS_FILE" ]; then
        # shellcheck disable=SC1090
        . "$PORTS_FILE"
    fi
}
save_ports() {
    mkdir -p "$STACK"
    cat >"$PORTS_FILE.tmp" <<EOF
KAFKA_PORT=$KAFKA_PORT
KAFKA_CONTROLLER_PORT=$KAFKA_CONTROLLER_PORT
PG_PORT=$PG_PORT
PG_REPLICA_PORT=$PG_REPLICA_PORT
ETCD_PORT=$ETCD_PORT
ETCD_PEER_PORT=$ETCD_PEER_PORT
KSEC_SASL_PORT=$KSEC_SASL_PORT
KSEC_SSL_PORT=$KSEC_SSL_PORT
KSEC_CONTROLLER_PORT=$KSEC_CONTROLLER_PORT
EOF
    mv "$PORTS_FILE.tmp" "$PORTS_FILE"
}
# pick_port VAR: keep the remembered port when it is free, else take a new free one.
pick_port() {
    local var=$1 cur
    cur=${!var}
    if [ -n "$cur" ] && port_free "$cur"; then
        return 0
    fi
    local -a new
    read -r -a new <<<"$("$PYTHON" "$PROBE" free-ports 1)"
    # Avoid handing out a port another of our services already holds.
    while [[ " $KAFKA_PORT $KAFKA_CONTROLLER_PORT $PG_PORT $PG_REPLICA_PORT $ETCD_PORT $ETCD_PEER_PORT $KSEC_SASL_PORT $KSEC_SSL_PORT $KSEC_CONTROLLER_PORT " == *" ${new[0]} "* ]]; do
        read -r -a new <<<"$("$PYTHON" "$PROBE" free-ports 1)"
    done
    [ -n "$cur" ] && log "port $cur for $var is taken; using ${new[0]}"
    printf -v "$var" '%s' "${new[0]}"
}

# --------------------------------------------------------------------------
# Kafka

kafka_running() { pid_alive "$KAFKA_DIR/kafka.pid" "kafka.Kafka"; }
kafka_healthy() {
    kafka_running && [ -n "$KAFKA_PORT" ] && "$PYTHON" "$PROBE" kafka "127.0.0.1:$KAFKA_PORT" --timeout 5 2>/dev/null
}

kafka_fetch_jars() {
    if [ -f "$KAFKA_LIB/.complete" ]; then return 0; fi
    command -v java >/dev/null || die "java (17+) is required for Kafka"
    command -v mvn >/dev/null || apt_install maven
    log "fetching Kafka jars with Maven into $KAFKA_LIB"
    rm -rf "$KAFKA_LIB.tmp"
    (cd "$REPO/infra/kafka" && mvn -B -q -Dstyle.color=never dependency:copy-dependencies -DoutputDirectory="$KAFKA_LIB.tmp" </dev/null >&2) \
        || die "mvn dependency:copy-dependencies failed"
    rm -rf "$KAFKA_LIB"
    mv "$KAFKA_LIB.tmp" "$KAFKA_LIB"
    touch "$KAFKA_LIB/.complete"
}

kafka_up() {
    if kafka_healthy; then
        log "kafka already running on 127.0.0.1:$KAFKA_PORT"
        return 0
    fi
    if kafka_running; then
        log "kafka process is not answering; restarting it"
        stop_pid "$KAFKA_DIR/kafka.pid" "kafka.Kafka" kafka 60
    fi
    kafka_fetch_jars
    pick_port KAFKA_PORT
    pick_port KAFKA_CONTROLLER_PORT
    save_ports
    mkdir -p "$KAFKA_DIR/data" "$KAFKA_DIR/logs"
    sed -e "s|@PORT@|$KAFKA_PORT|g" \
        -e "s|@CONTROLLER_PORT@|$KAFKA_CONTROLLER_PORT|g" \
        -e "s|@LOG_DIR@|$KAFKA_DIR/data|g" \
        "$REPO/infra/kafka/server.properties.template" >"$KAFKA_DIR/server.properties"
    local -a jvm=(java -Xms512m -Xmx1g -XX:+UseG1GC -Djava.awt.headless=true
        "-Dlog4j2.configurationFile=file:$REPO/infra/kafka/log4j2.xml"
        "-Dkafka.logs.dir=$KAFKA_DIR/logs" -cp "$KAFKA_LIB/*")
    if [ ! -f "$KAFKA_DIR/data/meta.properties" ]; then
        local cluster_id
        cluster_id=$("$PYTHON" "$PROBE" cluster-id)
        log "formatting Kafka storage (cluster id $cluster_id)"
        "${jvm[@]}" kafka.tools.StorageTool format --cluster-id="$cluster_id" \
            -c "$KAFKA_DIR/server.properties" </dev/null >"$KAFKA_DIR/format.log" 2>&1 \
            || { cat "$KAFKA_DIR/format.log" >&2; die "kafka storage format failed"; }
    fi
    log "starting kafka on 127.0.0.1:$KAFKA_PORT (controller $KAFKA_CONTROLLER_PORT)"
    # setsid: its own session, so a Ctrl-C in the calling terminal does not reach it.
    # 9>&-: do not inherit the lock of this script.
    setsid "${jvm[@]}" kafka.Kafka "$KAFKA_DIR/server.properties" \
        </dev/null >"$KAFKA_DIR/stdout.log" 2>&1 9>&- &
    echo $! >"$KAFKA_DIR/kafka.pid"
}

kafka_wait() {
    if ! "$PYTHON" "$PROBE" kafka "127.0.0.1:$KAFKA_PORT" --timeout 90; then
        tail -n 30 "$KAFKA_DIR/stdout.log" "$KAFKA_DIR/logs/server.log" >&2 2>/dev/null || true
        die "kafka did not become ready (logs: $KAFKA_DIR/logs/server.log)"
    fi
    kafka_running || die "kafka exited (logs: $KAFKA_DIR/stdout.log)"
}

# --------------------------------------------------------------------------
# Kafka, secured: TLS + SASL + mutual TLS + ACLs (infra/kafka/secure.properties.template)

ksec_running() { pid_alive "$KSEC_DIR/kafka.pid" "$KSEC_DIR/server.properties"; }
# Readiness: a Metadata request over mutual TLS with the broker's own certificate.
ksec_probe() {  # ksec_probe TIMEOUT
    "$PYTHON" "$PROBE" kafka "127.0.0.1:$KSEC_SSL_PORT" --timeout "$1" \
        --cafile "$KSEC_TLS/ca.crt" --certfile "$KSEC_TLS/broker.pem"
}
ksec_healthy() {
    ksec_running && [ -n "$KSEC_SSL_PORT" ] && ksec_probe 5 2>/dev/null
}

ksec_password_file() { printf '%s/secrets/kafka_%s_password' "$STACK" "$1"; }

ksec_passwords() {
    local user f
    mkdir -p "$STACK/secrets"
    chmod 700 "$STACK/secrets"
    for user in "${KSEC_USERS[@]}"; do
        f=$(ksec_password_file "$user")
        if [ ! -s "$f" ]; then
            (umask 077; "$PYTHON" "$PROBE" secret >"$f")
        fi
    done
}

# openssl_sign NAME SUBJECT EXTENSIONS CA: a new key (PKCS#8, mode 600) and a
# certificate signed by CA (ca or untrusted-ca) in $KSEC_TLS.
openssl_sign() {
    local name=$1 subject=$2 ext=$3 ca=$4 dir=$KSEC_TLS
    (umask 077; openssl genpkey -algorithm RSA -pkeyopt rsa_keygen_bits:2048 -out "$dir/$name.key" 2>/dev/null)
    openssl req -new -key "$dir/$name.key" -subj "$subject" -out "$dir/$name.csr" 2>/dev/null
    printf '%s\n' "$ext" >"$dir/$name.ext"
    openssl x509 -req -in "$dir/$name.csr" -CA "$dir/$ca.crt" -CAkey "$dir/$ca.key" \
        -CAcreateserial -days 3650 -sha256 -extfile "$dir/$name.ext" -out "$dir/$name.crt" 2>/dev/null \
        || die "openssl could not sign the certificate of $name"
    rm -f "$dir/$name.csr" "$dir/$name.ext"
}

openssl_ca() {  # openssl_ca NAME CN
    local dir=$KSEC_TLS
    (umask 077; openssl genpkey -algorithm RSA -pkeyopt rsa_keygen_bits:2048 -out "$dir/$1.key" 2>/dev/null)
    openssl req -x509 -new -key "$dir/$1.key" -subj "/CN=$2" -days 3650 -sha256 \
        -addext "basicConstraints=critical,CA:TRUE" -addext "keyUsage=critical,keyCertSign,cRLSign" \
        -out "$dir/$1.crt" 2>/dev/null || die "openssl could not make the CA $2"
}

# A local CA, the broker's certificate (SAN IP:127.0.0.1, DNS:localhost; also its
# client certificate towards its own listeners), and client certificates for the
# mTLS users. Plus a second CA nobody trusts, with a client certificate of
# "mallory", for the tests of refused certificates. Made once.
ksec_tls() {
    if [ -f "$KSEC_TLS/.complete" ]; then return 0; fi
    command -v openssl >/dev/null || apt_install openssl
    log "making a local CA and certificates in $KSEC_TLS"
    rm -rf "$KSEC_TLS"
    mkdir -p "$KSEC_TLS"
    chmod 700 "$KSEC_TLS"
    openssl_ca ca "querybus local CA"
    openssl_ca untrusted-ca "querybus untrusted CA"
    local server="basicConstraints=CA:FALSE
keyUsage=critical,digitalSignature,keyEncipherment
extendedKeyUsage=serverAuth,clientAuth
subjectAltName=IP:127.0.0.1,DNS:localhost"
    local client="basicConstraints=CA:FALSE
keyUsage=critical,digitalSignature,keyEncipherment
extendedKeyUsage=clientAuth"
    openssl_sign broker "/O=querybus/CN=querybus-broker" "$server" ca
    local user
    for user in "${KSEC_CERT_USERS[@]}"; do
        openssl_sign "$user" "/O=querybus/CN=$user" "$client" ca
    done
    openssl_sign mallory "/O=querybus/CN=mallory" "$client" untrusted-ca
    # Kafka's PEM keystore: the PKCS#8 key, then the certificate chain.
    (umask 077; cat "$KSEC_TLS/broker.key" "$KSEC_TLS/broker.crt" "$KSEC_TLS/ca.crt" >"$KSEC_TLS/broker.pem")
    rm -f "$KSEC_TLS"/*.srl
    # The directory may be listed and the CA certificates read by anyone; keys stay 600.
    chmod 755 "$KSEC_TLS"
    chmod 644 "$KSEC_TLS"/*.crt
    chmod 600 "$KSEC_TLS"/*.key "$KSEC_TLS/broker.pem"
    touch "$KSEC_TLS/.complete"
}

# sed replacement text: escape \, & and | (the delimiter).
sed_escape() { printf '%s' "$1" | sed -e 's/[\\&|]/\\&/g'; }

ksec_render() {
    local users="" user pw
    for user in "${KSEC_USERS[@]}"; do
        pw=$(cat "$(ksec_password_file "$user")")
        users+="user_$user=\"$pw\" "
    done
    (
        umask 077
        sed -e "s|@SASL_PORT@|$KSEC_SASL_PORT|g" \
            -e "s|@SSL_PORT@|$KSEC_SSL_PORT|g" \
            -e "s|@CONTROLLER_PORT@|$KSEC_CONTROLLER_PORT|g" \
            -e "s|@LOG_DIR@|$KSEC_DIR/data|g" \
            -e "s|@TLS_DIR@|$KSEC_TLS|g" \
            -e "s|@PLAIN_USERS@|$(sed_escape "${users% }")|g" \
            "$REPO/infra/kafka/secure.properties.template" >"$KSEC_DIR/server.properties.tmp"
    )
    mv "$KSEC_DIR/server.properties.tmp" "$KSEC_DIR/server.properties"
}

# A digest of the SCRAM passwords the storage was formatted with: when a password
# file is regenerated, the storage is formatted again (its users are stale).
ksec_scram_digest() {
    local user
    for user in "${KSEC_USERS[@]}"; do printf '%s:' "$user"; cat "$(ksec_password_file "$user")"; done \
        | sha256sum | cut -c1-64
}

ksec_up() {
    ksec_passwords
    local digest
    digest=$(ksec_scram_digest)
    if ksec_healthy && [ "$(cat "$KSEC_DIR/scram.digest" 2>/dev/null)" = "$digest" ]; then
        log "secured kafka already running on 127.0.0.1:$KSEC_SASL_PORT (SASL_SSL), $KSEC_SSL_PORT (SSL)"
        return 0
    fi
    if ksec_running; then
        log "secured kafka is not answering, or its SASL passwords changed; restarting it"
        stop_pid "$KSEC_DIR/kafka.pid" "$KSEC_DIR/server.properties" kafka-secure 60
    fi
    kafka_fetch_jars
    ksec_tls
    pick_port KSEC_SASL_PORT
    pick_port KSEC_SSL_PORT
    pick_port KSEC_CONTROLLER_PORT
    save_ports
    mkdir -p "$KSEC_DIR/logs"
    chmod 700 "$KSEC_DIR"
    ksec_render
    # Smaller than the main broker: it only serves the security tests.
    local -a jvm=(java -Xms128m -Xmx512m -XX:+UseG1GC -Djava.awt.headless=true
        "-Dlog4j2.configurationFile=file:$REPO/infra/kafka/log4j2.xml"
        "-Dkafka.logs.dir=$KSEC_DIR/logs" -cp "$KAFKA_LIB/*")
    if [ -f "$KSEC_DIR/data/meta.properties" ] && [ "$(cat "$KSEC_DIR/scram.digest" 2>/dev/null)" != "$digest" ]; then
        log "secured kafka: SASL passwords changed; formatting its storage again"
        rm -rf "$KSEC_DIR/data"
    fi
    if [ ! -f "$KSEC_DIR/data/meta.properties" ]; then
        local cluster_id user pw
        local -a scram=()
        cluster_id=$("$PYTHON" "$PROBE" cluster-id)
        for user in "${KSEC_USERS[@]}"; do
            pw=$(cat "$(ksec_password_file "$user")")
            scram+=(--add-scram "SCRAM-SHA-256=[name=$user,password=$pw]"
                --add-scram "SCRAM-SHA-512=[name=$user,password=$pw]")
        done
        log "formatting secured Kafka storage (cluster id $cluster_id, SCRAM users ${KSEC_USERS[*]})"
        mkdir -p "$KSEC_DIR/data"
        "${jvm[@]}" kafka.tools.StorageTool format --cluster-id="$cluster_id" \
            -c "$KSEC_DIR/server.properties" "${scram[@]}" </dev/null >"$KSEC_DIR/format.log" 2>&1 \
            || { cat "$KSEC_DIR/format.log" >&2; die "secured kafka storage format failed"; }
        printf '%s\n' "$digest" >"$KSEC_DIR/scram.digest"
    fi
    log "starting secured kafka on 127.0.0.1:$KSEC_SASL_PORT (SASL_SSL), $KSEC_SSL_PORT (SSL, mTLS), controller $KSEC_CONTROLLER_PORT"
    setsid "${jvm[@]}" kafka.Kafka "$KSEC_DIR/server.properties" \
        </dev/null >"$KSEC_DIR/stdout.log" 2>&1 9>&- &
    echo $! >"$KSEC_DIR/kafka.pid"
}

ksec_wait() {
    if ! ksec_probe 90; then
        tail -n 30 "$KSEC_DIR/stdout.log" "$KSEC_DIR/logs/server.log" >&2 2>/dev/null || true
        die "secured kafka did not become ready (logs: $KSEC_DIR/logs/server.log)"
    fi
    ksec_running || die "secured kafka exited (logs: $KSEC_DIR/stdout.log)"
}

# --------------------------------------------------------------------------
# PostgreSQL

PGBIN=""
find_pgbin() {
    local d
    for d in /usr/lib/postgresql/15/bin /usr/lib/postgresql/*/bin; do
        if [ -x "$d/initdb" ] && [ -x "$d/pg_ctl" ] && [ -x "$d/pg_basebackup" ]; then
            PGBIN=$d
            return 0
        fi
    done
    if command -v pg_config >/dev/null; then
        d=$(pg_config --bindir)
        if [ -x "$d/initdb" ] && [ -x "$d/pg_ctl" ]; then PGBIN=$d; return 0; fi
    fi
    return 1
}

ensure_postgres_installed() {
    find_pgbin && return 0
    log "PostgreSQL binaries missing: installing Debian's postgresql"
    # Do not let the package create (and start) its default cluster on 5432.
    apt_install postgresql-common
    if [ -f /etc/postgresql-common/createcluster.conf ]; then
        sed -i -E 's/^#?\s*create_main_cluster\s*=.*/create_main_cluster = false/' \
            /etc/postgresql-common/createcluster.conf
    fi
    apt_install postgresql
    find_pgbin || die "PostgreSQL binaries still missing after apt-get install postgresql"
}

AS_PG=()     # command prefix that runs as the cluster owner
# write_as_pg FILE / append_as_pg FILE: stdin into FILE, as the cluster owner, owner-only.
# shellcheck disable=SC2016  # "$1" is expanded by the inner sh
write_as_pg() { "${AS_PG[@]}" sh -c 'umask 077; cat > "$1"' sh "$1"; }
# shellcheck disable=SC2016
append_as_pg() { "${AS_PG[@]}" sh -c 'umask 077; cat >> "$1"' sh "$1"; }
PGROOT=""
setup_pg_owner() {
    if [ "$(id -u)" = 0 ]; then
        if ! id postgres >/dev/null 2>&1; then
            log "creating system user postgres"
            useradd --system --user-group --home-dir /var/lib/postgresql --shell /bin/bash postgres
        fi
        AS_PG=(runuser -u postgres --)
    fi
    if [ -L "$STACK/pg" ]; then
        PGROOT=$(readlink "$STACK/pg")
        return 0
    elif [ -d "$STACK/pg" ]; then
        PGROOT="$STACK/pg"
        return 0
    fi
    PGROOT="$STACK/pg"
    local reachable=1
    if [ "${#AS_PG[@]}" -gt 0 ] && ! "${AS_PG[@]}" test -x "$STACK"; then reachable=0; fi
    # unix socket paths are limited to 107 bytes: "<root>/run/.s.PGSQL.65535"
    if [ $(( ${#PGROOT} + 20 )) -gt 100 ]; then reachable=0; fi
    if [ "$reachable" = 0 ]; then
        local hash
        hash=$(printf '%s' "$REPO" | sha256sum | cut -c1-12)
        PGROOT="/tmp/querybus-pg-$hash"
        log "PostgreSQL data in $PGROOT (symlinked from .stack/pg): the postgres user cannot use .stack"
        mkdir -p "$PGROOT"
        ln -sfn "$PGROOT" "$STACK/pg"
    fi
}

pg_prepare_root() {
    mkdir -p "$PGROOT"
    if [ "${#AS_PG[@]}" -gt 0 ]; then chown postgres:postgres "$PGROOT"; fi
    chmod 700 "$PGROOT"
    "${AS_PG[@]}" mkdir -p "$PGROOT/run" "$PGROOT/log"
    # passfile for the replica's primary_conninfo and pg_basebackup (owner-only, as libpq wants)
    local pw
    pw=$(cat "$PW_FILE")
    write_as_pg "$PGROOT/pgpass" <<<"127.0.0.1:*:*:postgres:$pw"
}

pg_password() {
    local f
    for f in "$PW_FILE" "$ADAPTER_PW_FILE"; do
        if [ ! -s "$f" ]; then
            mkdir -p "$STACK/secrets"
            chmod 700 "$STACK/secrets"
            (umask 077; "$PYTHON" "$PROBE" secret >"$f")
        fi
    done
}

# The adapters' own login role (never the superuser): infra/postgres/adapter_role.sql.
adapter_role_up() {
    PGPASSWORD=$(cat "$PW_FILE") PGCONNECT_TIMEOUT=3 "$PGBIN/psql" -X -q \
        -h 127.0.0.1 -p "$PG_PORT" -U postgres -d "$DB_NAME" \
        -v adapter_password_file="$ADAPTER_PW_FILE" -f "$REPO/infra/postgres/adapter_role.sql" \
        </dev/null >/dev/null 2>"$STACK/adapter_role.log" \
        || { cat "$STACK/adapter_role.log" >&2; die "creating the adapter role failed"; }
}

pg_running() {  # pg_running DATADIR
    [ -f "$1/postmaster.pid" ] && "${AS_PG[@]}" "$PGBIN/pg_ctl" status -D "$1" >/dev/null 2>&1
}

psql_at() {  # psql_at PORT SQL -> prints the single value
    PGPASSWORD=$(cat "$PW_FILE") PGCONNECT_TIMEOUT=3 "$PGBIN/psql" -X -q -t -A \
        -h 127.0.0.1 -p "$1" -U postgres -d "${PSQL_DB:-postgres}" -c "$2" </dev/null
}

write_pg_conf() {  # write_pg_conf DATADIR PORT [extra lines...]
    local datadir=$1 port=$2
    shift 2
    {
        sed -e "s|@PORT@|$port|g" -e "s|@SOCKET_DIR@|$PGROOT/run|g" \
            "$REPO/infra/postgres/querybus.conf.template"
        local line
        for line in "$@"; do printf '%s\n' "$line"; done
    } | write_as_pg "$datadir/querybus.conf"
    write_as_pg "$datadir/pg_hba.conf" <"$REPO/infra/postgres/pg_hba.conf"
    if ! grep -q "^include = 'querybus.conf'" "$datadir/postgresql.conf"; then
        printf "\ninclude = 'querybus.conf'\n" | append_as_pg "$datadir/postgresql.conf"
    fi
}

pg_start() {  # pg_start DATADIR LOGFILE NAME
    "${AS_PG[@]}" "$PGBIN/pg_ctl" start -D "$1" -l "$2" -w -t 60 -s 9>&- </dev/null \
        || { tail -n 30 "$2" >&2 || true; die "$3 failed to start (log: $2)"; }
}

pg_wait_sql() {  # pg_wait_sql PORT NAME
    local deadline=$((SECONDS + 60))
    until "$PGBIN/pg_isready" -q -h 127.0.0.1 -p "$1" -t 2 && [ "$(psql_at "$1" 'SELECT 1' 2>/dev/null)" = 1 ]; do
        [ "$SECONDS" -lt "$deadline" ] || die "$2 on port $1 does not answer SELECT 1"
        sleep 0.2
    done
}

primary_up() {
    local data="$PGROOT/primary"
    if pg_running "$data" && [ -n "$PG_PORT" ] && [ "$(psql_at "$PG_PORT" 'SELECT 1' 2>/dev/null)" = 1 ]; then
        log "postgres primary already running on 127.0.0.1:$PG_PORT"
        return 0
    fi
    if pg_running "$data"; then
        log "postgres primary not answering; restarting it"
        "${AS_PG[@]}" "$PGBIN/pg_ctl" stop -D "$data" -m fast -w -t 60 -s 9>&- </dev/null || true
    fi
    pick_port PG_PORT
    save_ports
    if [ ! -f "$data/PG_VERSION" ]; then
        log "initdb primary cluster in $data"
        "${AS_PG[@]}" rm -rf "$data"
        local pwtmp="$PGROOT/pwfile.tmp"
        write_as_pg "$pwtmp" <"$PW_FILE"
        "${AS_PG[@]}" "$PGBIN/initdb" -D "$data" -U postgres --pwfile="$pwtmp" \
            --auth=scram-sha-256 --encoding=UTF8 --locale=C --no-sync \
            </dev/null >"$STACK/initdb.log" 2>&1 \
            || { "${AS_PG[@]}" rm -f "$pwtmp"; cat "$STACK/initdb.log" >&2; die "initdb failed"; }
        "${AS_PG[@]}" rm -f "$pwtmp"
    fi
    write_pg_conf "$data" "$PG_PORT"
    log "starting postgres primary on 127.0.0.1:$PG_PORT"
    pg_start "$data" "$PGROOT/log/primary.log" "postgres primary"
    pg_wait_sql "$PG_PORT" "postgres primary"
    if [ "$(psql_at "$PG_PORT" "SELECT 1 FROM pg_database WHERE datname = '$DB_NAME'")" != 1 ]; then
        psql_at "$PG_PORT" "CREATE DATABASE $DB_NAME" >/dev/null
    fi
}

replica_healthy() {
    [ -n "$PG_REPLICA_PORT" ] && pg_running "$PGROOT/replica" || return 1
    [ "$(psql_at "$PG_REPLICA_PORT" 'SELECT pg_is_in_recovery()' 2>/dev/null)" = t ] || return 1
    local n
    n=$(psql_at "$PG_PORT" "SELECT count(*) FROM pg_stat_replication WHERE application_name = '$REPLICA_APP' AND state = 'streaming'" 2>/dev/null) || n=0
    [ "${n:-0}" -ge 1 ]
}

replica_up() {
    local data="$PGROOT/replica"
    # The replica follows the primary's port: it must be restarted if that changed.
    if replica_healthy && grep -q "port=$PG_PORT " "$data/querybus.conf" 2>/dev/null; then
        log "postgres replica already running on 127.0.0.1:$PG_REPLICA_PORT"
        return 0
    fi
    if pg_running "$data"; then
        "${AS_PG[@]}" "$PGBIN/pg_ctl" stop -D "$data" -m fast -w -t 60 -s 9>&- </dev/null || true
    fi
    pick_port PG_REPLICA_PORT
    save_ports
    if [ ! -f "$data/standby.signal" ]; then
        log "pg_basebackup replica into $data"
        "${AS_PG[@]}" rm -rf "$data"
        "${AS_PG[@]}" env PGPASSFILE="$PGROOT/pgpass" "$PGBIN/pg_basebackup" \
            -h 127.0.0.1 -p "$PG_PORT" -U postgres -D "$data" -R -X stream -c fast --no-sync \
            </dev/null >"$STACK/basebackup.log" 2>&1 \
            || { cat "$STACK/basebackup.log" >&2; die "pg_basebackup failed"; }
        # -R wrote primary_conninfo into postgresql.auto.conf, which would override
        # ours; querybus.conf carries it instead so a new primary port is followed.
        "${AS_PG[@]}" sed -i '/^primary_conninfo/d' "$data/postgresql.auto.conf"
    fi
    write_pg_conf "$data" "$PG_REPLICA_PORT" \
        "" "# standby settings (replica only)" \
        "hot_standby_feedback = on" \
        "primary_conninfo = 'host=127.0.0.1 port=$PG_PORT user=postgres passfile=$PGROOT/pgpass application_name=$REPLICA_APP '"
    log "starting postgres replica on 127.0.0.1:$PG_REPLICA_PORT"
    pg_start "$data" "$PGROOT/log/replica.log" "postgres replica"
    pg_wait_sql "$PG_REPLICA_PORT" "postgres replica"
    local deadline=$((SECONDS + 60))
    until replica_healthy; do
        [ "$SECONDS" -lt "$deadline" ] || die "replica is not streaming from the primary (log: $PGROOT/log/replica.log)"
        sleep 0.2
    done
}

postgres_up() {
    ensure_postgres_installed
    pg_password
    setup_pg_owner
    pg_prepare_root
    primary_up
    adapter_role_up
    replica_up
}

# --------------------------------------------------------------------------
# etcd

etcd_running() { pid_alive "$ETCD_DIR/etcd.pid" "etcd"; }
etcd_healthy() {
    etcd_running && [ -n "$ETCD_PORT" ] && "$PYTHON" "$PROBE" etcd "http://127.0.0.1:$ETCD_PORT" --timeout 3 2>/dev/null
}

etcd_up() {
    if etcd_healthy; then
        log "etcd already running on 127.0.0.1:$ETCD_PORT"
        return 0
    fi
    if etcd_running; then stop_pid "$ETCD_DIR/etcd.pid" etcd etcd 20; fi
    command -v etcd >/dev/null || { log "etcd missing: installing Debian's etcd-server"; apt_install etcd-server; }
    # Debian's package may have started a system etcd on 2379/2380 (not ours: leave it, we use free ports).
    pick_port ETCD_PORT
    pick_port ETCD_PEER_PORT
    save_ports
    mkdir -p "$ETCD_DIR"
    local client="http://127.0.0.1:$ETCD_PORT" peer="http://127.0.0.1:$ETCD_PEER_PORT"
    log "starting etcd on $client"
    setsid etcd --name querybus --data-dir "$ETCD_DIR/data" \
        --listen-client-urls "$client" --advertise-client-urls "$client" \
        --listen-peer-urls "$peer" --initial-advertise-peer-urls "$peer" \
        --initial-cluster "querybus=$peer" --initial-cluster-state new \
        --initial-cluster-token "querybus-$ETCD_PEER_PORT" \
        --logger zap --log-outputs stderr \
        </dev/null >"$ETCD_DIR/etcd.log" 2>&1 9>&- &
    echo $! >"$ETCD_DIR/etcd.pid"
}

etcd_wait() {
    if ! "$PYTHON" "$PROBE" etcd "http://127.0.0.1:$ETCD_PORT" --timeout 30; then
        tail -n 20 "$ETCD_DIR/etcd.log" >&2 || true
        die "etcd did not become healthy (log: $ETCD_DIR/etcd.log)"
    fi
}

# --------------------------------------------------------------------------

write_env() {
    local pw apw ksec_env="" user upper
    pw=$(cat "$PW_FILE")
    apw=$(cat "$ADAPTER_PW_FILE")
    for user in "${KSEC_USERS[@]}"; do
        upper=$(printf '%s' "$user" | tr '[:lower:]' '[:upper:]')
        ksec_env+="export KAFKA_SECURE_PASSWORD_$upper=$(cat "$(ksec_password_file "$user")")"$'\n'
    done
    ksec_env=${ksec_env%$'\n'}
    (
        umask 077
        cat >"$STACK/env.tmp" <<EOF
# Written by scripts/services.sh up: settings of the local services. Source it: . .stack/env
export KAFKA_BOOTSTRAP_SERVERS=127.0.0.1:$KAFKA_PORT
export POSTGRES_HOST=127.0.0.1
export POSTGRES_PORT=$PG_PORT
export POSTGRES_DATABASE=$DB_NAME
# Adapters log in as a dedicated non-superuser role (infra/postgres/adapter_role.sql).
export POSTGRES_USER=$ADAPTER_ROLE
export POSTGRES_PASSWORD=$apw
# The cluster's superuser: for setup scripts and tests only, never for adapters.
export POSTGRES_ADMIN_USER=postgres
export POSTGRES_ADMIN_PASSWORD=$pw
export POSTGRES_REPLICA_HOST=127.0.0.1
export POSTGRES_REPLICA_PORT=$PG_REPLICA_PORT
export QUERYBUS_REPLICA_DSNS=postgresql://$ADAPTER_ROLE:$apw@127.0.0.1:$PG_REPLICA_PORT/$DB_NAME
export ETCD_ENDPOINTS=http://127.0.0.1:$ETCD_PORT
# The registry adapters register in and clients discover from (docs/registry.md).
export QUERYBUS_REGISTRY=etcd
# The secured broker (TLS, SASL, mutual TLS, ACLs); its super user is "admin".
export KAFKA_SECURE_SASL_SSL=127.0.0.1:$KSEC_SASL_PORT
export KAFKA_SECURE_SSL=127.0.0.1:$KSEC_SSL_PORT
export KAFKA_SECURE_CAFILE=$KSEC_TLS/ca.crt
export KAFKA_SECURE_CERT_DIR=$KSEC_TLS
$ksec_env
EOF
    )
    mv "$STACK/env.tmp" "$STACK/env"
}

lock() {
    mkdir -p "$STACK"
    exec 9>"$STACK/.lock"
    flock -w 300 9 || die "another scripts/services.sh holds $STACK/.lock"
}

cmd_up() {
    lock
    command -v "$PYTHON" >/dev/null || die "python3 is required"
    load_ports
    local start=$SECONDS
    # Kafka's JVM starts in the background while PostgreSQL is being set up.
    kafka_up
    ksec_up
    etcd_up
    postgres_up
    etcd_wait
    kafka_wait
    ksec_wait
    write_env
    log "all services ready in $((SECONDS - start))s"
    cat <<EOF
kafka     127.0.0.1:$KAFKA_PORT (controller $KAFKA_CONTROLLER_PORT)  log: $KAFKA_DIR/logs/server.log
kafka-sec 127.0.0.1:$KSEC_SASL_PORT SASL_SSL, 127.0.0.1:$KSEC_SSL_PORT SSL (mTLS)  log: $KSEC_DIR/logs/server.log
postgres  127.0.0.1:$PG_PORT primary, db $DB_NAME, adapter login $ADAPTER_ROLE    log: $PGROOT/log/primary.log
replica   127.0.0.1:$PG_REPLICA_PORT streaming replica              log: $PGROOT/log/replica.log
etcd      http://127.0.0.1:$ETCD_PORT                             log: $ETCD_DIR/etcd.log
settings  $STACK/env   (. .stack/env)
EOF
}

cmd_down() {
    local purge=0
    [ "${1:-}" = "--purge" ] && purge=1
    lock
    load_ports
    stop_pid "$KAFKA_DIR/kafka.pid" "kafka.Kafka" kafka 60
    stop_pid "$KSEC_DIR/kafka.pid" "$KSEC_DIR/server.properties" kafka-secure 60
    stop_pid "$ETCD_DIR/etcd.pid" etcd etcd 20
    if [ -e "$STACK/pg" ] && find_pgbin; then
        setup_pg_owner
        local which
        for which in replica primary; do
            if pg_running "$PGROOT/$which"; then
                log "stopping postgres $which"
                "${AS_PG[@]}" "$PGBIN/pg_ctl" stop -D "$PGROOT/$which" -m fast -w -t 60 -s 9>&- </dev/null \
                    || log "pg_ctl stop of $which failed"
            fi
        done
    fi
    rm -f "$STACK/env"
    if [ "$purge" = 1 ]; then
        log "purging .stack data (keeping the jar cache)"
        if [ -L "$STACK/pg" ]; then rm -rf "$(readlink "$STACK/pg")"; fi
        find "$STACK" -mindepth 1 -maxdepth 1 ! -name cache ! -name .lock -exec rm -rf {} +
    fi
    log "stopped"
}

cmd_status() {
    load_ports
    local rc=0
    if kafka_running; then
        echo "kafka     running  pid $(cat "$KAFKA_DIR/kafka.pid")  127.0.0.1:$KAFKA_PORT"
    else echo "kafka     stopped"; rc=3; fi
    if ksec_running; then
        echo "kafka-sec running  pid $(cat "$KSEC_DIR/kafka.pid")  127.0.0.1:$KSEC_SASL_PORT (SASL_SSL) 127.0.0.1:$KSEC_SSL_PORT (SSL)"
    else echo "kafka-sec stopped"; rc=3; fi
    if etcd_running; then
        echo "etcd      running  pid $(cat "$ETCD_DIR/etcd.pid")  http://127.0.0.1:$ETCD_PORT"
    else echo "etcd      stopped"; rc=3; fi
    if [ -e "$STACK/pg" ] && find_pgbin; then
        setup_pg_owner
        local which port
        for which in primary replica; do
            port=$PG_PORT; [ "$which" = replica ] && port=$PG_REPLICA_PORT
            if pg_running "$PGROOT/$which"; then
                printf '%-9s running  pid %s  127.0.0.1:%s\n' "$which" "$(head -n1 "$PGROOT/$which/postmaster.pid")" "$port"
            else printf '%-9s stopped\n' "$which"; rc=3; fi
        done
    else
        echo "primary   stopped"; echo "replica   stopped"; rc=3
    fi
    [ -f "$STACK/env" ] && echo "settings  $STACK/env"
    return "$rc"
}

case "${1:-}" in
    up) cmd_up ;;
    down) shift; cmd_down "$@" ;;
    status) cmd_status ;;
    *) echo "usage: $0 up | down [--purge] | status" >&2; exit 2 ;;
esac
