"""Launch the studio: train, monitor, browse rollouts, compare checkpoints, chat, export and serve, in a browser.

    python app.py                                  # http://127.0.0.1:7860, runs in ./runs
    python app.py --runs-dir runs --port 7861
    python app.py --auth alice:secret              # or RRFT_STUDIO_AUTH=alice:secret python app.py
    python app.py --host 0.0.0.0 --auth alice:...  # reachable from other machines: a password is required
    python app.py --models-dir /models --rewards-dir my_rewards   # local checkpoints; module:function rewards
    python app.py --data-dir data                  # data files read and generated in ./data (default: ~/.cache/...)
    python app.py --exports-dir /models/exports    # where the Export tab writes (default: exports/ in the runs folder)

Safe by default: it listens on 127.0.0.1 only (another address needs --auth, or --insecure-no-auth), makes
no public share link unless --share, and before a login serves nothing but the login form. Every path a form
field names (run name, data files, cache, checkpoints, the Data tab's output, the Export tab's folder) must lie
in the studio's folders: runs, presets, data (by default ~/.cache/rrft-studio/data, so generated datasets never
land in a checkout), cache, models and exports (studio/folders.py). It imports no user code (module:function
rewards only from --rewards-dir, and only in the training process), serves files of the runs folder inline
only for the kinds it shows (studio/guard.py), runs only the project's own CLI (never a shell), loads YAML
safely, caps each upload request (--max-upload-mb), and trusts no remote model code unless told so per model.
"""

from __future__ import annotations

import argparse
import gc
import ipaddress
import os
import signal
import sys
from pathlib import Path

AUTH_ENV = "RRFT_STUDIO_AUTH"
DATA_DIR = "~/.cache/rrft-studio/data"  # studio/folders.py's default, kept here so --help needs no import


def parse_auth(text: str | None) -> tuple[str, str] | None:
    """'user:password' -> (user, password); None for no password."""
    if not text:
        return None
    user, sep, password = text.partition(":")
    if not sep or not user or not password:
        raise SystemExit(f"error: --auth / {AUTH_ENV} must look like user:password")
    return user, password


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def arguments(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description="rrft-studio: the Gradio studio over the CLI and the runs folder")
    p.add_argument("--host", default="127.0.0.1", help="address to listen on (default: this machine only)")
    p.add_argument("--port", type=int, default=7860)
    p.add_argument("--runs-dir", default="runs", help="where runs are launched and found")
    p.add_argument("--presets-dir", default="presets", help="the presets offered in the Train tab")
    p.add_argument("--data-dir", default=DATA_DIR, help="where data files may be read from and generated into "
                                                        "(default: %(default)s, outside the checkout)")
    p.add_argument("--cache-dir", default=None, help="the folder run.cache_dir may name (default: the config's, "
                                                     "~/.cache/rrft-studio)")
    p.add_argument("--exports-dir", default=None, help="where the Export tab writes its folders (default: exports/ in "
                                                       "the runs folder)")
    p.add_argument("--models-dir", default=None, help="local checkpoints that Chat, Compare and model.name may load "
                                                      "(runs' checkpoints and hub ids are always allowed)")
    p.add_argument("--rewards-dir", default=None, help="reward modules that grpo.rewards may name as module:function "
                                                       "(without it, only the built-in rewards)")
    p.add_argument("--auth", default=None, help=f"user:password (or set {AUTH_ENV})")
    p.add_argument("--share", action="store_true", help="also make a public gradio.live link (off by default)")
    p.add_argument("--device", default="auto", choices=["auto", "cpu", "cuda"], help="where chat/compare models run")
    p.add_argument("--max-upload-mb", type=float, default=20, help="largest upload request (all its files together)")
    p.add_argument("--insecure-no-auth", action="store_true",
                   help="allow a non-loopback --host without a password (anyone reaching the port can launch runs)")
    p.add_argument("--max-loaded", type=int, default=4, help="models kept loaded at once (one process each)")
    return p.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = arguments(argv)
    auth = parse_auth(args.auth or os.environ.get(AUTH_ENV))
    if (not is_loopback(args.host) or args.share) and auth is None and not args.insecure_no_auth:
        print(f"error: --host {args.host}{' --share' if args.share else ''} without a password would let anyone "
              f"who reaches the port launch runs: set --auth user:password (or {AUTH_ENV}), or pass "
              "--insecure-no-auth", file=sys.stderr)
        return 2
    from starlette.middleware import Middleware

    from rrft_studio.studio.folders import Folders
    from rrft_studio.studio.guard import Guard
    from rrft_studio.studio.ui import CSS, JS, build

    folders = Folders.create(args.runs_dir, args.presets_dir, args.data_dir, args.cache_dir, args.models_dir,
                             args.rewards_dir, exports=args.exports_dir)
    folders.runs.mkdir(parents=True, exist_ok=True)
    demo, pool, servers = build(folders.runs, folders.presets, device=args.device, max_loaded=args.max_loaded,
                                folders=folders)
    guard = Middleware(Guard, max_body=int(args.max_upload_mb * 2**20), login=auth is not None)
    gc.freeze()  # the app's objects live as long as it: out of the collector's full scans, which reading logs triggers
    # A process started in the background of a script inherits SIGINT ignored, and Python then leaves it ignored:
    # the studio would outlive `kill -INT` (and a test's or a service manager's polite stop) until killed.
    signal.signal(signal.SIGINT, signal.default_int_handler)
    # SIGTERM (a service manager's stop) closes it the same way, so the API servers it started end with it.
    signal.signal(signal.SIGTERM, signal.default_int_handler)
    try:
        demo.queue(default_concurrency_limit=8).launch(
            server_name=args.host, server_port=args.port, share=args.share, auth=auth,
            allowed_paths=[str(folders.runs)], max_file_size=f"{args.max_upload_mb:g}mb",
            css=CSS, js=JS, footer_links=["gradio", "settings"], ssr_mode=False, app_kwargs={"middleware": [guard]})
    except KeyboardInterrupt:  # while launch() was still starting (once started, Gradio catches it and closes)
        print("Keyboard interruption while starting... stopped.", file=sys.stderr)
    finally:
        servers.close()  # API servers and model workers die with the studio; training runs do not
        pool.unload()
    return 0


if __name__ == "__main__":  # also keeps spawned worker processes from re-running the app
    sys.exit(main())
