//! Rich replies on the server side: what the gateway remembers of the buttons and feedback
//! requests it sent, and what it makes of the answers.
//!
//! - **Numbered answers.** A channel that cannot show a message's buttons sends them as a
//!   numbered list ([`chatgate_model::rich::numbered_list`]). The gateway remembers the payloads of
//!   the last such list per chat; the customer's next plain-text answer `"2"` (also `2.`, `#2`)
//!   becomes a `postback` with the second button's payload (the `message` is kept beside it).
//!   A list is answered once: the mapping is dropped after the first number that maps.
//! - **Press notices.** The `notice` of each button of the last buttons message per chat, shown
//!   with the press answer (Telegram `answerCallbackQuery`, VK snackbar).
//! - **Feedback.** The newest request per chat and the answers seen per request: an answer to an
//!   older request is `late`, a second answer to the same request is `repeat`; both are stored.
//!
//! Where the state lives: in memory, bounded ([`CHATS_MAX`] chats, the oldest forgotten first).
//! It is written when `POST /v1/messages` stores a message and read on the webhook and visitor
//! paths. The queue offers no mutable per-chat record without a new trait method, and a read
//! of the message store per inbound message would put a store round trip on the ingest path;
//! the cost of memory is that after a restart (or on another instance) a numbered answer to an
//! earlier list arrives as the plain `message` it is, notices of earlier buttons are not
//! shown, and answers to earlier feedback requests carry no `late`/`repeat` flag. Nothing is
//! lost: every answer is still stored and forwarded.
//!
//! Press answers are sent right after the press is stored, on their own task: they never hold
//! the webhook's answer, and a failure is logged (the provider shows its spinner a few seconds).

use std::collections::{HashMap, HashSet, VecDeque};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use chatgate_adapter::{Adapter, InboundEvent, Press};
use chatgate_model::rich::numbered_answer;
use chatgate_model::{ChatAction, Conversation, EventKind, OutboundRequest, Postback};
use uuid::Uuid;

/// Most chats whose offers and requests are remembered.
pub const CHATS_MAX: usize = 100_000;

/// Least time between two markers of one kind in one chat (`POST /v1/chats/.../typing|read`):
/// a typing indicator lasts several seconds on every channel, so more often only costs calls
/// against the provider's rate limit.
pub const MARKER_INTERVAL: Duration = Duration::from_secs(2);

/// The last buttons and the feedback requests of one chat.
#[derive(Debug, Default)]
struct ChatState {
    /// The payloads of the last numbered list, by number (`None` for a link button).
    numbered: Option<Vec<(Option<String>, String)>>,
    /// `(payload, notice)` of the last buttons message.
    notices: Vec<(String, String)>,
    /// The newest feedback request.
    feedback: Option<String>,
    /// Requests answered, with the scores given.
    answered: HashMap<String, HashSet<u8>>,
}

/// The gateway's memory of rich replies (see the module doc).
#[derive(Debug, Default)]
pub(crate) struct Rich {
    chats: Mutex<Chats>,
    markers: Mutex<HashMap<(Conversation, ChatAction), Instant>>,
}

#[derive(Debug, Default)]
struct Chats {
    by_chat: HashMap<Conversation, ChatState>,
    order: VecDeque<Conversation>,
}

impl Chats {
    fn entry(&mut self, chat: Conversation) -> &mut ChatState {
        if !self.by_chat.contains_key(&chat) {
            if self.order.len() >= CHATS_MAX
                && let Some(oldest) = self.order.pop_front()
            {
                self.by_chat.remove(&oldest);
            }
            self.order.push_back(chat.clone());
        }
        self.by_chat.entry(chat).or_default()
    }
}

/// What storing the inbound events will settle: answers to remember once stored.
#[derive(Debug, Default)]
pub(crate) struct Settle {
    answers: Vec<(Conversation, String, u8)>,
    presses: Vec<(Press, Option<String>)>,
}

impl Rich {
    /// Remembers what a stored outbound message offers (`id`: its message id).
    pub fn offered(&self, id: Uuid, request: &OutboundRequest, numbered: bool) {
        if request.buttons.is_empty() && request.feedback.is_none() {
            return;
        }
        let mut chats = self.chats.lock().unwrap_or_else(|e| e.into_inner());
        let state = chats.entry(request.conversation());
        if !request.buttons.is_empty() {
            state.numbered =
                numbered.then(|| request.buttons.iter().map(|b| (b.payload.clone(), b.title.clone())).collect());
            state.notices =
                request.buttons.iter().filter_map(|b| Some((b.payload.clone()?, b.notice.clone()?))).collect();
        }
        if request.feedback.is_some() {
            state.feedback = Some(id.to_string());
        }
    }

    /// Reads one inbound event before it is stored: a numbered answer becomes a `postback`, a
    /// feedback answer gets its `late`/`repeat` flags, a press its notice. What must be
    /// remembered only once stored goes into `settle`.
    pub fn inbound(&self, mut item: InboundEvent, settle: &mut Settle) -> InboundEvent {
        let event = &mut item.event;
        let chat = Conversation::new(event.channel, event.account.clone(), event.chat_id.clone());
        let numbered = match event.kind {
            EventKind::Message => event.message.as_ref().and_then(|m| numbered_answer(m.text.as_deref()?)),
            _ => None,
        };
        let press_payload = item.press.as_ref().and(event.postback.as_ref()).map(|p| p.payload.clone());
        if numbered.is_none() && event.kind != EventKind::Feedback && press_payload.is_none() {
            return item;
        }
        let mut chats = self.chats.lock().unwrap_or_else(|e| e.into_inner());
        let Some(state) = chats.by_chat.get_mut(&chat) else {
            if let Some(press) = item.press.take() {
                settle.presses.push((press, None));
            }
            return item;
        };
        if let Some(n) = numbered
            && let Some(list) = &state.numbered
            && let Some((Some(payload), title)) = list.get(n - 1)
        {
            event.kind = EventKind::Postback;
            event.postback = Some(Postback {
                payload: payload.clone(),
                title: Some(title.clone()),
                external_id: event.message.as_ref().map(|m| m.external_id.clone()),
            });
            state.numbered = None;
        }
        if let Some(f) = event.feedback.as_mut()
            && let Some(request) = f.request_id.clone()
        {
            f.late = state.feedback.as_ref().is_some_and(|newest| *newest != request);
            f.repeat = state.answered.get(&request).is_some_and(|scores| !scores.is_empty());
            settle.answers.push((chat.clone(), request, f.score));
        }
        if let Some(press) = item.press.take() {
            let notice = press_payload
                .and_then(|p| state.notices.iter().find(|(payload, _)| *payload == p).map(|(_, n)| n.clone()));
            settle.presses.push((press, notice));
        }
        item
    }

    /// Once the events are stored: remembers the answers, and answers the presses (each on its
    /// own task, so the webhook's answer never waits for them).
    pub fn settled(&self, adapter: Option<&Arc<dyn Adapter>>, settle: Settle) {
        if !settle.answers.is_empty() {
            let mut chats = self.chats.lock().unwrap_or_else(|e| e.into_inner());
            for (chat, request, score) in settle.answers {
                chats.entry(chat).answered.entry(request).or_default().insert(score);
            }
        }
        let Some(adapter) = adapter else { return };
        for (press, notice) in settle.presses {
            let adapter = adapter.clone();
            tokio::spawn(async move {
                if let Err(error) = adapter.answer_press(&press, notice.as_deref()).await {
                    tracing::warn!(channel = %adapter.channel(), account = adapter.account(), %error, "button press not answered");
                }
            });
        }
    }

    /// Whether a marker may be sent now in this chat (at most one per [`MARKER_INTERVAL`] and
    /// kind); else how long to wait.
    pub fn marker_allowed(&self, chat: Conversation, action: ChatAction) -> Result<(), Duration> {
        let mut markers = self.markers.lock().unwrap_or_else(|e| e.into_inner());
        let now = Instant::now();
        if markers.len() > CHATS_MAX {
            markers.retain(|_, at| now.duration_since(*at) < MARKER_INTERVAL);
        }
        match markers.get(&(chat.clone(), action)) {
            Some(at) if now.duration_since(*at) < MARKER_INTERVAL => Err(MARKER_INTERVAL - now.duration_since(*at)),
            _ => {
                markers.insert((chat, action), now);
                Ok(())
            }
        }
    }
}
