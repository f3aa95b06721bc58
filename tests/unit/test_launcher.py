"""`inferq worker --gpus`: one child per GPU, pinned with CUDA_VISIBLE_DEVICES; no CUDA in the parent."""

from __future__ import annotations

import sys

import pytest

from inferq.worker.launcher import Supervisor, child_command, child_envs, detect_gpu_count, gpu_ids


def test_all_gpus_become_one_pinned_child_each() -> None:
    # given: four GPUs reported (count injected, as on a host without nvidia-smi)
    count = detect_gpu_count({"INFERQ_GPU_COUNT": "4"})
    # when
    envs = child_envs(gpu_ids("all", count), {"PATH": "/bin"})
    # then
    assert [e["CUDA_VISIBLE_DEVICES"] for e in envs] == ["0", "1", "2", "3"]
    assert all(e["PATH"] == "/bin" for e in envs)


def test_a_gpu_list_and_none() -> None:
    assert gpu_ids("1,3", 4) == ["1", "3"]
    assert gpu_ids("none", 4) == []
    assert gpu_ids("all", 0) == []


def test_a_gpu_that_does_not_exist_is_refused() -> None:
    with pytest.raises(ValueError, match="does not exist"):
        gpu_ids("0,7", 2)


def test_children_run_cpu_side_workers_with_only_the_first_running_beat() -> None:
    # when
    first = child_command("control,inference", "w-gpu0", beat=True)
    second = child_command("control,inference", "w-gpu1", beat=False)
    # then: each child is a plain worker (it never spawns more) and one beat runs
    assert first[:3] == [sys.executable, "-m", "inferq.cli"]
    assert first[first.index("--gpus") + 1] == "none"
    assert "--beat" in first and "--beat" not in second


def test_a_gpu_child_runs_as_many_pool_processes_as_asked() -> None:
    # when: two processes per GPU are asked for
    cmd = child_command("inference", "w-gpu0", beat=False, concurrency=2)
    # then: the child's Celery pool has two processes, both pinned to its GPU by its environment
    assert cmd[cmd.index("--concurrency") + 1] == "2"
    assert child_command("inference", "w-gpu0", beat=False)[cmd.index("--concurrency") + 1] == "1"


def test_supervisor_reports_each_childs_environment(tmp_path: object) -> None:
    # given: children that print the device they were pinned to
    envs = child_envs(gpu_ids("all", 2), {})
    code = "import os; print(os.environ['CUDA_VISIBLE_DEVICES'])"
    commands = [([sys.executable, "-c", code], env) for env in envs]
    # when: the supervisor runs them to completion without restarting
    sup = Supervisor(commands, restart=False)
    # then
    assert sup.run() == 0
