# ruff: noqa: E501 - test ids and one-line reasons are long; one per line reads best
"""Which of ipyparallel's tests do not pass on rayparallel, and why (one line each).

Grouped by cause, so a group can be fixed at once; ``python -m tests.compat.report``
turns this file into ``docs/compatibility.md``. Ids are the tests' ids in ipyparallel's own
tree (``test_view.py::TestView::test_push_pull``). The runner (``conftest.py``) marks
``EXPECTED_FAILURES`` ``xfail(strict=True)``: a test that starts passing fails the run until
it is removed from here. ``SKIPPED`` tests are not run at all: they hang or take minutes.

Ids are as the whole suite runs them, in one session: a few of test_view_broadcast's tests
(crash_mux, len, the namedtuple ones) pass there only after test_view has run (its engine
count and its module, sent by value, are what they rely on), so running that module alone
shows them failing.
"""

from __future__ import annotations

#: cause -> tests failing because of it (the first cause each fails on), most tests first
EXPECTED_FAILURES: dict[str, list[str]] = {
    "ar.data arrives with each engine's reply: what a running request publishes is not seen before it finishes": [
        "test_asyncresult.py::TestAsyncResult::test_await_data",
    ],
    "by design: load_balanced_view('all').targets stays 'all' (targets=None means Ray tasks across the cluster, not the engines)": [
        "test_client.py::TestClient::test_lbview_targets",
    ],
    "by design: functions take the client names they use along, so the NameError ipyparallel expects does not happen": [
        "test_dependency.py::TestDependency::test_require_function",
    ],
    "skipped by ipyparallel itself (ordering issues in ipykernel 7)": [
        "test_magics.py::TestParallelMagics::test_cellpx_stream",
    ],
    "by design: use_cloudpickle() is rayparallel's default, where engine values win over the client globals a function brings (ipyparallel's cloudpickle lets the client's win)": [
        "test_view_broadcast.py::TestBroadcastViewCoalescing::test_use_cloudpickle",
        "test_view.py::TestView::test_use_cloudpickle",
    ],
    "xfailed by ipyparallel itself (@require with cloudpickle)": [
        "test_view.py::TestView::test_cloudpickle_require",
    ],
    "engines run requests queued behind one that failed (ipyparallel's engines abort them; a Ray actor cannot see its queue, so the client would have to abort them)": [
        "test_magics.py::TestParallelMagics::test_autopx_nonblocking",
    ],
    "inspects ipyparallel's Client internals (_io_loop, outstanding msg_ids)": [
        "test_asyncresult.py::TestAsyncResult::test_wait_for_send",
    ],
    "views resolve their targets in the engine registry, not through Client._build_targets: replacing that method on a client changes no view": [
        "test_asyncresult.py::TestAsyncResult::test_not_single_result",
    ],
    "by design: Client.session.key and CurveZMQ keys sign and encrypt ipyparallel's ZMQ messages; Ray has its own transport, with no per-message key": [
        "test_client.py::TestClient::test_curve",
    ],
    "by design: it patches is_local_ip on the alias module ipyparallel.client.client; names set on an alias never reach rayparallel's modules (and a Ray address has no ssh tunnel to warn about)": [
        "test_client.py::TestClient::test_warning_on_hostname_match",
    ],
    "by design: to_dict/from_dict go through ipyparallel's launcher classes (ipyparallel.cluster.launcher.LocalProcessLauncher) and traitlets config (Cluster.config, controller_args); rayparallel has neither": [
        "test_cluster.py::test_to_from_dict",
    ],
    "by design: Cluster.cluster_file: rayparallel keeps no cluster files (Cluster.from_file() finds the engines on Ray by profile)": [
        "test_cluster.py::test_default_from_file",
    ],
    "by design: Cluster repr shows profile, not profile_dir (rayparallel profiles are names on Ray; profile_dir is ignored, with a warning)": [
        "test_cluster.py::test_cluster_repr",
    ],
    "by design: a load-balanced task without targets is a Ray task, retried at once wherever Ray runs it (there is no engine to rule out), so retries beyond the engine count never run out of engines to end in TaskTimeout": [
        "test_lbview.py::TestLoadBalancedView::test_retries",
    ],
}

#: cause -> tests that would hang, take minutes, or skip themselves; skipped with the
#: cause as reason
SKIPPED: dict[str, list[str]] = {
    "by design, and it waits ~20 s for its timeout: its engines do not crash: it crashes ipengine through PYTHONSTARTUP, which Ray's worker processes (rayparallel's engines) never run, so waiting for a third engine ends in TimeoutError, not EngineError": [
        "test_cluster.py::test_wait_for_engines_crash",
    ],
    "hangs: it loops until a load-balanced task lands on another engine; without targets tasks run on no engine (engine_id None)": [
        "test_lbview.py::TestLoadBalancedView::test_impossible_dependency",
    ],
    "not run: needs dask.distributed (not installed); rayparallel has no Client.become_dask": [
        "test_client.py::TestClient::test_become_dask",
    ],
    "timing: a load-balanced view without targets runs Ray tasks at once, not behind the busy engines, so the abort finds the task queued only when Ray is slow to start it (it passes or fails with the machine's load)": [
        "test_lbview.py::TestLoadBalancedView::test_abort",
    ],
}

#: test_cluster.py tests of launcher classes, profile files and ipcluster's own machinery
#: rather than of the ``Cluster`` API: not run (not counted)
OUT_OF_SCOPE: dict[str, str] = {
    "test_cluster.py::test_ipython_log": "Cluster's traitlets logging set-up",
    "test_cluster.py::test_start_stop_controller": "controller launcher process",
    "test_cluster.py::test_start_stop_engines": "engine launcher classes",
    "test_cluster.py::test_get_output": "engine launcher log output",
    "test_cluster.py::test_load_profile": "ipcluster_config profile files",
    "test_cluster.py::test_cluster_abbreviations": "engine launcher classes",
    "test_cluster.py::test_cluster_manager": "ClusterManager of ipcluster's cluster files",
    "test_cluster.py::test_cluster_manager_notice_stop": "ClusterManager of cluster files",
}


def by_test(groups: dict[str, list[str]]) -> dict[str, str]:
    """``{test id: cause}``; a test listed under two causes is a mistake in this file."""
    reasons: dict[str, str] = {}
    for cause, tests in groups.items():
        for test in tests:
            if test in reasons:
                raise ValueError(f"{test} is listed under {reasons[test]!r} and {cause!r}")
            reasons[test] = cause
    return reasons


def out_of_scope(test_id: str) -> bool:
    """True for test_cluster tests not about the Cluster API (parametrized ones too)."""
    return test_id.split("[")[0] in OUT_OF_SCOPE
