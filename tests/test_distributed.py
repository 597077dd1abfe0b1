"""The multi-process settings: flags over FERJAX_* environment variables, checked early."""
import argparse

import pytest

from ferjax import distributed


def _args(argv):
    p = argparse.ArgumentParser()
    distributed.add_arguments(p)
    return p.parse_args(argv)


def test_no_settings_means_one_process(monkeypatch):
    for env in [*distributed.ENV.values()]:
        monkeypatch.delenv(env, raising=False)
    assert not distributed.settings_from(_args([])).enabled


def test_flags_win_over_the_environment(monkeypatch):
    monkeypatch.setenv("FERJAX_COORDINATOR", "10.0.0.1:1234")
    monkeypatch.setenv("FERJAX_NUM_PROCESSES", "4")
    monkeypatch.setenv("FERJAX_PROCESS_ID", "3")
    monkeypatch.setenv("FERJAX_HEARTBEAT_TIMEOUT", "7")
    s = distributed.settings_from(_args(["--process-id", "1"]))
    assert s.enabled and (s.coordinator_address, s.num_processes, s.process_id) == ("10.0.0.1:1234", 4, 1)
    assert (s.heartbeat_timeout, s.collective_timeout) == (7, distributed.DEFAULT_COLLECTIVE_TIMEOUT)


def test_auto_detection_flag_alone_enables(monkeypatch):
    for env in distributed.ENV.values():
        monkeypatch.delenv(env, raising=False)
    s = distributed.settings_from(_args(["--distributed"]))
    assert s.enabled and s.coordinator_address is None


@pytest.mark.parametrize("argv", [["--num-processes", "2", "--process-id", "2"],
                                  ["--num-processes", "0"], ["--collective-timeout", "0"]])
def test_bad_settings_are_refused(argv):
    with pytest.raises(ValueError):
        distributed.settings_from(_args(argv))


def test_bad_environment_value_is_named(monkeypatch):
    monkeypatch.setenv("FERJAX_NUM_PROCESSES", "two")
    with pytest.raises(ValueError, match="FERJAX_NUM_PROCESSES"):
        distributed.settings_from(_args([]))


def test_bounded_collective_timeouts(monkeypatch):
    monkeypatch.setenv("XLA_FLAGS", "--xla_force_host_platform_device_count=1")
    distributed._bounded_collectives(42)
    import os
    flags = os.environ["XLA_FLAGS"]
    assert "--xla_cpu_collective_timeout_seconds=42" in flags
    assert "--xla_cpu_collective_call_terminate_timeout_seconds=42" in flags
