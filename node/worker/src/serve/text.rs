//! Text around the tokens: the chat template, stop strings and incremental detokenization.

use magnet_bitnet::export::CHAT_TEMPLATE;

/// One chat message, its content already flattened to text.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ChatMessage {
    /// `system`, `user`, `assistant` (or any other role the client names).
    pub role: String,
    /// The text.
    pub content: String,
}

/// Which template a model's GGUF asks for.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Template {
    /// [`CHAT_TEMPLATE`] (what `magnet-worker export` writes), or no template at all.
    Plain,
    /// Another Jinja template: not rendered (the server has no Jinja engine); chat requests
    /// use [`Template::Plain`] and the server says so at start.
    Foreign(String),
}

impl Template {
    /// The template a GGUF's `tokenizer.chat_template` value names.
    pub fn from_gguf(value: Option<&str>) -> Template {
        match value {
            None => Template::Plain,
            Some(t) if t == CHAT_TEMPLATE => Template::Plain,
            Some(t) => Template::Foreign(t.to_string()),
        }
    }
}

/// Renders `messages` with [`CHAT_TEMPLATE`]: `role: content\n` per message, then
/// `assistant:` (the generation prompt).
pub fn render_chat(messages: &[ChatMessage]) -> String {
    let mut s = String::new();
    for m in messages {
        s.push_str(&m.role);
        s.push_str(": ");
        s.push_str(&m.content);
        s.push('\n');
    }
    s.push_str("assistant:");
    s
}

/// Stop strings a chat adds on its own: the model starting the next turn.
pub fn chat_stops() -> Vec<String> {
    ["\nuser:", "\nsystem:"]
        .iter()
        .map(|s| s.to_string())
        .collect()
}

/// Streams decoded text out of generated tokens: emits only text that can no longer change
/// (no dangling UTF-8 replacement character, no prefix of a stop string) and reports where a
/// stop string completed.
#[derive(Debug, Default)]
pub struct TextStream {
    tokens: Vec<u32>,
    /// Bytes of the decoded text already emitted.
    emitted: usize,
    stops: Vec<String>,
    /// Text up to the end of the first stop string's start, once one completed.
    stopped: bool,
}

/// What [`TextStream::push`] produced.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Piece {
    /// New text safe to send.
    pub text: String,
    /// Whether a stop string completed (generation must end; `text` ends before it).
    pub stop: bool,
}

impl TextStream {
    /// A stream that ends at the first of `stops` (empty strings are ignored).
    pub fn new(stops: Vec<String>) -> TextStream {
        TextStream {
            stops: stops.into_iter().filter(|s| !s.is_empty()).collect(),
            ..TextStream::default()
        }
    }

    /// Adds token `t`; `decode` turns the whole token list into text.
    pub fn push<E>(
        &mut self,
        t: u32,
        decode: impl Fn(&[u32]) -> Result<String, E>,
    ) -> Result<Piece, E> {
        if self.stopped {
            return Ok(Piece::default());
        }
        self.tokens.push(t);
        let text = decode(&self.tokens)?;
        Ok(self.advance(&text, false))
    }

    /// The rest of the text once generation ended for another reason (length, end of text).
    pub fn finish<E>(&mut self, decode: impl Fn(&[u32]) -> Result<String, E>) -> Result<Piece, E> {
        if self.stopped {
            return Ok(Piece::default());
        }
        let text = decode(&self.tokens)?;
        Ok(self.advance(&text, true))
    }

    fn advance(&mut self, text: &str, last: bool) -> Piece {
        // A stop string anywhere after what was already sent ends the text before it.
        let from = self.emitted.min(text.len());
        let search_from = self
            .stops
            .iter()
            .map(|s| s.len())
            .max()
            .map_or(from, |m| floor_char(text, from.saturating_sub(m)));
        let hit = self
            .stops
            .iter()
            .filter_map(|s| {
                text[search_from..]
                    .find(s.as_str())
                    .map(|i| search_from + i)
            })
            .min();
        if let Some(at) = hit {
            self.stopped = true;
            let at = at.max(from);
            let piece = text[from..at].to_string();
            self.emitted = at;
            return Piece {
                text: piece,
                stop: true,
            };
        }
        let mut end = text.len();
        if !last {
            // Hold back a trailing replacement character (a token ending mid-character) and
            // any tail that could still grow into a stop string.
            if text.ends_with('\u{FFFD}') {
                end = text.len() - '\u{FFFD}'.len_utf8();
            }
            for s in &self.stops {
                for k in (1..s.len()).rev() {
                    if s.is_char_boundary(k) && text[..end].ends_with(&s[..k]) {
                        end = end.min(text.len() - k);
                        break;
                    }
                }
            }
        }
        let end = floor_char(text, end.max(from));
        let piece = text[from..end].to_string();
        self.emitted = end;
        Piece {
            text: piece,
            stop: false,
        }
    }

    /// Tokens generated so far.
    pub fn tokens(&self) -> usize {
        self.tokens.len()
    }
}

/// The largest char boundary ≤ `i`.
fn floor_char(s: &str, mut i: usize) -> usize {
    i = i.min(s.len());
    while !s.is_char_boundary(i) {
        i -= 1;
    }
    i
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A "tokenizer" whose token i is the i-th string of `vocab`.
    fn dec<'a>(vocab: &'a [&'a str]) -> impl Fn(&[u32]) -> Result<String, ()> + 'a {
        move |ids: &[u32]| Ok(ids.iter().map(|i| vocab[*i as usize]).collect())
    }

    #[test]
    fn the_chat_template_renders_roles_then_the_generation_prompt() {
        let m = |r: &str, c: &str| ChatMessage {
            role: r.into(),
            content: c.into(),
        };
        assert_eq!(
            render_chat(&[m("system", "Be brief."), m("user", "Who begat Enos?")]),
            "system: Be brief.\nuser: Who begat Enos?\nassistant:"
        );
        assert_eq!(Template::from_gguf(Some(CHAT_TEMPLATE)), Template::Plain);
        assert_eq!(Template::from_gguf(None), Template::Plain);
        assert!(matches!(
            Template::from_gguf(Some("{{ x }}")),
            Template::Foreign(_)
        ));
    }

    #[test]
    fn text_is_streamed_whole_and_a_stop_string_ends_it_before_the_stop() {
        let vocab = ["In", " the", " begin", "ning\n", "user", ":", " more"];
        let d = dec(&vocab);
        let mut s = TextStream::new(chat_stops());
        let mut out = String::new();
        let mut stopped = false;
        for t in 0..7 {
            let p = s.push(t, &d).unwrap();
            out.push_str(&p.text);
            if p.stop {
                stopped = true;
                break;
            }
        }
        assert!(stopped);
        assert_eq!(out, "In the beginning");
    }

    #[test]
    fn a_held_back_prefix_of_a_stop_string_is_released_when_it_does_not_complete() {
        let vocab = ["a", "\nus", "ed", "\n"];
        let d = dec(&vocab);
        let mut s = TextStream::new(chat_stops());
        assert_eq!(s.push(0, &d).unwrap().text, "a");
        assert_eq!(
            s.push(1, &d).unwrap().text,
            "",
            "`\\nus` may become `\\nuser:`"
        );
        assert_eq!(s.push(2, &d).unwrap().text, "\nused");
        assert_eq!(s.push(3, &d).unwrap().text, "");
        assert_eq!(
            s.finish(&d).unwrap().text,
            "\n",
            "the end releases the tail"
        );
    }

    #[test]
    fn a_token_ending_inside_a_character_waits_for_the_rest() {
        // "é" split over two tokens: the first decodes to a replacement character.
        let vocab = ["caf", "\u{FFFD}", "é"];
        let d = |ids: &[u32]| -> Result<String, ()> {
            Ok(if ids.ends_with(&[1]) {
                "caf\u{FFFD}".to_string()
            } else {
                ids.iter()
                    .filter(|i| **i != 1)
                    .map(|i| vocab[*i as usize])
                    .collect()
            })
        };
        let mut s = TextStream::new(vec![]);
        assert_eq!(s.push(0, d).unwrap().text, "caf");
        assert_eq!(s.push(1, d).unwrap().text, "");
        assert_eq!(s.push(2, d).unwrap().text, "é");
    }
}
