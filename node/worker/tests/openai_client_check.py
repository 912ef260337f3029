"""Drives `magnet-worker serve` with the official `openai` Python package.

Called by node/worker/tests/serve_openai.rs with the server's base URL, the model id, a
prompt and the greedy continuation `magnet-worker infer` produced for it. Exits
non-zero with a message on the first failed check; prints one JSON summary line on success.
"""

import argparse
import concurrent.futures as cf
import json
import sys

import openai


def check(cond, msg):
    if not cond:
        print(f"FAILED: {msg}", file=sys.stderr)
        sys.exit(1)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--base-url", required=True)
    ap.add_argument("--model", required=True)
    ap.add_argument("--prompt", required=True)
    ap.add_argument("--max-tokens", type=int, required=True)
    ap.add_argument("--greedy", required=True, help="infer's greedy continuation")
    ap.add_argument("--clients", type=int, default=16)
    a = ap.parse_args()
    client = openai.OpenAI(base_url=a.base_url, api_key="unused", max_retries=0, timeout=600)
    out = {}

    models = client.models.list()
    check([m.id for m in models.data] == [a.model], f"models: {models}")

    # Completions, not streamed: the same greedy tokens as `bitnet infer`, and usage counts.
    c = client.completions.create(
        model=a.model, prompt=a.prompt, max_tokens=a.max_tokens, temperature=0, seed=1
    )
    check(c.object == "text_completion", f"object {c.object}")
    text = c.choices[0].text
    check(text == a.greedy, f"completion {text!r} != infer's {a.greedy!r}")
    check(c.usage.prompt_tokens > 0, f"usage {c.usage}")
    check(
        c.usage.total_tokens == c.usage.prompt_tokens + c.usage.completion_tokens,
        f"usage {c.usage}",
    )
    check(1 <= c.usage.completion_tokens <= a.max_tokens, f"usage {c.usage}")
    check(c.choices[0].finish_reason in ("stop", "length"), c.choices[0].finish_reason)
    out["completion_tokens"] = c.usage.completion_tokens

    # Completions, streamed: the same text in pieces, ending with a finish reason.
    pieces = []
    finish = None
    for ch in client.completions.create(
        model=a.model, prompt=a.prompt, max_tokens=a.max_tokens, temperature=0, stream=True
    ):
        pieces.append(ch.choices[0].text)
        finish = ch.choices[0].finish_reason or finish
    check("".join(pieces) == a.greedy, f"streamed {''.join(pieces)!r} != {a.greedy!r}")
    check(finish == c.choices[0].finish_reason, f"stream finish {finish}")

    # Chat, not streamed and streamed (with the usage chunk).
    msgs = [
        {"role": "system", "content": "You answer from the scriptures."},
        {"role": "user", "content": "Who begat Enos?"},
    ]
    r = client.chat.completions.create(
        model=a.model, messages=msgs, max_tokens=a.max_tokens, temperature=0
    )
    check(r.object == "chat.completion", r.object)
    check(r.choices[0].message.role == "assistant", r.choices[0].message)
    chat_text = r.choices[0].message.content
    check(r.usage.completion_tokens >= 1, f"chat usage {r.usage}")
    streamed = []
    usage = None
    roles = []
    for ch in client.chat.completions.create(
        model=a.model,
        messages=msgs,
        max_tokens=a.max_tokens,
        temperature=0,
        stream=True,
        stream_options={"include_usage": True},
    ):
        if ch.usage is not None:
            usage = ch.usage
        for choice in ch.choices:
            if choice.delta.role:
                roles.append(choice.delta.role)
            if choice.delta.content:
                streamed.append(choice.delta.content)
    check("".join(streamed) == chat_text, f"chat stream {''.join(streamed)!r} != {chat_text!r}")
    check(roles == ["assistant"], f"roles {roles}")
    check(usage is not None and usage.completion_tokens == r.usage.completion_tokens, f"{usage}")
    out["chat"] = chat_text

    # Errors: an unknown model is a 404 NotFoundError, a bad field a 400 BadRequestError.
    try:
        client.completions.create(model="no-such-model", prompt="x", max_tokens=1)
        check(False, "an unknown model was served")
    except openai.NotFoundError as e:
        check(e.body and e.body.get("code") == "model_not_found", f"body {e.body}")
    try:
        client.completions.create(model=a.model, prompt="x", max_tokens=1, n=3)
        check(False, "n=3 was served")
    except openai.BadRequestError as e:
        check(e.body and e.body.get("param") == "n", f"body {e.body}")
    try:
        client.completions.create(model=a.model, prompt="x " * 5000, max_tokens=4)
        check(False, "a prompt longer than the context was served")
    except openai.BadRequestError as e:
        check(e.body and e.body.get("code") == "context_length_exceeded", f"body {e.body}")

    # Concurrency: N streaming clients with different prompts at temperature 0 each get
    # exactly what they get alone.
    # Different prompts and lengths, so that a mixed-up answer shows.
    jobs = [(f"{a.prompt} {i}", max(1, a.max_tokens - i % 4)) for i in range(a.clients)]

    def alone(job):
        p, n = job
        return client.completions.create(
            model=a.model, prompt=p, max_tokens=n, temperature=0
        ).choices[0].text

    def streaming(job):
        p, n = job
        return "".join(
            ch.choices[0].text
            for ch in client.completions.create(
                model=a.model, prompt=p, max_tokens=n, temperature=0, stream=True
            )
        )

    single = [alone(j) for j in jobs]
    with cf.ThreadPoolExecutor(max_workers=a.clients) as ex:
        together = list(ex.map(streaming, jobs))
    for i, (s, t) in enumerate(zip(single, together)):
        check(s == t, f"client {i}: together {t!r} != alone {s!r}")
    out["concurrent_clients"] = a.clients
    print(json.dumps(out))


if __name__ == "__main__":
    main()
