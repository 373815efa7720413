#!/usr/bin/env bash
# Start PostgreSQL (127.0.0.1:5432) and Mosquitto (127.0.0.1:1883) if they are not answering.
# The commands are the machine's own (see the machine notes); nothing here installs a server.
set -u
port_open() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

if ! port_open 5432; then
  echo "PostgreSQL is down; starting it"
  if ls /etc/postgresql >/dev/null 2>&1; then
    pg_ctlcluster --skip-systemctl-redirect "$(ls /etc/postgresql | head -n1)" main start || true
  fi
fi
if ! port_open 1883; then
  echo "Mosquitto is down; starting it"
  if [ -f /etc/mosquitto/mosquitto.conf ]; then
    mosquitto -d -c /etc/mosquitto/mosquitto.conf || true
  fi
fi
for _ in $(seq 1 50); do
  port_open 5432 && port_open 1883 && exit 0
  sleep 0.2
done
port_open 5432 || echo "warning: PostgreSQL is not reachable on 127.0.0.1:5432"
port_open 1883 || echo "warning: Mosquitto is not reachable on 127.0.0.1:1883"
exit 0
