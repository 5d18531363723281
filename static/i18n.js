// The page's words in Japanese (first) and English. The template carries the Japanese
// text for a first paint; applyTranslations() switches everything marked data-i18n.

export const LANGUAGES = ["ja", "en"];

export const messages = {
  ja: {
    "app.tagline": "AI のお客様を相手に、声で商談のロールプレイ練習",
    "skip": "会話へ移動",
    "lang.switch": "English",
    "lang.switch.label": "Switch to English",
    "scenario.label": "シナリオ",
    "scenario.loading": "読み込み中…",
    "mode.label": "会話の方法",
    "mode.voice": "音声で話す",
    "mode.text": "文字で話す",
    "start": "会話を開始",
    "end": "終了して採点",
    "meter.label": "マイクの入力レベル",
    "state.idle": "待機中 — シナリオを選んで「会話を開始」を押してください",
    "state.connecting": "接続しています…",
    "state.live": "会話中 — 話しかけてください",
    "state.live.text": "会話中 — メッセージを入力してください",
    "state.reconnecting": "接続し直しています…",
    "state.ending": "会話を終了しています…",
    "state.grading": "採点しています… 数十秒かかることがあります",
    "state.done": "終了しました。もう一度練習するには「会話を開始」を押してください",
    "state.error": "会話を続けられませんでした",
    "emulated.banner": "デモモード：本物の Gemini ではなく、内蔵のエミュレーターが応答しています。",
    "transcript.title": "会話",
    "transcript.empty": "会話を始めると、ここに双方の発言が表示されます。",
    "role.user": "あなた",
    "role.model": "お客様（AI）",
    "utterance.interrupted": "（途中で中断）",
    "composer.label": "文字で話しかける",
    "composer.placeholder": "メッセージを入力して Enter…",
    "send": "送信",
    "feedback.title": "評価",
    "feedback.score": "総合スコア",
    "feedback.summary": "総評",
    "feedback.good": "良かった点",
    "feedback.improve": "改善点",
    "feedback.criteria": "評価項目",
    "feedback.criterion": "項目",
    "feedback.criterion.score": "点数",
    "feedback.comment": "コメント",
    "feedback.report": "詳細レポート",
    "feedback.progress": "会話を採点しています…",
    "feedback.unavailable": "このサーバーではまだ採点機能が使えません。会話は正常に終了しました。",
    "feedback.failed": "採点に失敗しました。会話の記録は保存されています。しばらくしてからもう一度お試しください。",
    "feedback.none": "採点できる会話がありませんでした。",
    "feedback.not_found": "この会話の記録が見つからないため、採点できませんでした。",
    "grade.recorded": "録音された部分を採点する",
    "metrics.title": "計測された事実",
    "metric.talk_share_user": "あなたの発話の割合",
    "metric.talk_share_user.good": "目安は 45 % 前後。話すより聞く時間を多めに。",
    "metric.questions_user": "あなたの質問",
    "metric.questions_user.good": "実際の商談では 11〜14 問を会話全体に散らすのが目安。",
    "metric.longest_monologue_s": "最長の連続発話",
    "metric.longest_monologue_s.good": "1 分以内で区切って、お客様の反応を確かめましょう。",
    "metric.interruptions": "お客様をさえぎった回数",
    "metric.interruptions.good": "0 回が目安。最後まで聞いてから話しましょう。",
    "metric.fillers_user": "つなぎ言葉（えー、あの など）",
    "metric.fillers_user.good": "少ないほど良い。言葉に詰まったら黙って一呼吸。",
    "metric.speech_rate_user": "話す速さ",
    "metric.speech_rate_user.good.chars_per_min": "1 分間に約 300 字が聞き取りやすい目安。",
    "metric.speech_rate_user.good.words_per_min": "1 分間に約 150 語が聞き取りやすい目安。",
    "metric.response_latency_s": "答えるまでの間（中央値）",
    "metric.response_latency_s.good": "自然な会話の間は 1 秒未満。考える一呼吸は問題ありません。",
    "metric.turns": "発話の回数（あなた / お客様）",
    "metric.turns.good": "やりとりが多いほど、お客様を会話に巻き込めています。",
    "metric.talk_s": "話した時間（あなた / お客様）",
    "metric.talk_s.good": "声が聞こえていた時間です（無音は含みません）。",
    "metric.duration_s": "会話の長さ",
    "metric.duration_s.good": "接続し直しても、最初から最後までを 1 つの会話として計測します。",
    "metric.unmeasured": "この会話では計測できませんでした。",
    "metric.pair": "{u} / {m}",
    "unit.s": "秒",
    "unit.chars_per_min": "字/分",
    "unit.words_per_min": "語/分",
    "verdict.good": "目安どおり",
    "verdict.fair": "もう一歩",
    "verdict.watch": "要注意",
    "timeline.title": "誰がいつ話したか",
    "timeline.label": "会話のタイムライン：上があなた、下がお客様",
    "timeline.user": "あなた",
    "timeline.model": "お客様（AI）",
    "timeline.interruption": "割り込み",
    "timeline.stretch": "{who} {from}〜{to}",
    "timeline.stretch.interruption": "{who} {from}〜{to}（割り込み）",
    "evidence.title": "評価の根拠になった発言",
    "evidence.recording": "会話の録音",
    "evidence.play": "{at} から再生：「{quote}」",
    "outcome.appointment": "アポイント獲得",
    "outcome.when": "{when}",
    "outcome.when.topic": "{when}（{topic}）",
    "error.mic_denied":
      "マイクの使用が許可されていません。アドレスバーのマイクのアイコンから許可して、もう一度「会話を開始」を押してください。文字で話すこともできます。",
    "error.mic_missing": "マイクが見つかりません。マイクをつないでから、もう一度お試しください。文字で話すこともできます。",
    "error.mic_busy": "マイクを使えません。ほかのアプリがマイクを使っていないか確認して、もう一度お試しください。",
    "error.mic_insecure": "このページではマイクを使えません（HTTPS で開く必要があります）。文字で話すこともできます。",
    "error.mic_failed": "マイクの準備に失敗しました。ページを再読み込みして、もう一度お試しください。",
    "error.capacity": "サーバーが混み合っています。1〜2分待ってから、もう一度「会話を開始」を押してください。",
    "error.upstream_unavailable": "AI（Gemini）に接続できません。しばらく待ってから、もう一度お試しください。",
    "error.upstream_error": "AI（Gemini）との接続がエラーで終了しました。もう一度「会話を開始」を押してください。",
    "error.connection_lost": "サーバーとの接続が切れました。ネットワークを確認して、もう一度「会話を開始」を押してください。",
    "error.rate_limited": "短時間に操作が集中しました。1分ほど待ってから、もう一度お試しください。",
    "error.session_limit": "会話の最大時間に達しました。",
    "error.session_limit.warning": "まもなく会話の最大時間に達します。そろそろまとめましょう。",
    "error.idle_timeout": "しばらく操作がなかったため、会話を終了しました。",
    "error.shutting_down": "サーバーの再起動のため会話が終わりました。少し待ってから、もう一度「会話を開始」を押してください。",
    "error.unauthorized": "この会話を開始する権限がありません。ページを再読み込みしてください。",
    "error.forbidden_origin": "このページからは接続できません。正しいアドレスで開き直してください。",
    "error.bad_request": "送信した内容を受け付けられませんでした。",
    "error.too_large": "送信した内容が大きすぎます。短くしてください。",
    "error.internal": "サーバーで問題が起きました。もう一度「会話を開始」を押してください。",
    "error.scenarios": "シナリオを読み込めませんでした。ページを再読み込みしてください。",
    "error.not_live": "会話が始まっていません。先に「会話を開始」を押してください。",
    "error.unknown": "問題が起きました。もう一度お試しください。",
    // learners: history, progress, limits
    "error.quota_exceeded": "練習の上限に達しました。上限が戻るまでお待ちください（詳しくは「練習の記録」をご覧ください）。",
    "nav.history": "練習の記録",
    "nav.practice": "練習する",
    "learner.cookie_note":
      "練習の記録は、このブラウザーの Cookie に保存された匿名の ID に結び付いています。Cookie を削除すると新しい学習者として始まり、これまでの記録は表示されなくなります。",
    "feedback.see_progress": "練習の記録と成長を見る",
    "history.page_title": "練習の記録 — Live Talk",
    "history.skip": "記録の一覧へ移動",
    "history.tagline": "練習の記録と成長",
    "history.usage.title": "きょうの練習",
    "history.usage.line": "きょうは {conversations} 回、{time} 練習しました（1 日 {limit} 分まで、同時に {concurrent} 件まで）。",
    "history.usage.resets": "上限は {hours} 時間後（協定世界時 0 時）に戻ります。",
    "history.progress.title": "成長の推移",
    "history.progress.score": "スコア",
    "history.progress.talk_share": "あなたの発話の割合（%）",
    "history.progress.empty": "採点された会話がまだありません。会話を終えて採点すると、ここにスコアの推移が表示されます。",
    "history.progress.point": "{date}：{score} 点",
    "history.progress.talk_point": "{date}：あなたの発話 {share}%",
    "history.list.title": "これまでの会話",
    "history.list.empty": "まだ会話がありません。",
    "history.list.more": "さらに表示",
    "history.item.ungraded": "未採点",
    "history.item.score": "{score} 点",
    "history.item.appointment": "アポイント獲得",
    "history.item.no_outcome": "成果なし",
    "history.load_failed": "記録を読み込めませんでした。ページを再読み込みしてください。",
    "detail.close": "一覧に戻る",
    "detail.no_audio": "この会話には録音がありません。",
    "detail.not_found": "この会話は見つかりませんでした（削除された可能性があります）。",
    "detail.not_graded": "この会話はまだ採点されていません。",
    "detail.delete": "この会話を削除",
    "detail.delete.confirm_title": "この会話を削除しますか？",
    "detail.delete.confirm_text": "録音、文字起こし、評価を含むすべての記録が削除され、元に戻せません。",
    "detail.delete.cancel": "やめる",
    "detail.delete.ok": "削除する",
    "detail.delete.failed": "削除できませんでした。しばらくしてからもう一度お試しください。",
    "admin.title": "すべての学習者の会話（管理者）",
    "admin.scenario": "シナリオ",
    "admin.any": "すべて",
    "admin.since": "開始日",
    "admin.until": "終了日",
    "admin.learner": "学習者（ID またはメール）",
    "admin.min_score": "最低スコア",
    "admin.max_score": "最高スコア",
    "admin.search": "検索",
    "admin.mine": "自分の記録に戻る",
  },
  en: {
    "app.tagline": "Practise a sales conversation out loud with an AI customer",
    "skip": "Skip to the conversation",
    "lang.switch": "日本語",
    "lang.switch.label": "日本語に切り替える",
    "scenario.label": "Scenario",
    "scenario.loading": "Loading…",
    "mode.label": "How to talk",
    "mode.voice": "Speak",
    "mode.text": "Type",
    "start": "Start conversation",
    "end": "End and grade",
    "meter.label": "Microphone level",
    "state.idle": "Ready — choose a scenario and press Start conversation",
    "state.connecting": "Connecting…",
    "state.live": "Live — go ahead and speak",
    "state.live.text": "Live — type a message",
    "state.reconnecting": "Reconnecting…",
    "state.ending": "Ending the conversation…",
    "state.grading": "Grading… this can take a few tens of seconds",
    "state.done": "Finished. Press Start conversation to practise again",
    "state.error": "The conversation could not continue",
    "emulated.banner": "Demo mode: the built-in emulator answers instead of the real Gemini.",
    "transcript.title": "Conversation",
    "transcript.empty": "Once you start, both sides of the conversation appear here.",
    "role.user": "You",
    "role.model": "Customer (AI)",
    "utterance.interrupted": "(interrupted)",
    "composer.label": "Type to the customer",
    "composer.placeholder": "Type a message and press Enter…",
    "send": "Send",
    "feedback.title": "Evaluation",
    "feedback.score": "Overall score",
    "feedback.summary": "Summary",
    "feedback.good": "What went well",
    "feedback.improve": "What to improve",
    "feedback.criteria": "Criteria",
    "feedback.criterion": "Criterion",
    "feedback.criterion.score": "Score",
    "feedback.comment": "Comment",
    "feedback.report": "Full report",
    "feedback.progress": "Grading the conversation…",
    "feedback.unavailable": "Grading is not available on this server yet. The conversation ended normally.",
    "feedback.failed": "Grading failed. The conversation record is saved; please try again later.",
    "feedback.none": "There was no conversation to grade.",
    "feedback.not_found": "This conversation's record was not found, so it could not be graded.",
    "grade.recorded": "Grade what was recorded",
    "metrics.title": "What was measured",
    "metric.talk_share_user": "Your share of the talk",
    "metric.talk_share_user.good": "Aim for about 45 %: listen more than you talk.",
    "metric.questions_user": "Your questions",
    "metric.questions_user.good": "A full discovery call has 11–14 questions, spread through it.",
    "metric.longest_monologue_s": "Your longest monologue",
    "metric.longest_monologue_s.good": "Keep it under a minute, then check in with the customer.",
    "metric.interruptions": "Times you cut in",
    "metric.interruptions.good": "Aim for none: let the customer finish.",
    "metric.fillers_user": "Filler words (um, uh…)",
    "metric.fillers_user.good": "Fewer is better: a silent pause works.",
    "metric.speech_rate_user": "Speaking rate",
    "metric.speech_rate_user.good.chars_per_min": "About 300 characters a minute is easy to follow.",
    "metric.speech_rate_user.good.words_per_min": "About 150 words a minute is easy to follow.",
    "metric.response_latency_s": "Your pause before answering (median)",
    "metric.response_latency_s.good": "Natural turn-taking is under a second; a thinking pause is fine.",
    "metric.turns": "Turns (you / customer)",
    "metric.turns.good": "More back-and-forth keeps the customer engaged.",
    "metric.talk_s": "Talk time (you / customer)",
    "metric.talk_s.good": "How long each side's voice was heard (silence left out).",
    "metric.duration_s": "Length of the conversation",
    "metric.duration_s.good": "From start to end as one conversation, reconnections included.",
    "metric.unmeasured": "Not measured for this conversation.",
    "metric.pair": "{u} / {m}",
    "unit.s": "s",
    "unit.chars_per_min": "chars/min",
    "unit.words_per_min": "words/min",
    "verdict.good": "On target",
    "verdict.fair": "Nearly",
    "verdict.watch": "Watch this",
    "timeline.title": "Who spoke when",
    "timeline.label": "Timeline of the conversation: you on top, the customer below",
    "timeline.user": "You",
    "timeline.model": "Customer (AI)",
    "timeline.interruption": "Barge-in",
    "timeline.stretch": "{who} {from}–{to}",
    "timeline.stretch.interruption": "{who} {from}–{to} (barge-in)",
    "evidence.title": "The moments behind the grade",
    "evidence.recording": "Recording of the conversation",
    "evidence.play": "Play from {at}: “{quote}”",
    "outcome.appointment": "Meeting booked",
    "outcome.when": "{when}",
    "outcome.when.topic": "{when} ({topic})",
    "error.mic_denied":
      "The microphone is blocked. Allow it from the microphone icon in the address bar, then press Start conversation again. You can also type.",
    "error.mic_missing": "No microphone was found. Connect one and try again, or type instead.",
    "error.mic_busy": "The microphone is in use or unavailable. Close other apps using it and try again.",
    "error.mic_insecure": "The microphone only works when this page is opened over HTTPS. You can type instead.",
    "error.mic_failed": "The microphone could not be set up. Reload the page and try again.",
    "error.capacity": "The server is full right now. Wait a minute or two, then press Start conversation again.",
    "error.upstream_unavailable": "The AI (Gemini) cannot be reached. Please wait a little and try again.",
    "error.upstream_error": "The AI (Gemini) ended the session with an error. Press Start conversation to try again.",
    "error.connection_lost": "The connection to the server was lost. Check your network, then press Start conversation again.",
    "error.rate_limited": "Too many attempts in a short time. Wait about a minute, then try again.",
    "error.session_limit": "The conversation reached its maximum length.",
    "error.session_limit.warning": "The conversation will reach its maximum length soon. Time to wrap up.",
    "error.idle_timeout": "The conversation ended because nothing happened for a while.",
    "error.shutting_down": "The server is restarting, so the conversation ended. Wait a moment, then press Start conversation again.",
    "error.unauthorized": "You are not allowed to start this conversation. Reload the page.",
    "error.forbidden_origin": "This page cannot connect from here. Open it at its proper address.",
    "error.bad_request": "The server could not accept what was sent.",
    "error.too_large": "That was too long to send. Please shorten it.",
    "error.internal": "Something went wrong on the server. Press Start conversation to try again.",
    "error.scenarios": "The scenarios could not be loaded. Reload the page.",
    "error.not_live": "No conversation yet. Press Start conversation first.",
    "error.unknown": "Something went wrong. Please try again.",
    // learners: history, progress, limits
    "error.quota_exceeded": "You have reached your practice limit. Please wait until it resets (see Your practice for details).",
    "nav.history": "Your practice",
    "nav.practice": "Practise",
    "learner.cookie_note":
      "Your practice record is tied to an anonymous ID kept in this browser's cookies. Clearing cookies starts you as a new learner, and your earlier record will no longer be shown.",
    "feedback.see_progress": "See your practice record and progress",
    "history.page_title": "Your practice — Live Talk",
    "history.skip": "Skip to the list",
    "history.tagline": "Your practice record and progress",
    "history.usage.title": "Today",
    "history.usage.line": "Today you practised {conversations} time(s), {time} in all (up to {limit} min a day, {concurrent} at once).",
    "history.usage.resets": "The limit resets in {hours} h (at 00:00 UTC).",
    "history.progress.title": "Progress",
    "history.progress.score": "Score",
    "history.progress.talk_share": "Your share of the talking (%)",
    "history.progress.empty": "No graded conversation yet. End a conversation and have it graded to see your scores here.",
    "history.progress.point": "{date}: {score} points",
    "history.progress.talk_point": "{date}: you talked {share}%",
    "history.list.title": "Your conversations",
    "history.list.empty": "No conversations yet.",
    "history.list.more": "Show more",
    "history.item.ungraded": "Not graded",
    "history.item.score": "{score} points",
    "history.item.appointment": "Meeting agreed",
    "history.item.no_outcome": "No outcome",
    "history.load_failed": "Your record could not be loaded. Reload the page.",
    "detail.close": "Back to the list",
    "detail.no_audio": "This conversation has no recording.",
    "detail.not_found": "This conversation was not found (it may have been deleted).",
    "detail.not_graded": "This conversation has not been graded yet.",
    "detail.delete": "Delete this conversation",
    "detail.delete.confirm_title": "Delete this conversation?",
    "detail.delete.confirm_text": "Everything about it — recording, transcript, evaluation — is deleted for good.",
    "detail.delete.cancel": "Cancel",
    "detail.delete.ok": "Delete",
    "detail.delete.failed": "It could not be deleted. Please try again later.",
    "admin.title": "Every learner's conversations (administrators)",
    "admin.scenario": "Scenario",
    "admin.any": "Any",
    "admin.since": "From",
    "admin.until": "To",
    "admin.learner": "Learner (id or email)",
    "admin.min_score": "Lowest score",
    "admin.max_score": "Highest score",
    "admin.search": "Search",
    "admin.mine": "Back to my record",
  },
};

const LANGUAGE_KEY = "livetalk.lang";

/** The language the user chose earlier on any page of the site, or null. */
export function storedLanguage(storage = undefined) {
  try {
    const store = storage ?? globalThis.localStorage; // reading localStorage itself throws when blocked
    return store ? store.getItem(LANGUAGE_KEY) : null;
  } catch {
    return null; // storage blocked: follow the browser
  }
}

/** Remember the user's choice for every page of the site (quietly not, when storage is blocked). */
export function storeLanguage(lang, storage = undefined) {
  try {
    const store = storage ?? globalThis.localStorage;
    if (store) store.setItem(LANGUAGE_KEY, lang);
  } catch {
    // not remembered; still switched for this page
  }
}

/** The language after `lang` in LANGUAGES (the language button's next choice). */
export function nextLanguage(lang) {
  return LANGUAGES[(LANGUAGES.indexOf(lang) + 1) % LANGUAGES.length];
}

/** `template` with each {name} replaced by values[name] (missing names are left as they are). */
export function fill(template, values) {
  return template.replace(/\{(\w+)\}/g, (whole, name) => (Object.hasOwn(values, name) ? String(values[name]) : whole));
}

/**
 * Choose the page language: a stored choice first, then the first of the browser's
 * languages that we speak, else Japanese.
 * @param {readonly string[]} browserLanguages e.g. navigator.languages
 * @param {string|null} [stored] a previous explicit choice
 */
export function pickLanguage(browserLanguages, stored = null) {
  if (stored && LANGUAGES.includes(stored)) return stored;
  for (const tag of browserLanguages || []) {
    const base = String(tag).toLowerCase().split("-")[0];
    if (LANGUAGES.includes(base)) return base;
  }
  return "ja";
}

/**
 * A lookup function for one language; falls back to Japanese, then to the key itself.
 * @param {string} lang
 * @returns {(key: string) => string}
 */
export function translator(lang) {
  const table = messages[lang] || messages.ja;
  return (key) => table[key] ?? messages.ja[key] ?? key;
}

/**
 * Replace the text of every [data-i18n] element under `root`, and the attributes named by
 * [data-i18n-placeholder] / [data-i18n-aria-label].
 */
export function applyTranslations(root, t) {
  for (const el of root.querySelectorAll("[data-i18n]")) el.textContent = t(el.dataset.i18n);
  for (const el of root.querySelectorAll("[data-i18n-placeholder]")) el.placeholder = t(el.dataset.i18nPlaceholder);
  for (const el of root.querySelectorAll("[data-i18n-aria-label]")) {
    el.setAttribute("aria-label", t(el.dataset.i18nAriaLabel));
  }
}
