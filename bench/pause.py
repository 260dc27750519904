# The pause at the action's cost per syscall (docs/gate.md), run in a box from a workdir holding
# allowed/ with 1000 empty pre-existing files and a policy allowing them:
#   printf 'gate:\n  fs:\n    rules:\n      - { path: "allowed/**", decision: allow }\n' > policy.yaml
#   fourwall run -p policy.yaml --approver 'exit 1' -- python3 pause.py pause
#   node <weak-box bundle> --weaken pause --policy policy.yaml --approver 'exit 1' -- python3 pause.py no-pause
import os
import sys
import time

N = 1000


def median(fn, prep=None, rounds=5):
    times = []
    for _ in range(rounds):
        if prep:
            prep()
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    times.sort()
    return times[len(times) // 2] / N * 1e6


os.makedirs("new", exist_ok=True)
names = [f"new/f{i}" for i in range(N)]


def make():
    for n in names:
        os.close(os.open(n, os.O_WRONLY | os.O_CREAT, 0o644))


def unlink_new():
    for n in names:
        os.unlink(n)


def opens():
    for n in names:
        os.close(os.open(n, os.O_RDONLY))


res = {"unlink-new": median(unlink_new, make)}
make()
res["open-no-trunc"] = median(opens)
unlink_new()
# pre-existing files gate.fs allows: each unlink is a round trip through fourwall, then continues
pre = sorted(os.listdir("allowed"))
t = time.perf_counter()
for n in pre:
    os.unlink("allowed/" + n)
res["unlink-allowed-preexisting"] = (time.perf_counter() - t) / len(pre) * 1e6
print(sys.argv[1], " ".join(f"{k}={v:.1f}us" for k, v in res.items()), flush=True)
