"""tools.roleplay.character: cleaning with counts per reason, the three instruction kinds, dedupe,
speaker
filter, the x5 settings weight through num_samples; on hand-written fixtures and on Furina's voice
lines and settings from ../shared/data/genshin."""

import json
import subprocess
import sys

import pytest

from repo_paths import REPO_ROOT
from tools.roleplay.character import main

ASSETS = REPO_ROOT / "tests" / "assets" / "character"
GENSHIN = REPO_ROOT.parent / "shared" / "data" / "genshin"
needs_genshin = pytest.mark.skipif(not GENSHIN.is_dir(), reason=f"{GENSHIN} is absent (real data)")


def run(tmp_path, *args, name="xm"):
    """Run the command; return (exit code, {part: (report, records)}, dataset_info or None)."""
    out = tmp_path / "out"
    code = main(["--out-dir", str(out), "--name", name, *map(str, args)])
    parts = {}
    for part in ("voice", "settings"):
        data = out / f"{name}_{part}.json"
        if data.exists():
            report = json.loads((out / f"{name}_{part}.report.json").read_text(encoding="utf-8"))
            parts[part] = (report, json.loads(data.read_text(encoding="utf-8")))
    info_path = out / "dataset_info.json"
    info = json.loads(info_path.read_text(encoding="utf-8")) if info_path.exists() else None
    return code, parts, info


FIXTURE_ARGS = (
    "--voice-lines",
    ASSETS / "voice_lines.json",
    ASSETS / "voice_lines_extra.jsonl",
    "--settings",
    ASSETS / "settings.json",
    "--skip-broken",
)


def test_voice_lines_are_cleaned_filtered_and_counted_per_reason(tmp_path):
    code, parts, _ = run(tmp_path, *FIXTURE_ARGS)
    assert code == 0
    report, records = parts["voice"]
    assert report["records_in"] == 19 and report["records_out"] == len(records) == 8
    assert report["dropped"] == {
        "broken_json": 1,
        "duplicate": 1,
        "empty_field": 1,
        "empty_text": 1,
        "missing_field": 1,
        "no_content": 1,
        "not_an_object": 1,
        "too_short": 1,
        "unreleased": 1,
        "unresolved_placeholder": 1,
        "wrong_type": 1,
    }
    assert report["dropped_examples"]["unresolved_placeholder"] == ["voice_lines.json#7"]
    assert report["dropped_examples"]["broken_json"] == ["voice_lines_extra.jsonl:2"]
    assert report["cleaned"] == {
        "escaped_newline": 1,
        "gender_pronoun": 1,
        "gender_variant": 1,
        "leading_hash": 1,
        "markup_tag": 2,
        "nickname": 1,
    }
    assert [r["output"] for r in records] == [
        "早啊，旅行者！今天也要一起出发吗？",
        "他说过，雾散了就能看见灯塔。",
        "别担心，灯塔一直都在那里。",
        "我问过他了，答案是一样的。",
        "第一行\n第二行，都是写给你的。",
        "小满，船快开了，快上来吧！",
        "没有场景标题的一句话也可以用。",
        "夜里的海，比白天更安静。",
    ]
    assert (
        records[0]["system"]
        == "你是林小满。请始终以林小满的身份、性格和语气说话，不要提及你是人工智能或语言模型。"
    )
    assert records[0]["instruction"] == "请用林小满的语气说一句台词。场景：序章 第一幕「晨雾」"
    assert records[6]["instruction"] == "请用林小满的语气说一句台词。"  # no scene title
    assert report["kinds"] == {"tone": 8}


def test_traveler_options_pick_the_placeholder_values(tmp_path):
    code, parts, _ = run(
        tmp_path, *FIXTURE_ARGS, "--traveler-gender", "female", "--traveler-name", "荧"
    )
    outputs = [r["output"] for r in parts["voice"][1]]
    assert code == 0 and outputs[:4] == [
        "早啊，荧！今天也要一起出发吗？",
        "她说过，雾散了就能看见灯塔。",
        "别担心，灯塔一直都在那里。",
        "我问过她了，答案是一样的。",
    ]


def test_settings_become_background_or_qa_and_are_weighted_by_num_samples_not_copies(tmp_path):
    code, parts, info = run(tmp_path, *FIXTURE_ARGS)
    assert code == 0
    report, records = parts["settings"]
    assert report["records_in"] == 8 and report["records_out"] == len(records) == 6
    assert report["dropped"] == {"duplicate": 1, "empty_field": 1}
    assert report["kinds"] == {"background": 1, "settings_qa": 5}
    assert report["cleaned"] == {"stray_full_stop": 1}
    background = records[0]
    assert background["system"] == "你熟悉林小满的全部背景设定，请依据设定资料如实讲述。"
    assert background["instruction"] == "请讲讲林小满的背景设定：角色故事1。"
    assert "，。" not in background["output"]
    # Short, first-person, even when it names her: a settings Q&A.
    greeting = next(r for r in records if r["output"].startswith("你好，我是林小满"))
    assert greeting["instruction"] == "（话题：初次见面）请以林小满的身份，说说你的想法。"
    assert greeting["system"].startswith("你是林小满。")
    assert len({json.dumps(r, ensure_ascii=False) for r in records}) == len(
        records
    )  # no copied rows

    assert info["xm_settings"]["num_samples"] == 5 * len(records)
    assert "num_samples" not in info["xm_voice"]
    assert report["weighting"]["num_samples"] == 30 and report["weighting"]["factor"] == 5

    code, parts, info = run(tmp_path / "unweighted", *FIXTURE_ARGS, "--settings-weight", 1)
    assert code == 0 and "num_samples" not in info["xm_settings"]


def test_speaker_filter_counts_other_speakers_and_an_absent_speaker_stops_the_run(tmp_path, capsys):
    code, parts, _ = run(tmp_path, *FIXTURE_ARGS, "--speaker", "林小满")
    assert code == 0
    assert parts["voice"][0]["dropped"]["speaker_not_selected"] == 1
    assert parts["settings"][0]["dropped"]["speaker_not_selected"] == 1
    assert all("阿潮" not in r["system"] for part in parts.values() for r in part[1])

    code, parts, info = run(tmp_path / "absent", *FIXTURE_ARGS, "--speaker", "林小满", "无名氏")
    assert code == 2 and parts == {} and info is None
    assert "no record has speaker ['无名氏']" in capsys.readouterr().err


def test_a_broken_json_array_file_exits_2_naming_file_and_line(tmp_path, capsys):
    broken = tmp_path / "voice.json"
    broken.write_text(
        '[\n  {"source_title": "a", "speaker": "b", "text": "c"},\n  oops\n]', encoding="utf-8"
    )
    code, parts, info = run(
        tmp_path, "--voice-lines", broken, "--settings", ASSETS / "settings.json"
    )
    assert code == 2 and parts == {} and info is None
    assert "voice.json: broken JSON at line 3" in capsys.readouterr().err


def expected_kept_voice_lines(raw):
    """The voice lines the converter should keep, by an independent rule: at least 4 letters or
    digits (this data holds no placeholders); repeats are removed by the caller."""
    return [r for r in raw if sum(ch.isalnum() for ch in r["text"]) >= 4]


@needs_genshin
def test_furina_voice_lines_and_settings(tmp_path):
    voice_dir = GENSHIN / "speaker" / "furina"
    code, parts, info = run(
        tmp_path,
        "--voice-lines",
        voice_dir,
        "--settings",
        GENSHIN / "settings_furina.json",
        "--speaker",
        "芙宁娜",
        name="furina",
    )
    assert code == 0
    voice_report, voice = parts["voice"]
    raw_voice = [
        r
        for f in sorted(voice_dir.glob("*.json"))
        for r in json.loads(f.read_text(encoding="utf-8"))
    ]
    assert voice_report["records_in"] == len(raw_voice)
    assert (
        voice_report["records_out"]
        == len(voice)
        == len({r["text"].strip() for r in expected_kept_voice_lines(raw_voice)})
    )
    assert set(voice_report["dropped"]) <= {"duplicate", "no_content", "too_short"}
    assert len({r["output"] for r in voice}) == len(voice)
    assert not any("{" in r["output"] or "$" in r["output"] for r in voice)

    settings_report, settings = parts["settings"]
    raw_settings = json.loads((GENSHIN / "settings_furina.json").read_text(encoding="utf-8"))
    distinct = {(r["input"], r["text"]) for r in raw_settings}
    assert settings_report["records_out"] == len(settings) == len(distinct)
    assert settings_report["dropped"] == {"duplicate": len(raw_settings) - len(distinct)}
    profile_entries = {
        "更多描述",
        "角色详细",
        *(f"角色故事{i}" for i in range(1, 6)),
        "孤心沙龙",
        "神之眼",
    }
    background = [r for r in settings if r["instruction"].startswith("请讲讲芙宁娜的背景设定")]
    assert {
        r["instruction"].removeprefix("请讲讲芙宁娜的背景设定：").removesuffix("。")
        for r in background
    } == profile_entries
    assert info["furina_settings"]["num_samples"] == 5 * len(settings)


def test_help_names_the_command():
    proc = subprocess.run(
        [sys.executable, "-m", "tools.roleplay.character", "--help"],
        capture_output=True,
        text=True,
        cwd=REPO_ROOT,
    )
    assert proc.returncode == 0 and proc.stdout.startswith(
        "usage: python -m tools.roleplay.character"
    )
