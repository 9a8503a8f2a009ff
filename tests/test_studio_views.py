"""What the studio's tabs compute from a run directory, without a browser: plot series, rollout groups and
filters, checkpoints offered, the chat's folded reasoning, compare scores, the app's safe defaults, and
renaming and deleting a run."""

from __future__ import annotations

import importlib.util
import json
import os
import socket

import pytest

from conftest import ROOT
from rrft_studio.serve.inference import Turn
from rrft_studio.studio import catalog, charts, chat, compare, monitor, rollouts


def _write_jsonl(path, rows):
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))


@pytest.fixture
def run_dir(tmp_path):
    run = tmp_path / "runs" / "micro-20260101-000000"
    for folder in ("final/sft", "checkpoints/grpo/checkpoint-2", "checkpoints/grpo/checkpoint-1"):
        (run / folder).mkdir(parents=True)
    (run / "final/sft/config.json").write_text("{}")
    (run / "checkpoints/grpo/checkpoint-2/trainer_state.json").write_text("{}")  # checkpoint-1 is incomplete
    (run / "config.yaml").write_text("run: {stages: [sft, grpo]}\ngrpo: {max_completion_length: 10}\n")
    (run / "status.json").write_text(json.dumps({"state": "finished", "step": 2, "max_steps": 2}))
    _write_jsonl(run / "metrics.jsonl", [
        {"stage": "sft", "step": 1, "loss": 2.0},
        {"stage": "grpo", "step": 1, "reward": 0.5, "rewards/format_reward/mean": 1.0, "kl": 0.1},
        {"stage": "grpo", "step": 2, "reward": 1.5, "rewards/format_reward/mean": 0.5, "kl": 0.2},
        {"stage": "grpo", "step": 2, "train_runtime": 3.0, "train_loss": 0.0},
    ])
    done = "<think>abcdef</think><answer>3</answer>"
    completions = [
        {"id": "a", "prompt": "system\nhi\nuser\nHow many?\nassistant\n", "completion": done, "length": 8,
         "rewards": {"format_reward": 1.0, "accuracy_reward": 1.0}, "advantage": 0.7, "answer": "3", "image": []},
        {"id": "a", "prompt": "system\nhi\nuser\nHow many?\nassistant\n", "completion": "x" * 30, "length": 10,
         "rewards": {"format_reward": 0.0, "accuracy_reward": 0.0}, "advantage": -0.7, "answer": "3", "image": []},
        {"id": "b", "prompt": "system\nhi\nuser\nAnd?\nassistant\n", "completion": "4", "length": 1,
         "rewards": {"format_reward": 0.0, "accuracy_reward": 0.0}, "advantage": 0.0, "answer": "2", "image": []},
        {"id": "b", "prompt": "system\nhi\nuser\nAnd?\nassistant\n", "completion": "5", "length": 1,
         "rewards": {"format_reward": 0.0, "accuracy_reward": 0.0}, "advantage": 0.0, "answer": "2", "image": []},
    ]
    _write_jsonl(run / "samples.jsonl", [{"stage": "grpo", "step": 1, "completions": completions}])
    return run


def test_plot_series_per_stage_and_overlaid(run_dir):
    df = monitor.frame([run_dir], "grpo", ["reward", "rewards/*"])
    assert set(df["series"]) == {"reward", "format"} and list(df[df.series == "reward"]["value"]) == [0.5, 1.5]
    assert len(monitor.frame([run_dir], "grpo", ["train_loss"])) == 0  # end-of-training summaries are left out
    overlaid = monitor.frame([run_dir, run_dir], "grpo", ["kl"])
    assert set(overlaid["series"]) == {f"{run_dir.name} · kl"}
    assert monitor.current_stage(run_dir) == "grpo"
    (split,) = monitor.think_answer_rows(run_dir)
    assert split["step"] == 1 and split["think_tokens"] > 0 and split["answer_tokens"] > 0


def test_rollout_groups_flags_and_filters(run_dir):
    assert rollouts.span(run_dir) == (1, 1, None)
    record = rollouts.step_record(run_dir, 1)
    first, second = rollouts.groups(record, [1.0, 1.0], 10)
    assert [c["total"] for c in first.completions] == [2.0, 0.0] and not first.zero_spread
    assert second.zero_spread and first.completions[1]["format_failure"] and first.completions[1]["truncated"]
    assert rollouts.keep(first, ["zero-spread groups"]) == [] and len(rollouts.keep(second, ["zero-spread groups"])) == 2
    assert [c["length"] for c in rollouts.keep(first, ["truncated"])] == [10]
    shown, line = rollouts.load_step(run_dir, 1, ["format failures"])
    assert len(shown) == 2 and "2 prompts × 2 completions" in line and "format failures 3" in line
    assert rollouts.user_text(first.prompt) == "How many?"
    assert rollouts.headers(first)[:3] == ["#", "format", "accuracy"]


def test_checkpoints_offered_for_a_run(run_dir):
    values = dict((v, label) for label, v in catalog.checkpoints(run_dir))
    assert list(values) == [f"base:{run_dir}", str(run_dir / "final/sft"), str(run_dir / "checkpoints/grpo/checkpoint-2")]
    assert catalog.run_of(str(run_dir / "checkpoints/grpo/checkpoint-2")) == run_dir
    assert catalog.default_checkpoints(run_dir.parent) == [f"base:{run_dir}", str(run_dir / "final/sft")]
    (info,) = catalog.list_runs(run_dir.parent)
    assert monitor.run_row(info)[:5] == [run_dir.name, "", "finished", "", "2/2"]


def test_chat_folds_reasoning_apart_from_the_answer():
    turns = [Turn("user", "How many?", ["/tmp/a.png"])]
    streaming = chat.render(turns, "<think>three cubes")
    assert streaming[0] == {"role": "user", "content": [{"path": "/tmp/a.png"}, "How many?"]}
    assert streaming[1]["metadata"] == {"title": "Thinking", "status": "pending"}
    done = chat.render([*turns, Turn("assistant", "<think>three cubes</think><answer>3</answer>")])
    assert done[1]["metadata"]["status"] == "done" and done[2] == {"role": "assistant", "content": "3"}


def test_compare_scores_with_and_without_the_truth():
    text = "<think>x</think><answer>3</answer>"
    assert compare.score(text, "3", ["format", "accuracy"]) == {"format": 1.0, "accuracy": 1.0}
    assert compare.score(text, "", ["format", "accuracy"]) == {"format": 1.0}  # accuracy needs the truth
    assert compare.reward_label("tests.data.rewards:length_reward") == "length"
    assert compare.lengths(text, 10).startswith("10 tokens (thinking")


def test_app_is_safe_by_default():
    spec = importlib.util.spec_from_file_location("studio_app", ROOT / "app.py")
    app = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(app)
    args = app.arguments([])
    assert args.host == "127.0.0.1" and not args.share and args.auth is None
    assert app.parse_auth("alice:s3:cret") == ("alice", "s3:cret") and app.parse_auth(None) is None
    with pytest.raises(SystemExit):
        app.parse_auth("alice")
    assert app.is_loopback("127.0.0.1") and app.is_loopback("localhost") and not app.is_loopback("0.0.0.0")


def test_a_run_is_renamed_with_its_own_paths_and_deleted(run_dir):
    from rrft_studio import runs
    from rrft_studio.config import ConfigError

    (run_dir / "eval" / "sft").mkdir(parents=True)
    (run_dir / "eval" / "sft" / "id.json").write_text(json.dumps({"checkpoint": str(run_dir / "final" / "sft")}))
    other = run_dir.with_name("other-20260101-000001")  # starts from this run's checkpoint
    other.mkdir()
    (other / "config.yaml").write_text(f"model: {{name: {run_dir / 'final' / 'sft'}}}\n")
    with pytest.raises(ConfigError, match="start.s. from micro"):
        runs.rename(run_dir, "renamed")
    (other / "config.yaml").write_text(f"model: {{name: {run_dir}-longer/final/sft}}\n")  # another folder
    with pytest.raises(ConfigError, match="use letters"):
        runs.rename(run_dir, "../outside")
    new = runs.rename(run_dir, "renamed")
    assert not run_dir.exists() and json.loads((new / "eval/sft/id.json").read_text())["checkpoint"] == \
        str(new.resolve() / "final" / "sft")  # its own paths followed it
    (new / "status.json").write_text(json.dumps({"state": "running", "pid": os.getpid(), "host": socket.gethostname()}))
    with pytest.raises(ConfigError, match="stop it before you delete it"):
        runs.delete(new)
    (new / "status.json").write_text(json.dumps({"state": "stopped"}))
    runs.delete(new)
    assert not new.exists() and other.exists()


def test_a_run_gets_tags_and_a_note_the_table_shows_and_filters(run_dir):
    from rrft_studio import runs
    from rrft_studio.config import ConfigError
    from rrft_studio.studio.launcher import Launcher

    launcher = Launcher(run_dir.parent)
    info = catalog.list_runs(run_dir.parent)[0]
    assert monitor.notes_of(launcher, run_dir.name) == ("", "") and monitor.run_row(info)[1] == ""
    said = monitor.save_notes(launcher, run_dir.name, "baseline, lr-sweep baseline", " lr 1e-3: too high? ")
    assert said == f"Saved {run_dir.name}'s tags baseline, lr-sweep and its note."
    assert runs.read_notes(run_dir) == {"tags": ["baseline", "lr-sweep"], "note": "lr 1e-3: too high?"}
    assert monitor.notes_of(launcher, run_dir.name) == ("baseline lr-sweep", "lr 1e-3: too high?")
    assert monitor.run_row(info)[1] == "baseline lr-sweep"
    assert monitor.matches(info, "LR-SWEEP finished") and monitor.matches(info, "too high")
    assert not monitor.matches(info, "baseline running")
    # refused in one line, the saved notes kept
    for tags, note, message in (("a/b", "", "tag 'a/b': use letters"),
                                (" ".join(f"t{i}" for i in range(17)), "", "17 tags: at most 16"),
                                ("x", "n" * 4001, "4001 characters: at most 4000")):
        said = monitor.save_notes(launcher, run_dir.name, tags, note)
        assert said.startswith("✗ ") and message in said and "\n" not in said, said
    assert runs.read_notes(run_dir)["tags"] == ["baseline", "lr-sweep"]
    assert monitor.save_notes(launcher, "../outside", "x", "").startswith("✗ ")
    assert monitor.save_notes(launcher, None, "x", "") == "Pick a run first."
    with pytest.raises(ConfigError, match="not a run directory"):
        runs.write_notes(run_dir.parent, [], "")
    runs.notes_path(run_dir).write_text("{not json")  # a damaged file reads as none, and is written anew
    assert runs.read_notes(run_dir) == {"tags": [], "note": ""}
    assert monitor.save_notes(launcher, run_dir.name, "", "").endswith("no tags and no note.")
    new = runs.rename(run_dir, "renamed")  # the notes move with the run
    assert runs.read_notes(new) == {"tags": [], "note": ""} and runs.notes_path(new).is_file()


def _component(blocks, elem_id: str):
    return next(b for b in blocks.blocks.values() if getattr(b, "elem_id", None) == elem_id)


def test_chat_asks_as_compare_does(tmp_path):
    """Greedy, with the task's instruction: the defaults Compare uses, so a checkpoint answers in Chat as there."""
    import gradio as gr

    from rrft_studio.serve.inference import Pool

    with gr.Blocks() as page:
        with gr.Tab("Chat") as chat_tab:
            chat.build(tmp_path, Pool(), chat_tab)
        with gr.Tab("Compare") as compare_tab:
            compare.build(tmp_path, Pool(), compare_tab)
    compare_instruction = next(b for b in page.blocks.values() if isinstance(b, gr.Checkbox)
                               and b.label.startswith("Append the task's think/answer instruction") and not b.elem_id)
    assert _component(page, "chat-instruction").value is True and compare_instruction.value is True
    assert _component(page, "chat-temperature").value == _component(page, "compare-temperature").value == 0


def test_chat_gives_the_instruction_once(run_dir):
    """The instruction goes with the first question, as Compare words its one question; a follow-up is the
    user's words alone."""
    checkpoint = str(run_dir / "final/sft")
    turns, _, _ = chat.add_user({"text": "How many objects?"}, [], True, checkpoint)
    assert turns[0].text.startswith("How many objects?") and "<think>" in turns[0].text
    assert turns[0].text == catalog.prompt_text("How many objects?", True, [checkpoint])
    turns, _, _ = chat.add_user({"text": "And the red ones?"}, [*turns, Turn("assistant", "3")], True, checkpoint)
    assert [t.text for t in turns[1:]] == ["3", "And the red ones?"]


def test_compare_offers_sft_against_grpo(run_dir):
    """Once both stages are done, what GRPO added: its output beside SFT's (the base model stays a choice)."""
    (run_dir / "final/grpo").mkdir()
    (run_dir / "final/grpo/config.json").write_text("{}")
    assert catalog.default_checkpoints(run_dir.parent) == [str(run_dir / "final/sft"), str(run_dir / "final/grpo")]
    assert f"base:{run_dir}" in [v for _, v in catalog.checkpoints(run_dir)]


def test_compare_marks_identical_answers(run_dir):
    values = [f"base:{run_dir}", str(run_dir / "final/sft"), str(run_dir / "final/grpo")]
    text = "<think>x</think><answer>3</answer>"
    states = {values[0]: {"text": "4", "done": {"tokens": 1}, "error": None},
              **{v: {"text": text, "done": {"tokens": 9}, "error": None} for v in values[1:]}}
    scores = compare._all_slots(values, states, "3")[4::5]
    assert "same text" not in scores[0]
    assert scores[1].endswith(f" · ≡ **same text as** {run_dir.name} · final/grpo")
    assert scores[2].endswith(f" · ≡ **same text as** {run_dir.name} · final/sft")
    states[values[2]]["done"] = None  # still generating: nothing to compare yet
    assert not any("same text" in s for s in compare._all_slots(values, states, "3")[4::5])


def _overlay_runs(tmp_path):
    """Two runs with long names, each logging reward and KL with the rows' time and tokens."""
    dirs = []
    for i, name in enumerate(["a-long-run-name-for-the-legend-20260101-000000", "another-long-run-name-20260102-000000"]):
        run = tmp_path / "runs" / name
        run.mkdir(parents=True)
        (run / "config.yaml").write_text("run: {stages: [grpo]}\n")
        (run / "status.json").write_text(json.dumps({"state": "finished", "step": 3}))
        _write_jsonl(run / "metrics.jsonl", [
            {"stage": "grpo", "step": s, "time": 1000.0 + 120 * s, "num_tokens": 500.0 * s, "reward": s + i, "kl": 0.1 * s}
            for s in (1, 2, 3)])
        dirs.append(run)
    return dirs


def test_overlaid_runs_get_a_colour_each_and_their_whole_names(tmp_path):
    dirs = _overlay_runs(tmp_path)
    spec = json.loads(monitor._plot(dirs, "grpo", ("Reward", ["reward", "kl"], "reward"), 0.0, [], 1)["value"].plot)
    line = spec["layer"][0]["encoding"]
    names = [d.name for d in dirs]
    assert line["color"]["field"] == "run" and line["color"]["scale"]["domain"] == names
    colours = line["color"]["scale"]["range"]
    assert len(set(colours)) == 2  # one per run, whatever its metric
    assert line["color"]["legend"]["labelLimit"] == 0 and line["color"]["legend"]["orient"] == "bottom"  # whole names
    assert line["strokeDash"]["field"] == "metric" and line["strokeDash"]["scale"]["domain"] == ["reward", "kl"]
    assert {(v["run"], v["metric"]) for v in spec["data"]["values"]} == {(n, m) for n in names for m in ("reward", "kl")}
    assert spec["height"] > charts.PLOT_HEIGHT  # the legends' lines are added, not taken from the plot


def test_the_x_axis_is_the_step_the_time_or_the_tokens(tmp_path):
    dirs = _overlay_runs(tmp_path)[:1]

    def plotted_on(axis):
        spec = json.loads(monitor._plot(dirs, "grpo", ("KL", ["kl"], "kl"), 0.0, [], 1, axis)["value"].plot)
        x = spec["layer"][0]["encoding"]["x"]
        return x["field"], x["title"], spec["data"]["values"][0].get(x["field"])

    assert plotted_on("step") == ("step", "step", [1, 2, 3])
    assert plotted_on("time") == ("x", "minutes since the run started", [0.0, 2.0, 4.0])
    assert plotted_on("tokens") == ("x", "tokens seen", [500.0, 1000.0, 1500.0])
    spec = json.loads(monitor._plot(dirs, "grpo", ("KL", ["kl"], "kl"), 0.0, [], 1, "time")["value"].plot)
    assert spec["data"]["values"][0]["step"] == [1, 2, 3]  # a point still links to its step's rollouts
    assert spec["layer"][0]["params"][0]["bind"] == "scales"  # zoom and pan on the x axis


def test_a_series_of_one_point_is_drawn_as_a_dot(tmp_path):
    """A line of one point draws nothing (a stage's first logged step looked like an empty plot): the chart has a
    dot layer for the series that have one point only, and the series of more points keep their line alone."""
    dirs = _overlay_runs(tmp_path)[:1]
    _write_jsonl(dirs[0] / "metrics.jsonl", [{"stage": "grpo", "step": 1, "time": 1000.0, "reward": 1.0, "kl": 0.1}])
    spec = json.loads(monitor._plot(dirs, "grpo", ("Reward", ["reward"], "reward"), 0.0, [], 1)["value"].plot)
    dots = [layer for layer in spec["layer"] if layer.get("mark", {}).get("type") == "point"
            and any(t.get("filter") == "datum.points <= 1" for t in layer.get("transform", []))]
    assert len(dots) == 1 and dots[0]["encoding"]["y"]["field"] == "value"
    count = dots[0]["transform"][0]["joinaggregate"][0]
    assert count["op"] == "count" and dots[0]["transform"][0]["groupby"] == ["series", "run", "role"]
    assert [v["step"] for v in spec["data"]["values"]] == [[1]]


def test_reasoning_badge_in_rollouts_and_compare(run_dir):
    """A rollout whose reasoning was checked against its answer (samples.jsonl's `consistent`) carries a badge in the
    group view, a flag in the table when it does not lead there, and a line in the detail; Compare checks each
    column's finished answer the same way (a counting run: the sum in <think> against the answer)."""
    record = rollouts.step_record(run_dir, 1)
    first, _ = rollouts.groups(record, [1.0, 1.0], 10)
    first.completions[0]["consistent"], first.completions[1]["consistent"] = True, False
    view = rollouts.cards(first)
    assert view.count("reasoning ✓") == 1 and view.count("reasoning ✗") == 1
    assert 'class="rrft-bad rrft-reasoning"' in view
    assert [row[-2] for row in rollouts.table(first, [])] == ["", "format ✗, truncated, reasoning ✗"]
    assert "reasoning ✓ (the reasoning's last result is the answer given)" in rollouts.detail(first.completions[0])
    first.completions[0].pop("consistent")
    assert "reasoning" not in rollouts.cards(first).split("rrft-card")[1]  # nothing checked, no badge

    values = [str(run_dir / "final/sft"), str(run_dir / "final/grpo")]
    states = {values[0]: {"text": "<think>2 + 1 = 3</think><answer>3</answer>", "done": {"tokens": 9}, "error": None},
              values[1]: {"text": "<think>2 + 1 = 3</think><answer>4</answer>", "done": {"tokens": 9}, "error": None}}
    first_line, second_line = compare._all_slots(values, states, "3")[4::5][:2]
    assert "reasoning ✓" in first_line and "reasoning ✗" in second_line
