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
        "test_client.py::TestClient::test_outstanding",
    ],
    "missing: Client.results (ipyparallel's cache of every result received)": [
        "test_client.py::TestClient::test_purge_all_local_results",
        "test_client.py::TestClient::test_purge_local_results",
    ],
    "missing: AsyncResult.msg_ids (one message id per part; get_result, abort and history by id)": [
        "test_asyncresult.py::TestAsyncResult::test_wait_interactive_first_exception",
        "test_asyncresult.py::TestAsyncResult::test_wait_first_exception",
        "test_asyncresult.py::TestAsyncResult::test_map_wait_first_exception",
        "test_view.py::TestView::test_abort",
        "test_lbview.py::TestLoadBalancedView::test_abort",
        "test_view_broadcast.py::TestBroadcastViewCoalescing::test_abort",
        "test_view_broadcast.py::TestBroadcastViewCoalescing::test_get_result",
        "test_view.py::TestView::test_get_result",
        "test_client.py::TestClient::test_get_result",
        "test_client.py::TestClient::test_get_execute_result",
        "test_asyncresult.py::TestAsyncResult::test_hubresult_timestamps",
        "test_asyncresult.py::TestAsyncResult::test_owner_pop",
        "test_asyncresult.py::TestAsyncResult::test_split",
    ],
    "engine code's `import ipyparallel` gets the real package there (the alias acts in the client process only; installing it on engines slowed %px cells past test_px_blocking's limit)": [
        "test_view.py::TestView::test_data_pub_single",
        "test_view.py::TestView::test_data_pub",
        "test_view_broadcast.py::TestBroadcastViewCoalescing::test_data_pub_single",
        "test_view_broadcast.py::TestBroadcastViewCoalescing::test_data_pub",
    ],
    "ar.data arrives with each engine's reply: what a running request publishes is not seen before it finishes": [
        "test_asyncresult.py::TestAsyncResult::test_await_data",
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
    "missing: the hub's task database: Client.db_query, hub_history, get_result, resubmit": [
        "test_client.py::TestClient::test_resubmit_header",
        "test_client.py::TestClient::test_resubmit_chain",
        "test_client.py::TestClient::test_resubmit",
        "test_client.py::TestClient::test_purge_hub_results",
        "test_client.py::TestClient::test_purge_everything",
        "test_client.py::TestClient::test_purge_all_results",
        "test_client.py::TestClient::test_purge_all_hub_results",
        "test_client.py::TestClient::test_resubmit_aborted",
        "test_view_broadcast.py::TestBroadcastViewCoalescing::test_compositeerror_truncate",
        "test_client.py::TestClient::test_db_query_default_keys",
        "test_client.py::TestClient::test_db_query_dt",
        "test_client.py::TestClient::test_db_query_get_result",
        "test_client.py::TestClient::test_db_query_in",
        "test_client.py::TestClient::test_db_query_keys",
        "test_client.py::TestClient::test_db_query_msg_id",
        "test_client.py::TestClient::test_hub_history",
        "test_client.py::TestClient::test_resubmit_badkey",
        "test_client.py::TestClient::test_resubmit_inflight",
        "test_view.py::TestView::test_compositeerror_truncate",
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
    "by design: functions take the client names they use along, so the NameError ipyparallel expects does not happen": [
        "test_dependency.py::TestDependency::test_require_function",
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
    "by design: use_cloudpickle() is rayparallel's default, where engine values win over the client globals a function brings (ipyparallel's cloudpickle lets the client's win)": [
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
