"""Conversation scenarios: who the AI plays, how it sounds, and how the user is graded.

Plain data plus three small lookups. The browser only ever names a scenario by id;
everything in here (persona, voice, VAD tuning, rubric) stays on the server.
"""
from __future__ import annotations

import dataclasses

from livetalk.engine import Tool, Vad


@dataclasses.dataclass(frozen=True, kw_only=True)
class Criterion:
    """One line of a grading rubric: what is judged and what good looks like."""

    name: str
    description: str
    weight: int  # relative weight in the overall score


@dataclasses.dataclass(frozen=True, kw_only=True)
class Scenario:
    """A role-play the server offers. ``language`` is a BCP-47 code, e.g. ``ja-JP``."""

    id: str
    title: str
    description: str
    language: str
    voice: str  # a voice of the scenario's engine
    engine: str = "gemini"  # "gemini" (Gemini Live) or "openai" (OpenAI Realtime)
    system_instruction: str
    vad: Vad = Vad()
    tools: tuple[Tool, ...] = ()  # functions the AI party may call; their outcomes are recorded
    grading_instruction: str
    rubric: tuple[Criterion, ...]

    def public(self) -> dict[str, str]:
        """The fields a client may see (``GET /scenarios``)."""
        return {
            "id": self.id,
            "title": self.title,
            "description": self.description,
            "language": self.language,
            "voice": self.voice,
            "engine": self.engine,
        }


_SALES_JA_INSTRUCTION = """\
あなたは中堅の製造業「東和精機株式会社」（従業員約800名）の情報システム部長、佐藤誠です。
相手（ユーザー）は、社内業務向けAIアシスタント製品を売り込みに来た営業担当者です。
あなたは顧客役を演じ、営業担当者の練習相手になります。

話し方:
- 自然な話し言葉の日本語で、丁寧語を使います。一度の返答は一〜二文に収めてください。
- 箇条書きや記号は使わず、声に出して自然な文だけを話します。
- 相手の発言を遮らず、聞かれたことに答えます。自分から製品の説明はしません。

人物像と本音:
- 慎重で、新しいツールの売り込みには少し警戒しています。最初は忙しそうに、短く答えます。
- 実は次の悩みを抱えていますが、的確に質問されるまで自分からは言いません。
  1. 社内問い合わせ（パスワード再設定、PCの使い方など）が情報システム部の5名に集中し、本来の業務が進まない。
  2. 過去の設計資料や手順書が部署ごとに散らばっていて、探すのに時間がかかる。
  3. 情報漏えいが怖く、社外のAIサービスに社内データを入れることに経営陣が強い懸念を持っている。
- 営業担当者が具体的な質問で悩みを引き出し、その悩みに結びつけた提案をしたときだけ、少しずつ前向きになります。
- 製品の一般的な宣伝や、悩みを聞かずに機能を並べられると、そっけなくなります。
- セキュリティ、費用（予算は年間数百万円程度）、導入の手間について、もっともな懸念を伝えます。

ゴール:
- 営業担当者が懸念にきちんと答え、次の具体的な一歩（デモや打ち合わせの日程）を提案したら、
  アポイントを受け入れてかまいません。そうでなければ「検討します」とやんわり断ります。
- アポイントを受け入れたら、日付・時刻・目的を schedule_meeting 関数で記録してください（話はそのまま続けます）。
- あなたがAIであることや、これが練習であることには触れません。最後まで佐藤として話します。
"""

SCHEDULE_MEETING = Tool(
    name="schedule_meeting",
    description=("Record the meeting you (the customer) just agreed to with the salesperson: a demo, a follow-up "
                 "meeting or a visit. Call it only once you have clearly accepted a concrete date and time."),
    parameters={
        "type": "object",
        "properties": {
            "date": {"type": "string", "description": "The agreed date, YYYY-MM-DD."},
            "time": {"type": "string", "description": "The agreed start time, HH:MM (24-hour clock)."},
            "topic": {"type": "string", "description": "What the meeting is for, e.g. demo."},
        },
        "required": ["date", "time"],
    },
    outcome="appointment",
)

_SALES_JA_GRADING = """\
あなたは法人営業のトレーナーです。以下は、AIアシスタント製品を売り込む営業担当者（user）と、
顧客役の情報システム部長（model）との商談ロールプレイの記録です。営業担当者（user）だけを評価してください。
評価は日本語で、記録からの具体的な引用を根拠に、良かった点と改善点を簡潔に述べてください。
点数は0〜100で、各評価項目の重みを考慮して総合点を決めてください。
"""

_INTERVIEW_EN_INSTRUCTION = """\
You are Jordan Lee, operations director at Brightline Logistics, a regional delivery company with
about 300 staff. The user is a salesperson pitching an AI scheduling assistant to you.

How you speak:
- Natural, spoken English; one or two short sentences per reply; no lists or symbols.
- Answer what you are asked; do not pitch the product to yourself.

What you really think:
- You are busy and mildly sceptical of AI tools, and you say so politely.
- Your hidden pains, revealed only when the salesperson asks good questions: dispatchers rebuild the
  route plan by hand every morning when drivers call in sick; customers complain about missed delivery
  windows; last year's software rollout failed because nobody trained the dispatchers.
- You warm up only when the proposal is tied to those pains. Generic feature lists make you curt.
- Raise fair concerns about cost, integration with your existing dispatch system, and staff training.

Goal:
- If the salesperson handles your concerns and proposes a concrete next step (a demo or a meeting with
  a date), accept it. Otherwise say you will think about it. Never mention that you are an AI.
- When you accept a meeting, record its date, time and topic with the schedule_meeting function, and keep talking.
"""

_INTERVIEW_EN_GRADING = """\
You are a B2B sales coach. Below is a role-play between a salesperson (user) pitching an AI scheduling
assistant and a prospective customer (model). Grade only the salesperson (user), in English, quoting the
transcript as evidence for each point. Scores run from 0 to 100; weigh the criteria by their weights.
"""

_SALES_RUBRIC_JA = (
    Criterion(name="課題の引き出し（質問力）", weight=25,
              description="開かれた質問と深掘りで、顧客の業務上の悩みや背景を具体的に引き出したか。"),
    Criterion(name="傾聴", weight=15,
              description="顧客の発言を遮らず、要約や確認で理解を示し、話を踏まえて次の質問をしたか。"),
    Criterion(name="価値提案", weight=20,
              description="引き出した悩みに結びつけて、製品がもたらす具体的な価値を示したか。"),
    Criterion(name="懸念への対応", weight=15,
              description="セキュリティ・費用・導入負荷などの懸念を受け止め、根拠をもって答えたか。"),
    Criterion(name="クロージング（次の一歩）", weight=15,
              description="デモや打ち合わせなど、日時を伴う具体的な次のアクションを提案し合意を得たか。"),
    Criterion(name="礼儀・敬語", weight=10,
              description="適切な敬語と丁寧な話し方で、信頼感のある応対をしたか。"),
)

_SALES_RUBRIC_EN = (
    Criterion(name="Discovery questions", weight=25,
              description="Open and follow-up questions that uncovered the customer's real problems."),
    Criterion(name="Listening", weight=15,
              description="Let the customer finish, summarised and confirmed, built on what was said."),
    Criterion(name="Value proposition", weight=20,
              description="Tied the product's value to the specific pains uncovered."),
    Criterion(name="Objection handling", weight=15,
              description="Acknowledged concerns about cost, integration and training and answered them."),
    Criterion(name="Closing for a next step", weight=15,
              description="Proposed a concrete next step with a date (demo, meeting) and got agreement."),
    Criterion(name="Courtesy and tone", weight=10,
              description="Polite, professional, confident tone throughout."),
)

_GEMINI_SCENARIOS: tuple[Scenario, ...] = (
    Scenario(
        id="sales-ja",
        title="AIアシスタントの法人営業（情報システム部長）",
        description="慎重な情報システム部長に社内向けAIアシスタントを提案し、次回のアポイントを獲得しましょう。",
        language="ja-JP",
        voice="Kore",
        system_instruction=_SALES_JA_INSTRUCTION,
        vad=Vad(silence_ms=800),
        tools=(SCHEDULE_MEETING,),
        grading_instruction=_SALES_JA_GRADING,
        rubric=_SALES_RUBRIC_JA,
    ),
    Scenario(
        id="sales-en",
        title="Selling an AI scheduling assistant (operations director)",
        description="Pitch an AI scheduling assistant to a sceptical operations director and win a follow-up meeting.",
        language="en-US",
        voice="Puck",
        system_instruction=_INTERVIEW_EN_INSTRUCTION,
        vad=Vad(silence_ms=600),
        tools=(SCHEDULE_MEETING,),
        grading_instruction=_INTERVIEW_EN_GRADING,
        rubric=_SALES_RUBRIC_EN,
    ),
)

SCENARIOS: tuple[Scenario, ...] = _GEMINI_SCENARIOS + (
    dataclasses.replace(
        _GEMINI_SCENARIOS[0], id="sales-ja-openai", engine="openai", voice="marin",
        title="AIアシスタントの法人営業（情報システム部長・OpenAI）",
        description="同じ商談を OpenAI Realtime の顧客役で練習します。",
    ),
    dataclasses.replace(
        _GEMINI_SCENARIOS[1], id="sales-en-openai", engine="openai", voice="cedar",
        title="Selling an AI scheduling assistant (operations director, OpenAI)",
        description="The same pitch, with the customer played by OpenAI Realtime.",
    ),
)

DEFAULT_SCENARIO_ID = SCENARIOS[0].id


def get_scenario(scenario_id: str | None) -> Scenario | None:
    """The scenario with this id (the default one for ``None`` or ``""``), or None if unknown."""
    wanted = scenario_id or DEFAULT_SCENARIO_ID
    return next((s for s in SCENARIOS if s.id == wanted), None)


def scenario_for_language(language: str) -> Scenario:
    """The first scenario in ``language`` (``ja``, ``en-US``…: compared by its primary subtag), else the default."""
    wanted = language.split("-")[0].lower()
    return next((s for s in SCENARIOS if s.language.split("-")[0].lower() == wanted), SCENARIOS[0])


def public_scenarios() -> list[dict[str, str]]:
    """What ``GET /scenarios`` returns."""
    return [s.public() for s in SCENARIOS]
