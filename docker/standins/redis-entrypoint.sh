#!/bin/sh
# Entrypoint of the local Redis stand-in image (Debian's redis-server 7.0). Same interface as
# the public redis image: arguments starting with '-' go to redis-server, which runs as the
# `redis` user in /data with protected mode off (the compose file sets a password).
set -eu
if [ "${1#-}" != "$1" ] || [ "${1%.conf}" != "$1" ]; then
  set -- redis-server "$@"
fi
if [ "$1" = redis-server ] && [ "$(id -u)" = 0 ]; then
  find . \! -user redis -exec chown redis '{}' +
  exec setpriv --reuid=redis --regid=redis --init-groups "$0" "$@"
fi
if [ "$1" = redis-server ]; then
  shift
  exec redis-server --protected-mode no "$@"
fi
exec "$@"
