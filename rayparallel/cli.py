"""The ``rayparallel`` command: engines that outlive a notebook, as ``ipcluster`` gives.

::

    rayparallel start --profile nbserver -n 4     # engines as detached Ray actors
    rayparallel status --profile nbserver         # id, node, pid, busy/idle, names
    rayparallel engines add 2 --profile nbserver
    rayparallel list                              # profiles running on the cluster
    rayparallel stop --profile nbserver

and in any notebook or process: ``rayparallel.Client(profile="nbserver")``.
``start`` joins the Ray cluster at ``--address`` (default: the one running on this
machine: Ray's record of it, the heads rayparallel started, Ray's default port) and starts
a local Ray head first if there is none, saying so; that head listens on 127.0.0.1 only
unless ``--network``.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from collections.abc import Sequence

from . import error

DEFAULT_PROFILE = "default"
_UNITS = {"": 1, "b": 1, "k": 1e3, "kb": 1e3, "kib": 2**10, "m": 1e6, "mb": 1e6,
          "mib": 2**20, "g": 1e9, "gb": 1e9, "gib": 2**30, "t": 1e12, "tb": 1e12, "tib": 2**40}


class CommandError(Exception):
    """A problem to report in one line, with exit status 1."""


def _memory(text: str) -> int:
    match = re.fullmatch(r"\s*([0-9.]+)\s*([a-zA-Z]*)\s*", text)
    if not match or match.group(2).lower() not in _UNITS:
        raise argparse.ArgumentTypeError(f"{text!r} is not an amount of memory (e.g. 2GiB, 512MB)")
    return int(float(match.group(1)) * _UNITS[match.group(2).lower()])


def _json_dict(text: str) -> dict:
    try:
        value = json.loads(text)
    except json.JSONDecodeError as exc:
        raise argparse.ArgumentTypeError(f"not valid JSON ({exc}): {text!r}") from None
    if not isinstance(value, dict):
        raise argparse.ArgumentTypeError(f"expected a JSON object, not {text!r}")
    return value


def _positive(text: str) -> int:
    if not text.isdigit() or int(text) < 1:
        raise argparse.ArgumentTypeError(f"expected a whole number >= 1, not {text!r}")
    return int(text)


def _client(args: argparse.Namespace, **options):
    from .client import Client

    try:
        return Client(profile=args.profile, address=args.address, **options)
    except ConnectionError as exc:
        raise CommandError(str(exc)) from None
    except error.NoSuchProfile as exc:
        raise CommandError(str(exc)) from None


def _dashboard_line() -> str:
    """Where the head's dashboard is, or why there is none."""
    import ray

    url = ray._private.worker.get_dashboard_url()
    if url:
        return f"Ray's dashboard: http://{url} (this machine only)"
    return ("No dashboard: Ray's dashboard needs ray[default] (pip install 'ray[default]'), "
            "which is not installed here.")


def _join_or_start_head(args: argparse.Namespace) -> None:
    """Join the cluster given, or the one running here; start a local head if none runs."""
    from .backend.ray import ensure_ray, start_head
    from .backend.rayjoin import NoClusterHere

    try:
        ensure_ray(args.address, join=True, profile=args.profile)
    except NoClusterHere:
        try:
            address = start_head(args.port, network=args.network, dashboard=args.dashboard)
        except RuntimeError as exc:
            raise CommandError(str(exc)) from None
        reach = "other machines can join it" if args.network else \
            "it listens on 127.0.0.1 only: --network opens it to other machines"
        print(f"No Ray cluster was running on this machine: started a Ray head at {address} "
              f"({reach}; `ray stop` stops it).")
        ensure_ray(join=True)
        if args.dashboard:
            print(_dashboard_line())
    except ConnectionError as exc:
        raise CommandError(str(exc)) from None


def cmd_start(args: argparse.Namespace) -> None:
    import ray

    from .backend.ray import RayBackend
    from .backend.rayjoin import remember

    _join_or_start_head(args)
    running = RayBackend(args.address, join=True).find_engines(args.profile)
    if running:
        raise CommandError(
            f"profile {args.profile!r} already runs {len(running)} engines (ids "
            f"{sorted(running)}); add more with `rayparallel engines add N --profile "
            f"{args.profile}` or stop it with `rayparallel stop --profile {args.profile}`")
    options = {"num_cpus": args.num_cpus, "num_gpus": args.num_gpus, "memory": args.memory,
               "resources": args.resources, "runtime_env": args.runtime_env}
    rc = _client(args, num_engines=args.n, timeout=args.timeout, **options)
    if args.address is None:  # found here: later commands look for the profile there first
        remember(ray.get_runtime_context().gcs_address, args.profile)
    print(f"Started {len(rc)} engines for profile {args.profile!r}: {rc!r}")
    print(f"Attach with: rayparallel.Client(profile={args.profile!r})")
    rc.close()


def cmd_stop(args: argparse.Namespace) -> None:
    from .backend.rayjoin import forget_profile

    rc = _client(args)
    count = len(rc)
    rc.shutdown()
    forget_profile(args.profile)
    print(f"Stopped {count} engines of profile {args.profile!r}.")


def cmd_list(args: argparse.Namespace) -> None:
    from .backend.ray import RayBackend

    try:
        profiles = RayBackend(args.address, join=True).profiles()
    except ConnectionError as exc:
        raise CommandError(str(exc)) from None
    if not profiles:
        print("No profiles are running. Start one with `rayparallel start --profile NAME -n 4`.")
        return
    print(f"{'profile':<20} {'engines':>7}  ids")
    for name, ids in profiles.items():
        print(f"{name:<20} {len(ids):>7}  {ids}")


def cmd_status(args: argparse.Namespace) -> None:
    rc = _client(args)
    print(repr(rc))
    print(f"{'id':>4}  {'node':<16} {'pid':>8}  {'state':<5} {'names':>5}")
    for eid, info in rc.engine_status(timeout=args.timeout).items():
        node = info.get("node_ip") or info.get("hostname") or "?"
        print(f"{eid:>4}  {node:<16} {info.get('pid', '?'):>8}  {info['state']:<5} "
              f"{info.get('names', '?'):>5}")
    rc.close()


def cmd_engines(args: argparse.Namespace) -> None:
    rc = _client(args)
    if args.action == "add":
        ids = rc.add_engines(args.count)
        print(f"Added engines {ids} to profile {args.profile!r}; it has {len(rc)} now.")
    else:
        missing = sorted(set(args.ids) - set(rc.ids))
        if missing:
            raise CommandError(f"profile {args.profile!r} has no engine {missing[0]}; its "
                               f"engines are {rc.ids}")
        rc.remove_engines(args.ids)
        print(f"Removed engines {args.ids} from profile {args.profile!r}; "
              f"{len(rc)} remain: {rc.ids}")
    rc.close()


def cmd_demo(args: argparse.Namespace) -> None:
    from .demo import demo

    demo(args.num_engines)


def parser() -> argparse.ArgumentParser:
    top = argparse.ArgumentParser(prog="rayparallel", description=__doc__.split("\n\n")[0])
    sub = top.add_subparsers(dest="command", required=True, metavar="COMMAND")

    def command(name: str, fn, help: str) -> argparse.ArgumentParser:
        p = sub.add_parser(name, help=help, description=help)
        p.set_defaults(run=fn)
        if name != "demo":
            p.add_argument("--profile", default=DEFAULT_PROFILE,
                           help=f"name of the set of engines (default {DEFAULT_PROFILE!r})")
            p.add_argument("--address", help="Ray cluster to use (default: the one `ray "
                                             "start` runs on this machine)")
        return p

    p = command("start", cmd_start, "start engines for a profile, as detached Ray actors")
    p.add_argument("-n", type=_positive, default=4, help="how many engines (default 4)")
    p.add_argument("--port", type=int, help="port of the Ray head, if one must be started")
    p.add_argument("--network", action="store_true",
                   help="a Ray head started here listens on all of this machine's addresses, "
                        "so other machines can join it (and reach it: see README, Security); "
                        "by default it listens on 127.0.0.1 only")
    p.add_argument("--dashboard", action="store_true",
                   help="a Ray head started here runs Ray's dashboard, on 127.0.0.1 only")
    p.add_argument("--num-cpus", type=float, help="CPUs each engine reserves")
    p.add_argument("--num-gpus", type=float, help="GPUs each engine reserves")
    p.add_argument("--memory", type=_memory, help="memory each engine reserves, e.g. 2GiB")
    p.add_argument("--resources", type=_json_dict, help='custom Ray resources, JSON: {"x": 1}')
    p.add_argument("--runtime-env", type=_json_dict, help="Ray runtime_env of the engines, JSON")
    p.add_argument("--timeout", type=float, default=120, help="seconds to wait for engines")
    command("stop", cmd_stop, "stop a profile's engines")
    command("list", cmd_list, "list the profiles running on the cluster")
    p = command("status", cmd_status, "show a profile's engines: node, pid, busy/idle, names")
    p.add_argument("--timeout", type=float, default=1.0,
                   help="an engine that does not answer within this many seconds is busy")
    p = command("engines", cmd_engines, "add engines to a profile, or remove some")
    actions = p.add_subparsers(dest="action", required=True, metavar="ACTION")
    add = actions.add_parser("add", help="start COUNT more engines")
    add.add_argument("count", type=_positive)
    remove = actions.add_parser("remove", help="stop the engines with these ids")
    remove.add_argument("ids", type=int, nargs="+")
    for q in (add, remove):  # also accept the options after the action
        q.add_argument("--profile", default=argparse.SUPPRESS)
        q.add_argument("--address", default=argparse.SUPPRESS)
    p = command("demo", cmd_demo, "run the seed notebooks' workloads on a local Ray")
    p.add_argument("-n", "--num-engines", type=_positive, default=4)
    return top


def main(argv: Sequence[str] | None = None) -> None:
    """Entry point of the ``rayparallel`` command."""
    args = parser().parse_args(argv)
    try:
        args.run(args)
    except CommandError as exc:
        print(f"rayparallel {args.command}: {exc}", file=sys.stderr)
        sys.exit(1)
