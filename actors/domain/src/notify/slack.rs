//! Slack incoming-webhook messages in Block Kit: a `text` fallback (notifications and
//! clients without blocks) and blocks: a `header` (the subject), `section`s of mrkdwn (the
//! text), a `section` of fields (the summary's facts) and a `context` line.
//!
//! Slack's published limits, kept here: at most [`MAX_BLOCKS`] blocks; a header's
//! `plain_text` at most [`MAX_HEADER_CHARS`] characters; a section's text at most
//! [`MAX_SECTION_CHARS`]; at most 10 fields of at most 2000 characters; at most 10
//! context elements. mrkdwn text has `&`, `<` and `>` escaped, so text from an event (a
//! package name, an error) cannot form a link or a mention.

use serde_json::{json, Value};

use super::summary::Summary;
use super::template::Rendered;

pub const MAX_BLOCKS: usize = 50;
pub const MAX_HEADER_CHARS: usize = 150;
pub const MAX_SECTION_CHARS: usize = 3000;
pub const MAX_FIELDS: usize = 10;
pub const MAX_FIELD_CHARS: usize = 2000;
pub const MAX_CONTEXT_ELEMENTS: usize = 10;
/// The fallback `text` is cut here (Slack truncates at 40,000; a notification shows far
/// less).
pub const MAX_FALLBACK_CHARS: usize = 3000;
/// Sections of text before the rest is cut (so the message stays within its blocks).
const MAX_TEXT_SECTIONS: usize = 20;

/// Escapes the three characters Slack's mrkdwn reads as markup.
pub fn escape_mrkdwn(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            c => out.push(c),
        }
    }
    out
}

/// Cuts `text` to at most `max` characters, ending with `…` when cut.
pub(crate) fn cut(text: &str, max: usize) -> String {
    if text.chars().count() <= max {
        return text.to_owned();
    }
    let mut out: String = text.chars().take(max.saturating_sub(1)).collect();
    out.push('…');
    out
}

/// Escapes and cuts one piece of text so its escaped form has at most `max` characters,
/// never cutting an entity in two.
fn escaped_within(text: &str, max: usize) -> String {
    let mut out = String::new();
    let mut len = 0;
    let total = escape_mrkdwn(text).chars().count();
    let budget = if total <= max {
        max
    } else {
        max.saturating_sub(1)
    };
    for c in text.chars() {
        let piece = escape_mrkdwn(c.encode_utf8(&mut [0; 4]));
        let n = piece.chars().count();
        if len + n > budget {
            out.push('…');
            return out;
        }
        out.push_str(&piece);
        len += n;
    }
    out
}

/// Splits text into escaped mrkdwn chunks of at most [`MAX_SECTION_CHARS`], at line ends
/// where it can.
fn sections(text: &str) -> Vec<String> {
    let mut chunks: Vec<String> = Vec::new();
    let mut current = String::new();
    let mut current_len = 0;
    for line in text.lines() {
        let line = escaped_within(line, MAX_SECTION_CHARS);
        let n = line.chars().count();
        let needed = if current.is_empty() {
            n
        } else {
            current_len + 1 + n
        };
        if needed > MAX_SECTION_CHARS {
            chunks.push(std::mem::take(&mut current));
            current_len = 0;
        }
        if !current.is_empty() {
            current.push('\n');
            current_len += 1;
        }
        current.push_str(&line);
        current_len += n;
    }
    if !current.trim().is_empty() {
        chunks.push(current);
    }
    chunks.retain(|c| !c.trim().is_empty());
    if chunks.len() > MAX_TEXT_SECTIONS {
        chunks.truncate(MAX_TEXT_SECTIONS);
        if let Some(last) = chunks.last_mut() {
            *last = cut(last, MAX_SECTION_CHARS - 2);
            last.push_str("\n…");
        }
    }
    chunks
}

/// The message for a Slack incoming webhook.
pub fn slack_payload(r: &Rendered, summary: &Summary) -> Value {
    let mut blocks = vec![json!({
        "type": "header",
        "text": {"type": "plain_text", "text": cut(&r.subject, MAX_HEADER_CHARS), "emoji": false},
    })];
    for chunk in sections(&r.text) {
        blocks.push(json!({"type": "section", "text": {"type": "mrkdwn", "text": chunk}}));
    }
    let fields: Vec<Value> = summary
        .facts
        .iter()
        .filter(|f| f.title != "Event id")
        .take(MAX_FIELDS)
        .map(|f| {
            let text = format!("*{}*\n{}", escape_mrkdwn(&f.title), escape_mrkdwn(&f.value));
            json!({"type": "mrkdwn", "text": cut(&text, MAX_FIELD_CHARS)})
        })
        .collect();
    if !fields.is_empty() {
        blocks.push(json!({"type": "section", "fields": fields}));
    }
    let mut context = vec![json!({"type": "mrkdwn", "text": "Sent by Stella"})];
    if let Some(id) = summary.facts.iter().find(|f| f.title == "Event id") {
        context.push(json!({"type": "mrkdwn", "text": escaped_within(&id.value, MAX_FIELD_CHARS)}));
    }
    context.truncate(MAX_CONTEXT_ELEMENTS);
    blocks.push(json!({"type": "context", "elements": context}));
    blocks.truncate(MAX_BLOCKS);
    let fallback = if r.subject.is_empty() {
        &r.text
    } else {
        &r.subject
    };
    json!({
        "text": escaped_within(fallback, MAX_FALLBACK_CHARS),
        "blocks": blocks,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escaping_never_splits_an_entity() {
        assert_eq!(escape_mrkdwn("a<b>&c"), "a&lt;b&gt;&amp;c");
        let s = escaped_within(&"&".repeat(10), 12);
        assert_eq!(s, "&amp;&amp;…");
        assert_eq!(escaped_within("abc", 3), "abc");
    }
}
