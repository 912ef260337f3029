//! The OpenAI wire format: requests, answers, stream chunks and error bodies.
//!
//! Requests are parsed from raw JSON here (not by the HTTP framework) so that every bad
//! request gets an OpenAI-style error body — `{"error": {"message", "type", "param", "code"}}`
//! — with the status a client library maps to the right exception.

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use serde_json::{json, Value};

use super::text::ChatMessage;

/// Most stop strings per request (OpenAI's limit).
pub const MAX_STOPS: usize = 4;
/// `max_tokens` when a completion request names none (OpenAI's default for completions).
pub const DEFAULT_COMPLETION_TOKENS: usize = 16;

/// An error answered as an OpenAI error body.
#[derive(Debug, Clone)]
pub struct ApiError {
    /// HTTP status.
    pub status: StatusCode,
    /// Human-readable message: what was wrong and what to do.
    pub message: String,
    /// OpenAI error type (`invalid_request_error`, `not_found_error`, …).
    pub kind: &'static str,
    /// The request field at fault, if one.
    pub param: Option<String>,
    /// Machine-readable code (`model_not_found`, `context_length_exceeded`, …).
    pub code: Option<&'static str>,
}

impl ApiError {
    /// 400 `invalid_request_error` about `param`.
    pub fn invalid(param: &str, message: impl Into<String>) -> ApiError {
        ApiError {
            status: StatusCode::BAD_REQUEST,
            message: message.into(),
            kind: "invalid_request_error",
            param: (!param.is_empty()).then(|| param.to_string()),
            code: None,
        }
    }

    /// With a machine-readable code.
    pub fn code(mut self, code: &'static str) -> ApiError {
        self.code = Some(code);
        self
    }

    /// The JSON body.
    pub fn body(&self) -> Value {
        json!({"error": {
            "message": self.message,
            "type": self.kind,
            "param": self.param,
            "code": self.code,
        }})
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        (self.status, axum::Json(self.body())).into_response()
    }
}

/// Sampling and length fields shared by both endpoints, checked.
#[derive(Debug, Clone, PartialEq)]
pub struct GenParams {
    /// Most tokens to generate; `None`: up to the context.
    pub max_tokens: Option<usize>,
    /// Softmax temperature (0: greedy).
    pub temperature: f32,
    /// Nucleus mass.
    pub top_p: f32,
    /// Sampling seed.
    pub seed: Option<u64>,
    /// Stop strings.
    pub stop: Vec<String>,
    /// Stream the answer as server-sent events.
    pub stream: bool,
    /// Send a last chunk with `usage` when streaming.
    pub include_usage: bool,
}

/// What a request asks for, checked.
#[derive(Debug, Clone, PartialEq)]
pub enum Prompt {
    /// `/v1/completions`: raw text.
    Text(String),
    /// `/v1/chat/completions`: messages.
    Chat(Vec<ChatMessage>),
}

/// A checked request of either endpoint.
#[derive(Debug, Clone, PartialEq)]
pub struct GenRequestBody {
    /// The `model` field.
    pub model: String,
    /// Prompt or messages.
    pub prompt: Prompt,
    /// Generation fields.
    pub params: GenParams,
}

#[derive(Deserialize)]
struct StreamOptions {
    #[serde(default)]
    include_usage: bool,
}

/// The fields both endpoints share, as sent.
#[derive(Deserialize)]
struct RawCommon {
    model: Option<String>,
    max_tokens: Option<Value>,
    max_completion_tokens: Option<Value>,
    temperature: Option<Value>,
    top_p: Option<Value>,
    seed: Option<Value>,
    stop: Option<Value>,
    n: Option<Value>,
    stream: Option<Value>,
    stream_options: Option<StreamOptions>,
    // Fields a client may send that this server does not implement and refuses rather than
    // ignore: answering without them would silently differ from what was asked.
    logprobs: Option<Value>,
    echo: Option<Value>,
    best_of: Option<Value>,
    tools: Option<Value>,
}

fn parse_json(body: &[u8]) -> Result<Value, ApiError> {
    let v: Value = serde_json::from_slice(body).map_err(|e| {
        ApiError::invalid(
            "",
            format!("the request body is not valid JSON ({e}); send a JSON object"),
        )
    })?;
    if !v.is_object() {
        return Err(ApiError::invalid(
            "",
            "the request body must be a JSON object",
        ));
    }
    Ok(v)
}

fn uint(param: &str, v: &Value) -> Result<u64, ApiError> {
    v.as_u64()
        .ok_or_else(|| ApiError::invalid(param, format!("`{param}` must be a whole number ≥ 0")))
}

fn num(param: &str, v: &Value, lo: f64, hi: f64) -> Result<f32, ApiError> {
    let x = v
        .as_f64()
        .ok_or_else(|| ApiError::invalid(param, format!("`{param}` must be a number")))?;
    if !(lo..=hi).contains(&x) {
        return Err(ApiError::invalid(
            param,
            format!("`{param}` is {x}; it must be between {lo} and {hi}"),
        ));
    }
    Ok(x as f32)
}

fn common(raw: &RawCommon) -> Result<(String, GenParams), ApiError> {
    let model = raw.model.clone().filter(|m| !m.is_empty()).ok_or_else(|| {
        ApiError::invalid("model", "`model` is required; GET /v1/models lists it")
    })?;
    if let Some(n) = &raw.n {
        if uint("n", n)? != 1 {
            return Err(ApiError::invalid("n", "only `n = 1` is supported"));
        }
    }
    for (name, v) in [
        ("logprobs", &raw.logprobs),
        ("echo", &raw.echo),
        ("best_of", &raw.best_of),
        ("tools", &raw.tools),
    ] {
        let unset = match v {
            None | Some(Value::Null) | Some(Value::Bool(false)) => true,
            Some(Value::Number(x)) if name == "best_of" => x.as_u64() == Some(1),
            _ => false,
        };
        if !unset {
            return Err(ApiError::invalid(
                name,
                format!("`{name}` is not supported by this server; leave it out"),
            ));
        }
    }
    let max_tokens = match raw
        .max_completion_tokens
        .as_ref()
        .or(raw.max_tokens.as_ref())
    {
        None | Some(Value::Null) => None,
        Some(v) => {
            let n = uint("max_tokens", v)?;
            if n == 0 {
                return Err(ApiError::invalid("max_tokens", "`max_tokens` must be ≥ 1"));
            }
            Some(usize::try_from(n).unwrap_or(usize::MAX))
        }
    };
    let temperature = match &raw.temperature {
        None | Some(Value::Null) => 1.0,
        Some(v) => num("temperature", v, 0.0, 2.0)?,
    };
    let top_p = match &raw.top_p {
        None | Some(Value::Null) => 1.0,
        Some(v) => num("top_p", v, 0.0, 1.0)?,
    };
    if top_p == 0.0 {
        return Err(ApiError::invalid("top_p", "`top_p` must be > 0"));
    }
    let seed = match &raw.seed {
        None | Some(Value::Null) => None,
        Some(v) => Some(
            v.as_u64()
                .or_else(|| v.as_i64().map(|x| x as u64))
                .ok_or_else(|| ApiError::invalid("seed", "`seed` must be an integer"))?,
        ),
    };
    let stop = match &raw.stop {
        None | Some(Value::Null) => vec![],
        Some(Value::String(s)) => vec![s.clone()],
        Some(Value::Array(a)) => a
            .iter()
            .map(|x| {
                x.as_str().map(str::to_string).ok_or_else(|| {
                    ApiError::invalid("stop", "`stop` must be a string or a list of strings")
                })
            })
            .collect::<Result<Vec<_>, _>>()?,
        Some(_) => {
            return Err(ApiError::invalid(
                "stop",
                "`stop` must be a string or a list of strings",
            ))
        }
    };
    if stop.len() > MAX_STOPS {
        return Err(ApiError::invalid(
            "stop",
            format!("at most {MAX_STOPS} stop strings"),
        ));
    }
    let stream = match &raw.stream {
        None | Some(Value::Null) => false,
        Some(Value::Bool(b)) => *b,
        Some(_) => {
            return Err(ApiError::invalid(
                "stream",
                "`stream` must be true or false",
            ))
        }
    };
    Ok((
        model,
        GenParams {
            max_tokens,
            temperature,
            top_p,
            seed,
            stop,
            stream,
            include_usage: raw.stream_options.as_ref().is_some_and(|o| o.include_usage),
        },
    ))
}

fn raw_common(v: &Value) -> Result<RawCommon, ApiError> {
    serde_json::from_value(v.clone()).map_err(|e| ApiError::invalid("", e.to_string()))
}

/// Parses and checks a `/v1/completions` body.
pub fn parse_completion(body: &[u8]) -> Result<GenRequestBody, ApiError> {
    let v = parse_json(body)?;
    let (model, mut params) = common(&raw_common(&v)?)?;
    let prompt = match v.get("prompt") {
        Some(Value::String(s)) => s.clone(),
        Some(Value::Array(a)) if a.len() == 1 && a[0].is_string() => {
            a[0].as_str().unwrap_or_default().to_string()
        }
        Some(Value::Array(_)) => {
            return Err(ApiError::invalid(
                "prompt",
                "`prompt` must be one string (batches of prompts are not supported; send one \
                 request each)",
            ))
        }
        None | Some(Value::Null) => {
            return Err(ApiError::invalid("prompt", "`prompt` is required"))
        }
        Some(_) => return Err(ApiError::invalid("prompt", "`prompt` must be a string")),
    };
    if prompt.is_empty() {
        return Err(ApiError::invalid("prompt", "`prompt` is empty"));
    }
    params.max_tokens = Some(params.max_tokens.unwrap_or(DEFAULT_COMPLETION_TOKENS));
    Ok(GenRequestBody {
        model,
        prompt: Prompt::Text(prompt),
        params,
    })
}

/// Parses and checks a `/v1/chat/completions` body.
pub fn parse_chat(body: &[u8]) -> Result<GenRequestBody, ApiError> {
    let v = parse_json(body)?;
    let (model, params) = common(&raw_common(&v)?)?;
    let msgs = v
        .get("messages")
        .and_then(Value::as_array)
        .ok_or_else(|| ApiError::invalid("messages", "`messages` must be a list of messages"))?;
    if msgs.is_empty() {
        return Err(ApiError::invalid("messages", "`messages` is empty"));
    }
    let mut out = Vec::with_capacity(msgs.len());
    for (i, m) in msgs.iter().enumerate() {
        let param = format!("messages[{i}]");
        let bad = |why: &str| ApiError::invalid(&param, format!("{param}: {why}"));
        let role = m
            .get("role")
            .and_then(Value::as_str)
            .filter(|r| !r.is_empty() && r.len() <= 32)
            .ok_or_else(|| bad("`role` must be a string such as \"user\""))?;
        let content = match m.get("content") {
            Some(Value::String(s)) => s.clone(),
            // Content parts: only text parts can be served by a text model.
            Some(Value::Array(parts)) => {
                let mut s = String::new();
                for p in parts {
                    match (
                        p.get("type").and_then(Value::as_str),
                        p.get("text").and_then(Value::as_str),
                    ) {
                        (Some("text"), Some(t)) => s.push_str(t),
                        _ => return Err(bad("only text content parts are supported")),
                    }
                }
                s
            }
            None | Some(Value::Null) => String::new(),
            Some(_) => return Err(bad("`content` must be a string or a list of text parts")),
        };
        out.push(ChatMessage {
            role: role.to_string(),
            content,
        });
    }
    Ok(GenRequestBody {
        model,
        prompt: Prompt::Chat(out),
        params,
    })
}

/// Why generation ended, as OpenAI names it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Finish {
    /// End of text or a stop string.
    Stop,
    /// `max_tokens` or the context ran out.
    Length,
}

impl Finish {
    /// `"stop"` or `"length"`.
    pub fn as_str(self) -> &'static str {
        match self {
            Finish::Stop => "stop",
            Finish::Length => "length",
        }
    }
}

/// Token counts of one request.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Usage {
    /// Prompt tokens.
    pub prompt: usize,
    /// Generated tokens.
    pub completion: usize,
}

impl Usage {
    /// The `usage` object.
    pub fn json(self) -> Value {
        json!({
            "prompt_tokens": self.prompt,
            "completion_tokens": self.completion,
            "total_tokens": self.prompt + self.completion,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_bad_request_is_refused_with_the_field_and_a_reason() {
        for (body, param, why) in [
            ("{", None, "not valid JSON"),
            ("[1]", None, "JSON object"),
            (r#"{"prompt":"x"}"#, Some("model"), "`model` is required"),
            (r#"{"model":"m"}"#, Some("prompt"), "`prompt` is required"),
            (r#"{"model":"m","prompt":""}"#, Some("prompt"), "empty"),
            (
                r#"{"model":"m","prompt":["a","b"]}"#,
                Some("prompt"),
                "one string",
            ),
            (
                r#"{"model":"m","prompt":7}"#,
                Some("prompt"),
                "must be a string",
            ),
            (r#"{"model":"m","prompt":"x","n":2}"#, Some("n"), "n = 1"),
            (
                r#"{"model":"m","prompt":"x","max_tokens":0}"#,
                Some("max_tokens"),
                "≥ 1",
            ),
            (
                r#"{"model":"m","prompt":"x","max_tokens":-3}"#,
                Some("max_tokens"),
                "whole number",
            ),
            (
                r#"{"model":"m","prompt":"x","temperature":3}"#,
                Some("temperature"),
                "between 0 and 2",
            ),
            (
                r#"{"model":"m","prompt":"x","top_p":0}"#,
                Some("top_p"),
                "> 0",
            ),
            (
                r#"{"model":"m","prompt":"x","stop":[1]}"#,
                Some("stop"),
                "list of strings",
            ),
            (
                r#"{"model":"m","prompt":"x","stop":["a","b","c","d","e"]}"#,
                Some("stop"),
                "at most 4",
            ),
            (
                r#"{"model":"m","prompt":"x","stream":"yes"}"#,
                Some("stream"),
                "true or false",
            ),
            (
                r#"{"model":"m","prompt":"x","logprobs":2}"#,
                Some("logprobs"),
                "not supported",
            ),
            (
                r#"{"model":"m","prompt":"x","echo":true}"#,
                Some("echo"),
                "not supported",
            ),
        ] {
            let e = parse_completion(body.as_bytes()).unwrap_err();
            assert_eq!(e.status, StatusCode::BAD_REQUEST, "{body}");
            assert_eq!(e.param.as_deref(), param, "{body}: {}", e.message);
            assert!(e.message.contains(why), "{body}: {}", e.message);
            assert_eq!(e.body()["error"]["type"], "invalid_request_error");
        }
        for (body, why) in [
            (r#"{"model":"m"}"#, "list of messages"),
            (r#"{"model":"m","messages":[]}"#, "empty"),
            (r#"{"model":"m","messages":[{"content":"hi"}]}"#, "`role`"),
            (
                r#"{"model":"m","messages":[{"role":"user","content":[{"type":"image_url"}]}]}"#,
                "only text content parts",
            ),
            (
                r#"{"model":"m","messages":[{"role":"user","content":5}]}"#,
                "`content`",
            ),
            (
                r#"{"model":"m","messages":[{"role":"user","content":"x"}],"tools":[{}]}"#,
                "not supported",
            ),
        ] {
            let e = parse_chat(body.as_bytes()).unwrap_err();
            assert!(e.message.contains(why), "{body}: {}", e.message);
        }
    }

    #[test]
    fn a_full_request_is_read_with_openai_defaults() {
        let r = parse_completion(br#"{"model":"m","prompt":["In the"]}"#).unwrap();
        assert_eq!(r.prompt, Prompt::Text("In the".into()));
        assert_eq!(r.params.max_tokens, Some(DEFAULT_COMPLETION_TOKENS));
        assert_eq!(r.params.temperature, 1.0);
        assert!(!r.params.stream);
        let c = parse_chat(
            br#"{"model":"m","messages":[{"role":"system","content":"Be brief."},
                {"role":"user","content":[{"type":"text","text":"Hi"}]}],
                "max_completion_tokens":5,"temperature":0,"seed":7,"stop":"\n",
                "stream":true,"stream_options":{"include_usage":true},"n":1,"logprobs":false}"#,
        )
        .unwrap();
        assert_eq!(c.params.max_tokens, Some(5));
        assert_eq!(c.params.seed, Some(7));
        assert_eq!(c.params.stop, vec!["\n".to_string()]);
        assert!(c.params.stream && c.params.include_usage);
        let Prompt::Chat(m) = c.prompt else { panic!() };
        assert_eq!(m[1].content, "Hi");
    }
}
