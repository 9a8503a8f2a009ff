"""The Chat tab: talk to a checkpoint (or a run's base model) with one or more images per turn, over several
turns; tokens stream in as the worker process generates them; `<think>` is shown folded, apart from the
answer. The task's think/answer instruction is appended to the first question, as training worded it, and
decoding is greedy: the defaults Compare uses, so a checkpoint answers here as it does there. The checkpoint
offered first is the last finished stage of the newest finished run. The model lives in a worker process
(inference.Worker); the panel on the left says what is loaded and unloads it, which gives its memory back.
"""

from __future__ import annotations

from pathlib import Path

import gradio as gr

from ..answers import split_think
from ..config import ConfigError
from ..serve import server
from ..serve.inference import Pool, Settings, Turn, WorkerError
from . import catalog
from .folders import Folders


def short_name(checkpoint: str) -> str:
    """run · stage for a checkpoint value, compact enough for a side panel."""
    run_dir = catalog.run_of(checkpoint)
    if checkpoint.startswith("base:"):
        return f"{Path(checkpoint[5:]).name} · base"
    if run_dir is None:
        return checkpoint
    return f"{run_dir.name} · {Path(checkpoint).relative_to(run_dir)}"


def loaded_markdown(pool: Pool) -> str:
    """What is loaded: one line per worker process, with its resident memory."""
    rows = pool.loaded()
    if not rows:
        return "**Models in memory:** none"
    lines = [f"- `{short_name(r['checkpoint'])}` · {r['state']} · {r['device']} · pid {r['pid']} · "
             + (f"{r['memory_mb']:.0f} MB" if r["memory_mb"] else "? MB") for r in rows]
    return "**Models in memory** (one process each):\n" + "\n".join(lines)


def render(turns: list[Turn], streaming: str | None = None) -> list[dict]:
    """Chatbot messages for the conversation so far, plus a reply still streaming: reasoning folded apart."""
    messages = []
    for turn in turns:
        if turn.role == "user":
            messages.append({"role": "user", "content": [*({"path": p} for p in turn.images), turn.text]})
        else:
            messages += _assistant(turn.text, done=True)
    if streaming is not None:
        messages += _assistant(streaming, done=False)
    return messages


def _assistant(text: str, done: bool) -> list[dict]:
    parsed = split_think(text)
    out = []
    if parsed.think is not None:
        status = "done" if parsed.thinking_done or done else "pending"
        out.append({"role": "assistant", "content": parsed.think or "…",
                    "metadata": {"title": "Thinking", "status": status}})
    if parsed.answer or parsed.think is None or done:
        out.append({"role": "assistant", "content": parsed.answer or ("…" if not done else "(no answer)")})
    return out


def add_user(message: dict, turns: list[Turn], instruction: bool = False, checkpoint: str | None = None) -> tuple:
    """Take the typed text and uploaded images as a new user turn (the first one with the task's think/answer
    instruction appended, in the checkpoint's run's evaluation style, when asked: later questions are the user's
    words alone); lock the box while the reply streams."""
    files = [f if isinstance(f, str) else f.get("path") for f in (message or {}).get("files", [])]
    text = (message or {}).get("text", "").strip()
    if not text and not files:
        return turns, render(turns), gr.MultimodalTextbox()
    first = not any(turn.role == "user" for turn in turns)
    text = catalog.prompt_text(text or "Describe the image.", instruction and first, [checkpoint] if checkpoint else [])
    turns = [*turns, Turn("user", text, [f for f in files if f])]
    return turns, render(turns), gr.MultimodalTextbox(value=None, interactive=False)


def reply(pool: Pool, checkpoint: str, trust: bool, settings: Settings, turns: list[Turn]):
    """Stream the assistant's answer: yields (turns, chatbot messages, footnote)."""
    if not turns or turns[-1].role != "user":
        yield turns, render(turns), ""
        return
    if not checkpoint:
        yield turns[:-1], render(turns[:-1]), "✗ Pick a checkpoint first."
        return
    worker = pool.get(checkpoint, trust)
    yield turns, render(turns, ""), "Loading the model in a worker process…" if worker.state == "loading" else ""
    text = ""
    try:
        for event in worker.stream(turns, settings):
            if "chunk" in event:
                text += event["chunk"]
                # The partial reply is in the state too: a Stop keeps what was shown as the answer.
                yield [*turns, Turn("assistant", text)], render(turns, text), "Generating…"
            else:
                turns = [*turns, Turn("assistant", event["text"])]
                speed = event["tokens"] / max(event["seconds"], 1e-6)
                yield turns, render(turns), f"{event['tokens']} tokens in {event['seconds']:.1f} s ({speed:.0f} tokens/s)"
    except WorkerError as e:
        yield turns[:-1], render(turns[:-1]), f"✗ {e}"


def build(runs_dir: Path, pool: Pool, tab: gr.Tab, folders: Folders | None = None) -> None:
    folders = folders or Folders.create(runs_dir)
    turns = gr.State([])
    with gr.Row(equal_height=False):
        with gr.Column(scale=1, min_width=300):
            checkpoint = gr.Dropdown([], label="Checkpoint", allow_custom_value=True, elem_id="chat-checkpoint",
                                     info="a run's stage or step, its base model, or a hub id / folder")
            trust = gr.Checkbox(False, label="Trust remote code from the model repository",
                                info="runs Python shipped with the model: only for repositories you trust")
            instruction = gr.Checkbox(True, label="Append the task's think/answer instruction (as in training)",
                                      info="to the first question, in the checkpoint's run's prompt wording",
                                      elem_id="chat-instruction")
            with gr.Accordion("Generation settings", open=True):
                max_new = gr.Slider(8, 2048, value=256, step=8, label="Max new tokens")
                temperature = gr.Slider(0, 2, value=0.0, step=0.05, label="Temperature (0 = greedy)",
                                        elem_id="chat-temperature")
                top_p = gr.Slider(0.05, 1, value=0.9, step=0.05, label="Top-p")
                top_k = gr.Slider(0, 200, value=50, step=1, label="Top-k (0 = off)")
            loaded = gr.Markdown(loaded_markdown(pool), elem_id="chat-loaded")
            with gr.Row():
                unload = gr.Button("Unload all models", size="sm")
                clear = gr.Button("New conversation", size="sm")
        with gr.Column(scale=3):
            bot = gr.Chatbot(height=520, label="Conversation", elem_id="chat-bot", buttons=["copy"],
                             placeholder="Pick a checkpoint, add an image and ask a question.")
            box = gr.MultimodalTextbox(file_types=["image"], file_count="multiple", sources=["upload"],
                                       placeholder="Ask about the image(s); attach with the clip", show_label=False,
                                       stop_btn=True, elem_id="chat-input")
            footnote = gr.Markdown(elem_id="chat-footnote")
            with gr.Accordion("Use it from an application (API)", open=False):
                api = gr.Markdown(server.snippet(""), elem_id="chat-api")

    def refresh(current):
        choices = catalog.all_checkpoints(runs_dir)
        values = [v for _, v in choices]
        # a run's last finished stage: the newest finished run's, before a run stopped after Stage 1
        value = current if current else (catalog.default_checkpoints(runs_dir)[-1:] or [None])[0]
        return gr.Dropdown(choices=choices, value=value if value in values or current else None), loaded_markdown(pool)

    def respond(ckpt, trusted, n, t, p, k, history):
        try:  # the box takes any text: load only the studio's checkpoints or a hub id
            folders.checkpoint(ckpt) if ckpt else None
        except ConfigError as e:
            yield history[:-1], render(history[:-1]), f"✗ {e}"
            return
        yield from reply(pool, ckpt, trusted, Settings(int(n), float(t), float(p), int(k)), history)

    tab.select(refresh, checkpoint, [checkpoint, loaded])
    checkpoint.change(server.snippet, checkpoint, api)
    submitted = box.submit(add_user, [box, turns, instruction, checkpoint], [turns, bot, box])
    streaming = submitted.then(respond, [checkpoint, trust, max_new, temperature, top_p, top_k, turns],
                               [turns, bot, footnote], api_name="chat_reply")
    streaming.then(lambda: (gr.MultimodalTextbox(interactive=True), loaded_markdown(pool)), None, [box, loaded])
    box.stop(lambda: (gr.MultimodalTextbox(interactive=True), "stopped"), None, [box, footnote], cancels=[streaming])
    unload.click(lambda: (pool.unload(), loaded_markdown(pool))[1], None, loaded)
    clear.click(lambda: ([], [], ""), None, [turns, bot, footnote])
