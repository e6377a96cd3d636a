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
    "engines run requests queued behind one that failed (ipyparallel aborts them)": [
        "test_magics.py::TestParallelMagics::test_autopx_nonblocking",
    ],
    "missing: ipyparallel.serialize.can / uncan (ipyparallel's canning of arguments)": [
        "test_dependency.py::TestDependency::test_require_imports",
    ],
    "inspects ipyparallel's Client internals (_build_targets, _ids, _engines, _io_loop, session, is_local_ip)": [
        "test_asyncresult.py::TestAsyncResult::test_not_single_result",
        "test_asyncresult.py::TestAsyncResult::test_wait_for_send",
        "test_client.py::TestClient::test_curve",
        "test_client.py::TestClient::test_ids_list",
        "test_client.py::TestClient::test_targets",
        "test_client.py::TestClient::test_view_indexing",
        "test_client.py::TestClient::test_warning_on_hostname_match",
        "test_asyncresult.py::TestAsyncResult::test_error_engine_info_execute",
        "test_asyncresult.py::TestAsyncResult::test_error_engine_info_apply",
    ],
    "missing: AsyncResult.engine_uuid (engine metadata)": [
        "test_view_broadcast.py::TestBroadcastViewCoalescing::test_engine_metadata",
    ],
    "engine code's `import ipyparallel` gets the real package there (the alias acts in the client process only)": [
        "test_view.py::TestView::test_data_pub_single",
        "test_view.py::TestView::test_data_pub",
        "test_asyncresult.py::TestAsyncResult::test_await_data",
        "test_view_broadcast.py::TestBroadcastViewCoalescing::test_data_pub_single",
        "test_view_broadcast.py::TestBroadcastViewCoalescing::test_data_pub",
    ],
    "by design: load_balanced_view('all').targets stays 'all' (targets=None means Ray tasks across the cluster, not the engines)": [
        "test_client.py::TestClient::test_lbview_targets",
    ],
    "Cluster.wait_for_engines does not notice an engine set whose engines crashed at start": [
        "test_cluster.py::test_wait_for_engines_crash",
    ],
    "cluster files (cluster_file, config, to_dict/from_dict): rayparallel keeps none, engines are found on Ray by profile": [
        "test_cluster.py::test_to_from_dict",
        "test_cluster.py::test_default_from_file",
    ],
    "Cluster repr: ipyparallel shows profile_dir (rayparallel has no profile directories)": [
        "test_cluster.py::test_cluster_repr",
    ],
    "pull of a dotted name ('a.b'): ipyparallel evaluates it on the engine": [
        "test_view_broadcast.py::TestBroadcastViewCoalescing::test_nested_getitem_setitem",
        "test_view.py::TestView::test_nested_getitem_setitem",
    ],
    "missing: track= / view.track (zmq send tracking)": [
        "test_view_broadcast.py::TestBroadcastViewCoalescing::test_apply_tracked",
        "test_view_broadcast.py::TestBroadcastViewCoalescing::test_push_tracked",
        "test_view.py::TestView::test_apply_tracked",
        "test_view.py::TestView::test_push_tracked",
        "test_view.py::TestView::test_scatter_tracked",
    ],
    "LoadBalancedView.imap: a generator, no cancel()": [
        "test_lbview.py::TestLoadBalancedView::test_imap_infinite",
        "test_lbview.py::TestLoadBalancedView::test_imap_unordered",
    ],
    "missing: error.TaskTimeout (the timeout flag raises TimeoutError)": [
        "test_lbview.py::TestLoadBalancedView::test_retries",
        "test_lbview.py::TestLoadBalancedView::test_short_timeout",
    ],
    "Client.wait() refuses concurrent.futures.Future": [
        "test_client.py::TestClient::test_await_future",
    ],
    "Client.wait_for_engines(block=False) returns no Future": [
        "test_client.py::TestClient::test_wait_for_engines",
    ],
    "a dead engine raises EngineError itself, not a RemoteError whose ename is EngineError": [
        "test_lbview.py::TestLoadBalancedView::test_z_crash",
    ],
    "by design: functions take the client names they use along (globals resolve differently)": [
        "test_view_broadcast.py::TestBroadcastViewCoalescing::test_push_function_globals",
        "test_view.py::TestView::test_push_function_globals",
    ],
    "by design: functions take the client names they use along, so the NameError ipyparallel expects does not happen": [
        "test_dependency.py::TestDependency::test_require_function",
    ],
    "get(return_exceptions=True): the errors returned are not the ones ipyparallel's test compares": [
        "test_asyncresult.py::TestAsyncResult::test_return_exceptions",
    ],
    "missing: Client.wait_interactive()": [
        "test_client.py::TestClient::test_wait_interactive",
    ],
    "missing: ipyparallel.client.view.LazyMapIterator": [
        "test_executor.py::TestExecutor::test_executor_map",
    ],
    "missing: ipyparallel.register_joblib_backend": [
        "test_joblib.py::TestJobLib::test_default_backend",
    ],
    "skipped by ipyparallel itself (ordering issues in ipykernel 7)": [
        "test_magics.py::TestParallelMagics::test_cellpx_stream",
    ],
    "use_cloudpickle: client-side globals are not sent with functions as ipyparallel expects": [
        "test_view_broadcast.py::TestBroadcastViewCoalescing::test_use_cloudpickle",
        "test_view.py::TestView::test_use_cloudpickle",
    ],
    "xfailed by ipyparallel itself (@require with cloudpickle)": [
        "test_view.py::TestView::test_cloudpickle_require",
    ],
}

#: cause -> tests that would hang, take minutes, or skip themselves; skipped with the
#: cause as reason
SKIPPED: dict[str, list[str]] = {
    "timing, by design: a load-balanced view without targets runs Ray tasks at once, not queued behind the busy engines, so whether abort() finds them still waiting depends on Ray's free workers": [
        "test_lbview.py::TestLoadBalancedView::test_abort",
    ],
    "hangs: it loops until a load-balanced task lands on another engine; without targets tasks run on no engine (engine_id None)": [
        "test_lbview.py::TestLoadBalancedView::test_impossible_dependency",
    ],
    "not run: needs dask.distributed (not installed); rayparallel has no Client.become_dask": [
        "test_client.py::TestClient::test_become_dask",
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
