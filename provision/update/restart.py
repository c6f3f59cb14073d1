"""Restarting the bench without dropping a request.

``supervisorctl restart`` stops gunicorn before the new one listens: for a second or more nginx
has nothing to send requests to. So the web restart goes through a stand-in server: a second
gunicorn of the live (new) release on a free port, nginx pointed at it by a temporary config
(``nginx -t`` first; a reload is graceful), then the configured restart command, then nginx back
to the bench's own config once the restarted web answers, then the stand-in stopped (gracefully:
it finishes what it serves). Anything unexpected (no web program, no upstream to point, the
stand-in not answering) falls back to the plain restart command. A run cut in the middle is
cleaned up by the next restart: the conf.d link is put back and a leftover stand-in stopped.
"""

from __future__ import annotations

import json
from shlex import quote

from .plan import HostPlan

_RESTART = r'''
import configparser, http.client, json, os, re, signal, socket, subprocess, sys, time
p = json.loads(sys.argv[1])
bench, name, link = p["bench"], p["bench_name"], p["nginx_link"]
target = os.path.join(bench, "config", "nginx.conf")
pidfile = "/run/provision-web-%s.pid" % name
said = []

def sh(command):
    out = subprocess.run(command, shell=True, capture_output=True, text=True, timeout=600)
    if out.returncode != 0:
        detail = (out.stderr or out.stdout).strip()[-800:]
        raise SystemExit("%s failed (exit %s): %s" % (command, out.returncode, detail))
    return out.stdout

def reload_nginx():
    sh("nginx -t -q")
    sh("systemctl reload nginx 2>/dev/null || service nginx reload")

def restore_link():
    if os.path.islink(link) and os.readlink(link) == target:
        return False
    tmp = link + ".provision-tmp"
    if os.path.lexists(tmp):
        os.remove(tmp)
    os.symlink(target, tmp)
    os.replace(tmp, link)
    reload_nginx()
    return True

def gone(pid):
    try:
        if os.waitpid(pid, os.WNOHANG)[0] == pid:
            pass  # reaped our own child; its group may still hold gunicorn's workers
    except ChildProcessError:
        pass
    try:
        os.killpg(pid, 0)
        return False
    except ProcessLookupError:
        return True

def stop_stand_in():
    try:
        pid = int(open(pidfile).read().strip())
    except (OSError, ValueError):
        return
    try:
        os.killpg(pid, signal.SIGTERM)
    except ProcessLookupError:
        pass
    for _ in range(200):  # gunicorn's graceful timeout is 30 s
        if gone(pid):
            break
        time.sleep(0.2)
    else:
        try:
            os.killpg(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
    os.remove(pidfile)

def answers(port, timeout):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            conn = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
            conn.request("GET", "/api/method/ping", headers={"Host": p["site"] or "localhost"})
            if conn.getresponse().status in (200, 503):
                return True
        except (OSError, http.client.HTTPException):
            pass
        time.sleep(0.2)
    return False

def plain(reason):
    said.append("plain restart: " + reason)
    sh(p["restart_cmd"])

# what a cut run may have left
if restore_link():
    said.append("put back the nginx link a cut restart left")
stop_stand_in()
for _ in range(100):
    if subprocess.run([p["supervisorctl"], "pid"], capture_output=True).returncode == 0:
        break
    time.sleep(0.2)
if subprocess.run(["cmp", "-s", os.path.join(p["other"], "config", "supervisor.conf"),
                   os.path.join(bench, "config", "supervisor.conf")]).returncode != 0:
    sh("%s reread >/dev/null && %s update" % (p["supervisorctl"], p["supervisorctl"]))
    said.append("supervisor config changed: reread and updated")

def graceful():
    config = configparser.RawConfigParser(strict=False, interpolation=None)
    config.read(os.path.join(bench, "config", "supervisor.conf"))
    section = "program:%s-frappe-web" % name
    if not p["site"] or not config.has_section(section):
        return plain("no web program or no site to probe")
    command = config.get(section, "command")
    directory = config.get(section, "directory", fallback=bench)
    user = config.get(section, "user", fallback="root")
    upstream = re.compile(r"(upstream\s+%s-frappe\s*\{[^}]*?server\s+127\.0\.0\.1:)(\d+)" % re.escape(name))
    text = open(target).read()
    found = upstream.search(text)
    if not found or not re.search(r"-b\s+127\.0\.0\.1:\d+", command):
        return plain("no upstream or bind address to move")
    main_port = int(found.group(2))
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        spare = probe.getsockname()[1]
    stand_in = re.sub(r"-b\s+127\.0\.0\.1:\d+", "-b 127.0.0.1:%d" % spare, command)
    log = open(os.path.join(bench, "logs", "web.provision-stand-in.log"), "ab")
    proc = subprocess.Popen(["runuser", "-u", user, "--", "sh", "-c", "cd %s && exec %s" % (directory, stand_in)],
                            stdout=log, stderr=log, stdin=subprocess.DEVNULL, start_new_session=True)
    open(pidfile, "w").write(str(proc.pid))
    if not answers(spare, 120):
        stop_stand_in()
        return plain("the stand-in web server did not answer")
    tmp = link + ".provision-tmp"
    with open(tmp, "w") as fh:
        fh.write(upstream.sub(lambda m: m.group(1) + str(spare), text, count=1))
    os.replace(tmp, link)
    try:
        reload_nginx()
    except SystemExit as exc:
        restore_link()
        stop_stand_in()
        return plain("nginx refused the stand-in config: %s" % exc)
    time.sleep(1.0)
    try:
        sh(p["restart_cmd"])
        if not answers(main_port, 180):
            said.append("the restarted web server did not answer on %d within 180s" % main_port)
    finally:
        restore_link()
        time.sleep(1.5)  # nginx's old workers finish the requests they sent to the stand-in
        stop_stand_in()
    said.append("web restarted behind a stand-in on port %d" % spare)

graceful()
print(json.dumps({"said": said}))
'''


def restart_script(plan: HostPlan, other_path: str, probe_site: str) -> str:
    """(root) restart the bench behind a stand-in web server (see the module docstring)."""
    params = {"bench": plan.bench_path, "bench_name": plan.bench_name, "other": other_path,
              "nginx_link": f"/etc/nginx/conf.d/{plan.bench_name}.conf", "restart_cmd": plan.restart_cmd,
              "supervisorctl": plan.supervisorctl, "site": probe_site}
    return f"python3 - {quote(json.dumps(params))} <<'PV_PY'\n{_RESTART.strip()}\nPV_PY\n"
