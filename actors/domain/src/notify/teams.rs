//! Microsoft Teams messages for a Workflows webhook ("Post to a channel when a webhook
//! request is received"): a `message` with one Adaptive Card 1.5 attachment. The card has
//! the subject as a heading (coloured by severity), the text, and the summary's facts as
//! a `FactSet`; `fallbackText` is the subject.

use serde_json::{json, Value};

use super::event::Severity;
use super::slack::cut;
use super::summary::Summary;
use super::template::Rendered;

/// The Adaptive Card version written; Teams renders 1.5.
pub const CARD_VERSION: &str = "1.5";
/// Text beyond this many characters is cut (Teams refuses messages over about 28 KB).
pub const MAX_TEXT_CHARS: usize = 20_000;

/// The message for a Teams Workflows webhook.
pub fn teams_payload(r: &Rendered, summary: &Summary) -> Value {
    let color = match summary.severity {
        Some(Severity::Critical | Severity::High) => "Attention",
        Some(Severity::Medium) => "Warning",
        _ => "Default",
    };
    let mut body = vec![json!({
        "type": "TextBlock",
        "text": cut(&r.subject, 500),
        "style": "heading",
        "weight": "Bolder",
        "size": "Medium",
        "color": color,
        "wrap": true,
    })];
    if !r.text.trim().is_empty() && r.text.trim() != r.subject.trim() {
        body.push(json!({"type": "TextBlock", "text": cut(&r.text, MAX_TEXT_CHARS), "wrap": true}));
    }
    let facts: Vec<Value> = summary
        .facts
        .iter()
        .map(|f| json!({"title": cut(&f.title, 100), "value": cut(&f.value, 1000)}))
        .collect();
    if !facts.is_empty() {
        body.push(json!({"type": "FactSet", "facts": facts}));
    }
    json!({
        "type": "message",
        "attachments": [{
            "contentType": "application/vnd.microsoft.card.adaptive",
            "contentUrl": null,
            "content": {
                "$schema": "http://adaptivecards.io/schemas/adaptive-card.json",
                "type": "AdaptiveCard",
                "version": CARD_VERSION,
                "fallbackText": cut(&r.subject, 500),
                "body": body,
            },
        }],
    })
}
