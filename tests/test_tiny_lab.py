"""tiny_lab's worker pool under the failures a long run meets: a kill (SIGTERM) ends the
workers, a worker that dies or a job that fails stops the run with a message instead of
leaving it waiting for ever. Each case runs a small script in its own process."""
import os
import subprocess
import sys
import time

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SCRIPT = f'''
import os, sys, time
sys.path.insert(0, {ROOT!r})
import tiny_lab

def job(j, folder, tick):
    open(os.path.join(folder, f"started-{{os.getpid()}}"), "w").close()
    tick(1)
    if j == "die":
        os._exit(3)
    if j == "fail":
        raise ValueError("this job is broken")
    time.sleep(120)                       # a long job: only a kill ends it early
    return j

if __name__ == "__main__":
    try:
        for _ in tiny_lab.run_jobs(job, sys.argv[2:], sys.argv[1], workers=2, threads=1, total_rows=2):
            pass
    except KeyboardInterrupt:
        sys.exit(130)
    except RuntimeError as e:
        print(e, file=sys.stderr)
        sys.exit(1)
'''


def start(tmp_path, *jobs):
    script = tmp_path / "run.py"
    script.write_text(SCRIPT)
    return subprocess.Popen([sys.executable, str(script), str(tmp_path), *jobs],
                            stderr=subprocess.PIPE, text=True)


def workers_started(tmp_path, n, proc, deadline=120):
    end = time.monotonic() + deadline
    while time.monotonic() < end and proc.poll() is None:
        pids = [int(f.split("-")[1]) for f in os.listdir(tmp_path) if f.startswith("started-")]
        if len(pids) >= n:
            return pids
        time.sleep(0.05)
    raise AssertionError(f"{n} workers did not start: {proc.poll()}")


def gone(pid):
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    return False


def test_a_kill_ends_the_workers(tmp_path):
    proc = start(tmp_path, "a", "b")
    pids = workers_started(tmp_path, 2, proc)
    proc.terminate()                                   # SIGTERM, as `kill` sends it
    assert proc.wait(timeout=60) == 130
    end = time.monotonic() + 30                        # reaped by run_jobs before it returned
    while not all(map(gone, pids)) and time.monotonic() < end:
        time.sleep(0.05)
    assert all(map(gone, pids))


@pytest.mark.parametrize("job,message", [("die", "a worker process died (exit code 3)"),
                                         ("fail", "ValueError: this job is broken")])
def test_a_dead_worker_or_a_failed_job_stops_the_run(tmp_path, job, message):
    proc = start(tmp_path, job, "long")
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 1 and message in err
