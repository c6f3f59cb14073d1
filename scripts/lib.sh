# Shared by scripts/test.sh and scripts/demo.sh: install what provision and its tests need on a
# fresh Debian machine (as root), retrying flaky network steps a few times before failing clearly.

retry() {
  # retry TRIES CMD...: run CMD until it succeeds, TRIES times at most, with a growing pause.
  local tries=$1 n=1
  shift
  until "$@"; do
    if [ "$n" -ge "$tries" ]; then
      echo "error: '$*' failed $tries times; check the network or the package mirror, then re-run" >&2
      return 1
    fi
    echo "retrying in $((n * 5))s: $*" >&2
    sleep $((n * 5))
    n=$((n + 1))
  done
}

SYSTEM_PACKAGES=(
  openssh-server openssh-client sudo git curl rsync ca-certificates procps iproute2 python3-venv
  mariadb-server mariadb-client redis-server nginx supervisor nodejs logrotate openssl cron tar gzip
  mmdebstrap debootstrap apt-cacher-ng tini pebble
)

install_system_packages() {
  if [ "$(id -u)" != 0 ]; then
    echo "error: run as root (the lab and the integration tests need it)" >&2
    return 1
  fi
  local missing=()
  for pkg in "${SYSTEM_PACKAGES[@]}"; do
    dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed" || missing+=("$pkg")
  done
  if [ ${#missing[@]} -gt 0 ]; then
    echo "installing: ${missing[*]}"
    retry 3 apt-get update -qq
    # Services must not start on install: the tests and the lab start their own instances, and a
    # system apt-cacher-ng or MariaDB would hold ports they need.
    local added_policy=0
    if [ ! -e /usr/sbin/policy-rc.d ]; then
      printf '#!/bin/sh\nexit 101\n' > /usr/sbin/policy-rc.d
      chmod 755 /usr/sbin/policy-rc.d
      added_policy=1
    fi
    DEBIAN_FRONTEND=noninteractive retry 3 apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
    if [ "$added_policy" = 1 ]; then rm -f /usr/sbin/policy-rc.d; fi
  fi
}

VENV=${PROVISION_VENV:-$PWD/.venv}

install_python_env() {
  # install_python_env [EXTRAS]: the project, editable, with extras such as "test".
  local spec="."
  if [ -n "${1:-}" ]; then spec=".[$1]"; fi
  if [ ! -x "$VENV/bin/python" ]; then
    python3 -m venv "$VENV"
  fi
  retry 3 "$VENV/bin/pip" install -q --upgrade pip
  retry 3 "$VENV/bin/pip" install -q -e "$spec"
  # An editable install is not byte-compiled, and with PYTHONDONTWRITEBYTECODE set (as on some
  # CI machines) every `provision` run would compile the package again: compile it once here.
  "$VENV/bin/python" -m compileall -q "$PWD/provision" >/dev/null
  export PATH="$VENV/bin:$PATH"
}
