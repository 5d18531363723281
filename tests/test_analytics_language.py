"""Questions, fillers and the amount said, in Japanese and English transcripts."""
from __future__ import annotations

import pytest

from livetalk.analytics import count_fillers, count_questions, sentences, speech_rate_unit, spoken_units


@pytest.mark.parametrize(("text", "expected"), [
    ("ご予算はいかがですか？", ["ご予算はいかがですか?"]),
    ("来週はいかがでしょうか。次に、価格の話ですが", ["来週はいかがでしょうか。", "次に、価格の話ですが"]),
    ("Is it cheap?! Really.", ["Is it cheap?!", "Really."]),
    ("「そうですか？」はい。", ["「そうですか?」", "はい。"]),
    ("一行目\n二行目", ["一行目", "二行目"]),
    ("", []),
])
def test_sentences(text, expected):
    """Text is cut after runs of sentence marks (with closing quotes) and at line breaks."""
    assert sentences(text) == expected


@pytest.mark.parametrize(("text", "questions"), [
    # marked with a question mark, full- or half-width, however many
    ("ご予算はいかがですか？", 1),
    ("導入時期は?", 1),
    ("よろしいですか？？", 1),
    ("本当？！", 1),
    ("What's your budget?", 1),
    ("Really?! Are you sure??", 2),
    # ending with the particle か after a polite or sentence-final form, with or without 。
    ("そうですか。", 1),
    ("お時間ありますか", 1),
    ("来週はいかがでしょうか。", 1),
    ("一緒に確認しましょうか。", 1),
    ("デモをご覧になりませんか。", 1),
    ("先週の会議はいかがでしたか。", 1),
    ("資料は届きましたか…", 1),
    ("本当に必要だろうか。", 1),
    ("何か問題はないか。", 1),
    ("どうしてそう思うのか、", 1),
    ("ご予算はいかがですか？ 来週はいかがでしょうか。", 2),
    # one sentence marked twice counts once
    ("ですか？", 1),
    # not questions
    ("とても静か。", 0),
    ("確か。", 0),
    ("何か。", 0),
    ("いつか。", 0),
    ("それしか。", 0),
    ("はい、承知しました。", 0),
    ("「大丈夫ですか」と言われました。", 0),
    ("ですかね。", 0),
    ("We can do that.", 0),
    ("", 0),
    # only a sentence's end counts: an unpunctuated utterance with two questions is one sentence
    ("ご予算はいかがですか来週はいかがでしょうか", 1),
])
def test_questions(text, questions):
    """A sentence is a question when it closes with ? or ends with か after a polite form; each counts once."""
    assert count_questions(text) == questions


@pytest.mark.parametrize(("text", "fillers"), [
    # えー, えーと, えっと and their spellings
    ("えーと、御社の件ですが", 1),
    ("えっと、来週なら", 1),
    ("ええと、その", 2),  # a trailing その hesitates too
    ("えーっと", 1),
    ("えー、本日は", 1),
    ("えー御社の", 1),
    ("それでえーとですね", 1),
    ("ええ、そうです。", 0),  # ええ is "yes"
    ("へえー、そうなんですね", 0),  # surprise, not hesitation
    ("ええー！", 0),
    # あの / あのー / その…: fillers only when they hesitate
    ("あのー、御社では", 1),
    ("あの、御社では", 1),
    ("あのですね、", 1),
    ("あの〜", 1),
    ("あの会社は大きいです", 0),
    ("あの件について", 0),
    ("その…なんと言いますか", 1),
    ("そのー、価格が", 1),
    ("その件ですが", 0),
    ("そのまま進めます", 0),
    ("私の その 件", 0),
    # まあ
    ("まあ、そうですね", 1),
    ("まぁ、いいでしょう", 1),
    ("それは まあ 難しいです", 1),
    ("まあまあです", 0),
    # うーん (not うん, "yes")
    ("うーん、難しいですね", 1),
    ("うん、わかった", 0),
    # several in a row, with and without pauses
    ("えーと、あのー、まあ、そうですね", 3),
    ("えーとあのまあ", 3),
    ("あの えーと", 2),
    # English single-word fillers, as words of their own
    ("Um, I think so.", 1),
    ("Uh, umm, well", 2),
    ("Uhh erm err", 3),
    ("uh-huh, sure", 0),
    ("album umbrella her error", 0),
    # you know / I mean, only set off by pauses
    ("It's, you know, cheap.", 1),
    ("You know, we can help.", 1),
    ("It's cheap, you know.", 1),
    ("Do you know the price?", 0),
    ("Do you know?", 0),
    ("you know what I mean", 0),
    ("I mean, sure.", 1),
    ("I mean it.", 0),
    ("What I mean is this.", 0),
    ("Um you know, fine", 2),
    ("", 0),
])
def test_fillers(text, fillers):
    """Fillers are counted only where they hesitate, never where the same letters are an ordinary word."""
    assert count_fillers(text) == fillers


@pytest.mark.parametrize(("text", "unit", "count"), [
    ("はい、そうです。", "chars_per_min", 6),
    ("ＩＴ部門の 佐藤です！", "chars_per_min", 9),
    ("2026年", "chars_per_min", 5),
    ("Sure, that's fine.", "words_per_min", 3),
    ("We'll meet at 2 pm — OK?", "words_per_min", 6),
    ("", "words_per_min", 0),
])
def test_spoken_units(text, unit, count):
    """Characters that are spoken (letters and digits, not spaces or punctuation) or words."""
    assert spoken_units(text, unit) == count


@pytest.mark.parametrize(("language", "unit"), [
    ("ja-JP", "chars_per_min"), ("ja", "chars_per_min"), ("zh-Hans-CN", "chars_per_min"),
    ("en-US", "words_per_min"), ("en", "words_per_min"), ("fr-FR", "words_per_min"), ("", "words_per_min"),
])
def test_speech_rate_unit_follows_the_language(language, unit):
    """Japanese (and Chinese, Korean) scenarios are measured in characters, others in words."""
    assert speech_rate_unit(language) == unit
