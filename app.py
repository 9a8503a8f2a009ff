"""Launch the studio: train, monitor, browse rollouts, compare checkpoints and chat, in a browser.

    python app.py                                  # http://127.0.0.1:7860, runs in ./runs
    python app.py --runs-dir runs --port 7861
    python app.py --auth alice:secret              # or RRFT_STUDIO_AUTH=alice:secret python app.py
    python app.py --host 0.0.0.0 --auth alice:...  # reachable from other machines: set a password

Safe by default: it listens on 127.0.0.1 only, makes no public share link unless --share, serves files
only from the runs and presets folders, runs only the project's own CLI (never a shell), loads YAML safely,
caps uploads (--max-upload-mb), and trusts no remote code from model repositories unless told so per model.
"""

from __future__ import annotations

import argparse
import ipaddress
import os
import sys
from pathlib import Path

AUTH_ENV = "RRFT_STUDIO_AUTH"


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
    p.add_argument("--auth", default=None, help=f"user:password (or set {AUTH_ENV})")
    p.add_argument("--share", action="store_true", help="also make a public gradio.live link (off by default)")
    p.add_argument("--device", default="auto", choices=["auto", "cpu", "cuda"], help="where chat/compare models run")
    p.add_argument("--max-upload-mb", type=float, default=20, help="largest image upload")
    p.add_argument("--max-loaded", type=int, default=4, help="models kept loaded at once (one process each)")
    return p.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = arguments(argv)
    auth = parse_auth(args.auth or os.environ.get(AUTH_ENV))
    if not is_loopback(args.host) and auth is None:
        print(f"warning: listening on {args.host} without a password: anyone who can reach this port can "
              f"launch runs. Set --auth user:password or {AUTH_ENV}.", file=sys.stderr)
    from rrft_studio.studio.ui import CSS, build

    runs_dir, presets_dir = Path(args.runs_dir).resolve(), Path(args.presets_dir).resolve()
    runs_dir.mkdir(parents=True, exist_ok=True)
    demo, pool = build(runs_dir, presets_dir, device=args.device, max_loaded=args.max_loaded)
    try:
        demo.queue(default_concurrency_limit=8).launch(
            server_name=args.host, server_port=args.port, share=args.share, auth=auth,
            allowed_paths=[str(runs_dir), str(presets_dir)], max_file_size=f"{args.max_upload_mb:g}mb",
            css=CSS, footer_links=["gradio", "settings"], ssr_mode=False)
    finally:
        pool.unload()  # model workers die with the studio; training runs do not
    return 0


if __name__ == "__main__":  # also keeps spawned worker processes from re-running the app
    sys.exit(main())
