"""The order of onboarding, and the rules that keep the operator from being locked out.

1. First contact: host keys fetched without authenticating, confirmed, pinned (hostkey.py).
2. One admin connection: the deploy user's key if that already works (an onboarded host), else
   the initial credentials (a root password or a cloud key).
3. Bootstrap steps, each checked before it changes anything (steps.py).
4. The firewall, applied with a revert timer that only a fresh login cancels (firewall.py).
5. A key login as the deploy user, with sudo, proven on a second connection.
6. Only then sshd hardening, checked with ``sshd -t`` / ``sshd -T`` and proven again (sshd.py).
7. The host in the inventory (inventory_edit.py); the deploy is the command's business.
"""

from __future__ import annotations

import contextlib
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, NoReturn

from ..connection import SSHConnection
from ..connspec import ConnectionSpec
from ..errors import AuthError, ConnectError, HostKeyError, OptionsError, TaskFailed
from . import firewall, hostkey, sshd
from .inventory_edit import plan_host
from .steps import CHANGE, SKIP, Outcome, Step, StepFailed, bootstrap_steps, run_apply, run_check

_CUT_HINT = "check that the ruleset accepts the SSH port (or raise --revert-after); this run did not touch sshd"
PROOF_TIMEOUT = 20.0  # a fresh login after a reload or a new ruleset: sshd may take a moment to listen again


@dataclass
class Request:
    """Everything an onboarding needs, from the command line."""

    address: str
    name: str
    group: str
    inventory: Path
    deploy_key: Path
    port: int = 22
    user: str = "root"
    password: str | None = field(default=None, repr=False)
    key_file: Path | None = None
    accept_host_key: str | None = None
    deploy_user: str = "frappe-ops"
    timezone: str = "Etc/UTC"
    check: bool = False
    revert_after: int = 90
    lock_timeout: int = 300
    ruleset: str | None = None
    connect_timeout: float = 10.0
    confirm: Callable[[str], bool] | None = None

    @property
    def known_hosts(self) -> Path:
        """The project's known_hosts: next to the inventory."""
        return self.inventory.resolve().parent / "known_hosts"


@dataclass
class Summary:
    changed: list[str] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)


class Onboarding:
    """One onboarding run; ``say`` gets every line shown to the operator."""

    def __init__(self, request: Request, say: Callable[[str], None]) -> None:
        self.request = request
        self.say = say
        self.summary = Summary()
        self._known_hosts: Path = request.known_hosts
        self._temp: tempfile.TemporaryDirectory[str] | None = None

    # -- the whole run ------------------------------------------------------------------------------

    def run(self) -> Summary:
        try:
            self._first_contact()
            public_key = self._deploy_public_key()
            admin, become = self._admin_connection()
            with contextlib.closing(admin):
                self._run_steps(admin, become, public_key)
            self._inventory()
        finally:
            if self._temp is not None:
                self._temp.cleanup()
        return self.summary

    def _mark(self, status: str, name: str, detail: str) -> None:
        verb = {"changed": "would change" if self.request.check else "changed"}.get(status, status)
        self.say(f"{verb:>12}  {name}: {detail}")
        if status == "changed":
            self.summary.changed.append(name)
        elif status == "skipped":
            self.summary.skipped.append(name)

    # -- 1. host key ------------------------------------------------------------------------------

    def _first_contact(self) -> None:
        r = self.request
        keys = hostkey.fetch_host_keys(r.address, r.port, timeout=r.connect_timeout)
        pinned = hostkey.check_pinned(self._known_hosts, r.address, r.port, keys)  # a changed key raises here
        chosen = keys[0]
        if r.accept_host_key:
            expected = hostkey.normalize_fingerprint(r.accept_host_key)
            match = hostkey.matching_key(keys, expected)
            if match is None:
                raise HostKeyError(
                    f"{r.address}:{r.port} presented {', '.join(k.fingerprint for k in keys)}, not the expected "
                    f"{expected}. Refused: no user name, password or key was sent to it.",
                    hint="compare with the fingerprints on the server's console; a mismatch can mean someone is "
                         "in the middle",
                )
            chosen = match
        elif not pinned:
            shown = "\n".join(f"    {k.key.get_name():22} {k.fingerprint}" for k in keys)
            question = (f"{r.address}:{r.port} is not known yet. Its host keys:\n{shown}\n"
                        "Compare with the server's console (cloud-init prints them). "
                        f"Pin its {chosen.key.get_name()} key {chosen.fingerprint}?")
            if r.confirm is None:
                raise OptionsError(f"{r.address}:{r.port} is not pinned and there is no terminal to confirm its key "
                                   f"{chosen.fingerprint}",
                                   hint="pass --accept-host-key SHA256:... with the fingerprint from the console")
            if not r.confirm(question):
                raise HostKeyError(f"host key of {r.address}:{r.port} not confirmed; nothing was sent to it")
        if pinned:
            self._mark("ok", "host key", f"{chosen.fingerprint} pinned in {self._known_hosts}")
            return
        if r.check:
            self._temp = tempfile.TemporaryDirectory(prefix="provision-onboard-")
            self._known_hosts = Path(self._temp.name) / "known_hosts"
        hostkey.pin_host_key(self._known_hosts, r.address, r.port, chosen)
        self._mark("changed", "host key", f"pin {chosen.key.get_name()} {chosen.fingerprint} in "
                                          f"{r.known_hosts}")

    # -- 2. connections -----------------------------------------------------------------------------

    def _deploy_public_key(self) -> str:
        key = self.request.deploy_key
        public = key.with_name(key.name + ".pub")
        if key.exists() and public.exists():
            return public.read_text().strip()
        if key.exists():
            raise OptionsError(f"deploy key {key} has no public half {public}",
                               hint=f"recreate it: ssh-keygen -y -f {key} > {public}")
        if self.request.check:
            self._mark("changed", "deploy key", f"generate {key}")
            return "ssh-ed25519 AAAA-not-generated-in-check-mode"
        import subprocess

        key.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        result = subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", "provision-deploy",
                                 "-f", str(key)], capture_output=True, text=True, timeout=60, check=False)
        if result.returncode != 0:
            raise OptionsError(f"cannot generate the deploy key {key}: {result.stderr.strip()}")
        self._mark("changed", "deploy key", f"generated {key}")
        return public.read_text().strip()

    def _connection(self, user: str, *, password: str | None = None, key: Path | None = None,
                    timeout: float | None = None) -> SSHConnection:
        r = self.request
        spec = ConnectionSpec(name=r.name, host=r.address, port=r.port, user=user,
                              private_key_file=str(key) if key else None, password=password,
                              become_password=password if user != "root" else None)
        return SSHConnection(spec, known_hosts=[self._known_hosts], connect_timeout=timeout or r.connect_timeout)

    def _deploy_login(self, timeout: float | None = None) -> SSHConnection:
        """A fresh connection as the deploy user with its key, proven to have passwordless sudo."""
        r = self.request
        conn = self._connection(r.deploy_user, key=r.deploy_key, timeout=timeout)
        try:
            result = conn.run("sudo -n true && hostname", timeout=30)
            if result.rc != 0:
                raise AuthError(f"{r.deploy_user}@{r.address} logged in but `sudo -n` failed: {result.tail()}")
        except BaseException:
            conn.close()
            raise
        return conn

    def _admin_connection(self) -> tuple[SSHConnection, str | None]:
        """The connection the steps run over, and the user to become (None: it is root already)."""
        r = self.request
        if r.deploy_key.exists():
            try:
                conn = self._deploy_login()
                self.say(f"{'ok':>12}  login: {r.deploy_user} with {r.deploy_key} (sudo works)")
                return conn, "root"
            except ConnectError:
                pass
        if r.password is None and r.key_file is None:
            raise OptionsError(f"{r.deploy_user} cannot log in to {r.address} with {r.deploy_key} yet, and no "
                               "initial credential was given",
                               hint="pass --ask-pass (a password prompt), --password-file FILE or --key FILE")
        conn = self._connection(r.user, password=r.password, key=r.key_file)
        conn.open()
        how = "a password" if r.password is not None else str(r.key_file)
        self.say(f"{'ok':>12}  login: {r.user} with {how}")
        return conn, None if r.user == "root" else "root"

    # -- 3-6. steps on the host -------------------------------------------------------------------

    def _runner(self, conn: SSHConnection, become: str | None) -> Callable[[str, bytes | None, float],
                                                                             tuple[int, str, str]]:
        def run(script: str, stdin: bytes | None, timeout: float) -> tuple[int, str, str]:
            result = conn.run(script, stdin=stdin, become_user=become, timeout=timeout)
            return result.rc, result.stdout, result.stderr

        return run

    def _run_steps(self, admin: SSHConnection, become: str | None, public_key: str) -> None:
        r = self.request
        run = self._runner(admin, become)
        rc, out, err = run(sshd.preflight_script(), None, 60)
        if rc != 0:
            raise self._failed("sshd preflight", f"the host's sshd config is not usable as it is: "
                                                 f"{(out + err).strip()}", "fix the host's sshd config first; "
                                                 "nothing was changed on it")
        for step in bootstrap_steps(user=r.deploy_user, public_key=public_key, name=r.name, timezone=r.timezone,
                                    lock_timeout=r.lock_timeout):
            self._step(run, step)
        ruleset = r.ruleset if r.ruleset is not None else firewall.render_ruleset(r.port)
        self._firewall(run, ruleset)
        proof = "key login as the deploy user, with sudo, on a second connection"
        if r.check:
            self.say(f"{'would prove':>12}  proof: {proof}, before sshd is touched")
        else:
            with self._proof(proof):
                pass
        self._harden(run)

    def _step(self, run: Any, step: Step) -> Outcome:
        try:
            outcome = run_check(run, step)
            if outcome.status == CHANGE and not self.request.check:
                outcome = run_apply(run, step)
                if outcome.status != SKIP:
                    outcome = Outcome(CHANGE, outcome.detail)
        except StepFailed as exc:
            raise self._failed(step.name, str(exc), None) from None
        status = {CHANGE: "changed", SKIP: "skipped"}.get(outcome.status, "ok")
        self._mark(status, step.name, outcome.detail)
        return outcome

    @contextlib.contextmanager
    def _proof(self, what: str) -> Iterator[SSHConnection]:
        """A fresh login as the deploy user (retried for a bounded time); yields it, then closes it."""
        deadline = time.monotonic() + PROOF_TIMEOUT
        while True:
            try:
                conn = self._deploy_login()
                break
            except ConnectError as exc:
                if time.monotonic() > deadline:
                    raise exc
                time.sleep(1)
        try:
            yield conn
        finally:
            conn.close()
        self._mark("ok", "proof", what)

    def _fresh_login(self, deadline: float) -> tuple[SSHConnection, str | None]:
        """A new connection by any credential we have (deploy key first); retried while the network refuses."""
        r = self.request
        while True:
            timeout = max(1.0, min(r.connect_timeout, deadline - time.monotonic()))
            try:
                try:
                    return self._deploy_login(timeout), "root"
                except AuthError:
                    if r.password is None and r.key_file is None:
                        raise
                    conn = self._connection(r.user, password=r.password, key=r.key_file, timeout=timeout)
                    conn.open()
                    return conn, None if r.user == "root" else "root"
            except AuthError:
                raise  # the network let us in: waiting will not help
            except ConnectError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(1)

    def _firewall(self, run: Any, ruleset: str) -> None:
        """Apply the ruleset under a revert timer that only a fresh login, through the new rules, cancels."""
        r = self.request
        name = "firewall (nftables)"
        rc, out, _ = run(firewall.check_script(), ruleset.encode(), 60)
        if rc != CHANGE or r.check:
            self._mark("changed" if rc == CHANGE else "ok", name, out.strip())
            return
        rc, out, err = run(firewall.arm_script(r.revert_after), ruleset.encode(), 60)
        if rc != 0:
            raise self._failed(name, (err or out).strip(), "nothing was applied; fix the ruleset (nft -c -f FILE)")
        armed = time.monotonic()
        time.sleep(firewall.APPLY_DELAY + 1)
        # The login and the confirmation must both be done before the timer fires.
        try:
            fresh, become = self._fresh_login(armed + firewall.APPLY_DELAY + r.revert_after - 5)
        except ConnectError as exc:
            self._wait_for_revert(armed, exc)
        with contextlib.closing(fresh):
            result = fresh.run(firewall.confirm_script(), become_user=become, timeout=30)
        if result.rc != 0:
            if "reverted" in result.stderr:
                raise self._failed(name, "the revert timer fired before a fresh login got through: the previous "
                                         "ruleset is back and the host is reachable", _CUT_HINT)
            raise self._failed(name, result.tail(), f"raise --revert-after (now {r.revert_after} s)")
        self._mark("changed", name, "applied; a fresh login through it worked, the revert timer is cancelled")

    def _wait_for_revert(self, armed: float, cause: ConnectError) -> NoReturn:
        """No fresh login through the new rules: the timer restores the old ones; say so once it has."""
        r = self.request
        self.say(f"{'failed':>12}  firewall (nftables): no fresh login through the new ruleset ({cause.message}); "
                 f"waiting for the revert timer ({r.revert_after} s)")
        time.sleep(max(0.0, armed + firewall.APPLY_DELAY + r.revert_after + 2 - time.monotonic()))
        try:
            probe, become = self._fresh_login(time.monotonic() + 60)
        except AuthError:
            state = "unknown: sshd answers but refused our credentials"
        except ConnectError:
            raise ConnectError(f"{r.address} is still unreachable after the firewall revert timer",
                               hint="use the provider's console: `nft delete table inet provision` restores access") \
                from None
        else:
            with contextlib.closing(probe):
                state = probe.run(firewall.status_script(), become_user=become, timeout=30).stdout.strip()
        raise self._failed("firewall (nftables)", f"the new ruleset cut fresh logins; the revert timer restored the "
                                                  f"previous one (state: {state}) and the host is reachable again",
                           _CUT_HINT)

    def _harden(self, run: Any) -> None:
        r = self.request
        name = "sshd hardening"
        users = ["root", r.deploy_user]
        dropin = sshd.dropin_text().encode()
        rc, out, err = run(sshd.check_script(users), dropin, 60)
        if rc != CHANGE or r.check:
            if rc not in (0, CHANGE):
                raise self._failed(name, (err or out).strip(), None)
            self._mark("changed" if rc == CHANGE else "ok", name, out.strip())
            return
        rc, out, err = run(sshd.install_script(), dropin, 60)
        if rc != 0:
            raise self._failed(name, (err or out).strip(), "the previous sshd config is in place; nothing changed")
        try:
            rc, out, err = run(sshd.effective_script(users), None, 60)
            wrong = sshd.not_hardened(sshd.parse_effective(out), users) if rc == 0 else [err.strip()]
            if wrong:
                raise StepFailed(name, "sshd -T does not show the hardened values: " + "; ".join(wrong))
            with self._proof("fresh key login as the deploy user after the sshd reload"):
                pass
        except (StepFailed, ConnectError) as exc:
            restored = run(sshd.restore_script(), None, 60)
            state = "restored" if restored[0] == 0 else f"NOT restored ({restored[2].strip()})"
            raise self._failed(name, f"{exc}; the previous sshd config was {state}", None) from None
        run(sshd.forget_backup_script(), None, 30)
        self._mark("changed", name, f"{sshd.DROPIN}: no password or root login (sshd -T checked, fresh login "
                                    "proven)")

    # -- 7. inventory --------------------------------------------------------------------------------

    def _inventory(self) -> None:
        r = self.request
        edit = plan_host(r.inventory, group=r.group, name=r.name, host_vars=self.host_vars())
        if not edit.changed:
            self._mark("ok", "inventory", f"{r.name} is in group {r.group} of {r.inventory}")
            return
        self.say(edit.diff().rstrip("\n"))
        if not r.check:
            edit.write()
        self._mark("changed", "inventory", f"{r.name} in group {r.group} of {r.inventory}")

    def host_vars(self) -> dict[str, Any]:
        r = self.request
        values: dict[str, Any] = {"ssh_host": r.address, "ssh_port": r.port if r.port != 22 else None,
                                  "ssh_user": r.deploy_user, "ssh_private_key_file": _display_path(r.deploy_key)}
        if r.known_hosts != Path.cwd().resolve() / "known_hosts":
            values["ssh_known_hosts_file"] = str(r.known_hosts)
        return values

    def _failed(self, step: str, message: str, hint: str | None) -> TaskFailed:
        return TaskFailed(f"onboarding {self.request.name} ({self.request.address}): {step}: {message}", hint=hint)


def _display_path(path: Path) -> str:
    """``~/…`` for a path under the home directory (portable between control hosts), else absolute."""
    absolute = path.expanduser().resolve()
    with contextlib.suppress(ValueError):
        return "~/" + str(absolute.relative_to(Path.home().resolve()))
    return str(absolute)
