"""The studio: a Gradio app that is a form over the CLI and a reader of run directories.

One module per tab (train, monitor, rollouts, compare, chat, export_tab, rewards_tab, data), ui.py assembling
them, launcher.py for the detached CLI processes, serving.py for the API servers the studio starts and stops,
catalog.py for what lies on disk. No training code runs in the app's process;
models for Chat and Compare load in worker processes (rrft_studio.serve.inference). Started by `python app.py`
at the repository root, which also sets the safe defaults (loopback address, no share link, optional password).
Importing this package imports nothing heavy: Gradio comes with the tab modules.
"""
