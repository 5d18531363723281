// The page's lifecycle as one table: (state, event) -> next state. Pure: no DOM, no timers.
// The controller (conversation.js) dispatches events through transition() and never sets a
// state itself; an event the table does not list for the current state changes nothing.
//
//   idle|done|error ─start→ connecting ─ready→ live ⇄ reconnecting (socket retry, or Gemini's
//   connection replaced: reconnecting/resumed); connecting|live|reconnecting ─end→ ending
//   ─grade→ grading ─graded→ done; ─fail→ error; ─leave→ idle (the page is going away);
//   error ─grade→ grading: what was recorded before the failure is graded on request.

/** Every state the status line can show (page contract: data-state). */
export const State = Object.freeze({
  IDLE: "idle",
  CONNECTING: "connecting",
  LIVE: "live",
  RECONNECTING: "reconnecting",
  ENDING: "ending",
  GRADING: "grading",
  DONE: "done",
  ERROR: "error",
});

/** What can happen to a conversation. */
export const Event = Object.freeze({
  START: "start", // Start pressed
  READY: "ready", // the relay's `ready`: streaming may begin
  UPSTREAM_LOST: "upstream_lost", // the relay's `reconnecting`: Gemini's connection is being replaced
  RESUMED: "resumed", // the relay's `resumed`
  RETRY: "retry", // the socket dropped; a new one will resume the conversation by its ticket
  END: "end", // End pressed
  GRADE: "grade", // the conversation is over and was recorded (or failed, and its recording is asked for): grade it
  NOTHING_TO_GRADE: "nothing_to_grade", // the conversation is over before the relay knew it
  GRADED: "graded", // the grade (or why there is none) is shown
  FAIL: "fail", // the conversation cannot go on
  LEAVE: "leave", // the page is being left (pagehide)
});

const { IDLE, CONNECTING, LIVE, RECONNECTING, ENDING, GRADING, DONE, ERROR } = State;

/** States in which a conversation is being set up or running. */
export const TALKING = Object.freeze([CONNECTING, LIVE, RECONNECTING]);

// [event, states it may happen in, the state it leads to]
const ROWS = [
  [Event.START, [IDLE, DONE, ERROR], CONNECTING],
  [Event.READY, [CONNECTING, RECONNECTING], LIVE],
  [Event.UPSTREAM_LOST, [LIVE], RECONNECTING],
  [Event.RESUMED, [RECONNECTING], LIVE],
  [Event.RETRY, [LIVE, RECONNECTING], RECONNECTING], // never before the first `ready`: no ticket yet
  [Event.END, TALKING, ENDING],
  [Event.GRADE, [LIVE, RECONNECTING, ENDING, ERROR], GRADING],
  [Event.NOTHING_TO_GRADE, [...TALKING, ENDING], DONE],
  [Event.GRADED, [GRADING], DONE],
  [Event.FAIL, TALKING, ERROR],
  [Event.LEAVE, TALKING, IDLE],
];

/** The table: TRANSITIONS[state][event] is the next state; a missing entry is not allowed. */
export const TRANSITIONS = Object.freeze(
  Object.fromEntries(
    Object.values(State).map((from) => [
      from,
      Object.freeze(Object.fromEntries(ROWS.filter(([, froms]) => froms.includes(from)).map(([e, , to]) => [e, to]))),
    ]),
  ),
);

/**
 * Apply `event` in `state`.
 * @returns {{state: string, allowed: boolean}} the next state, or `state` itself when not allowed
 */
export function transition(state, event) {
  const row = Object.hasOwn(TRANSITIONS, state) ? TRANSITIONS[state] : null;
  return row && Object.hasOwn(row, event) ? { state: row[event], allowed: true } : { state, allowed: false };
}

/** Whether `event` may happen in `state`. */
export function allows(state, event) {
  return transition(state, event).allowed;
}

/** Whether a conversation is being set up or running in `state`. */
export function isTalking(state) {
  return TALKING.includes(state);
}
