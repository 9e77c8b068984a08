"""The serving engine and pool: concurrent prompts batched (with the answers they get alone), the queue bound
for plain and streamed requests, adapters over one shared base, the signature check and the CLI's errors."""

from __future__ import annotations

import asyncio
import json
import socket
import subprocess
import sys

import pytest

from rcatune.config.model import TinyModelConfig
from rcatune.inference import GenerationSettings, Generator, PromptSignature, describe_folder, load_base, load_folder
from rcatune.runtime import Runtime
from tests.conftest import ROOT

pytestmark = pytest.mark.slow
TINY = TinyModelConfig(hidden_size=64, intermediate_size=128, num_layers=2, num_heads=4, vocab_size=1024)
CPU = Runtime(device="cpu", progress=False)
PROMPTS = [[{"role": "user", "content": text}] for text in
           ("checkout fails", "cart is slow", "ads are gone", "payment errors at 30%", "emails stopped")]


@pytest.fixture(scope="module")
def adapters(tmp_path_factory):
    """Two LoRA adapters (different random weights) over the tiny base, saved as training saves them."""
    import torch
    from peft import LoraConfig, get_peft_model

    folders = []
    for seed in (1, 2):
        base = load_base(TINY, CPU)
        torch.manual_seed(seed)
        model = get_peft_model(base.model, LoraConfig(r=4, lora_alpha=8, target_modules=["q_proj", "v_proj"]))
        with torch.no_grad():
            for name, weight in model.named_parameters():
                if "lora_B" in name:
                    weight.normal_(0, 0.5)
        folder = tmp_path_factory.mktemp(f"adapter{seed}")
        model.save_pretrained(folder)
        base.tokenizer.save_pretrained(folder)
        PromptSignature.of(base.tokenizer, "You diagnose.").save(folder)
        describe_folder(folder, TINY, is_adapter=True, method="lora")
        folders.append(folder)
    return folders


SHORT = GenerationSettings(max_new_tokens=12)


def _texts(engine_or_generator, name=None, prompts=PROMPTS, settings=SHORT):
    if isinstance(engine_or_generator, Generator):
        return [c.text for c in engine_or_generator.complete(prompts, settings)]

    async def run():
        return await asyncio.gather(*[engine_or_generator.complete(name, [p], settings) for p in prompts])

    return [c[0].text for c in asyncio.run(run())]


def test_adapters_share_one_base_and_answer_as_each_would_alone(adapters):
    from rcatune.serving.engine import Engine
    from rcatune.serving.pool import ModelSource, load_pool

    pool = load_pool([ModelSource("a", adapters[0]), ModelSource("b", adapters[1])], CPU)
    assert [m.name for m in pool] == ["a", "b", TINY.name_or_path]
    assert pool[0].parent == pool[1].parent == TINY.name_or_path and pool[2].parent is None
    assert pool[0].loaded.model is pool[1].loaded.model is pool[2].loaded.model  # one base in memory
    engine = Engine(pool, max_batch=8)
    try:
        served = {m.name: _texts(engine, m.name) for m in pool}
    finally:
        engine.close()
    alone = {"a": _texts(Generator(load_folder(adapters[0], CPU))),
             "b": _texts(Generator(load_folder(adapters[1], CPU))),
             TINY.name_or_path: _texts(Generator(load_base(TINY, CPU)))}
    assert served == alone
    assert served["a"] != served["b"] != served[TINY.name_or_path]


def test_concurrent_prompts_are_batched_and_get_the_answers_they_get_alone():
    from rcatune.serving.engine import Engine, ServedModel

    loaded = load_base(TINY, CPU)
    alone = [_texts(Generator(loaded), prompts=[p])[0] for p in PROMPTS]
    engine = Engine([ServedModel("tiny", loaded)], max_batch=8)
    try:
        together = _texts(engine, "tiny")
        seeded = _texts(engine, "tiny", prompts=[PROMPTS[0]] * len(PROMPTS),
                        settings=GenerationSettings(max_new_tokens=12, temperature=0.8, seed=5))
    finally:
        engine.close()
    assert together == alone
    assert max(engine.batches[:-len(PROMPTS)]) > 1  # the ones that waited together ran as one batch
    assert engine.batches[-len(PROMPTS):] == [1] * len(PROMPTS)  # seeded requests run alone
    assert len(set(seeded)) == 1  # the same seed, the same sample


def test_the_queue_bound_refuses_plain_and_streamed_requests_beyond_it():
    from rcatune.serving.engine import Busy, Engine, ServedModel

    engine = Engine([ServedModel("tiny", load_base(TINY, CPU))], max_queue=2, max_batch=1)
    settings = GenerationSettings(max_new_tokens=64)

    async def flood():
        async def stream():
            return [item async for item in engine.stream("tiny", PROMPTS[0], settings)]

        calls = [engine.complete("tiny", [p], settings) for p in PROMPTS] + [stream() for _ in range(3)]
        return await asyncio.gather(*calls, return_exceptions=True)

    try:
        results = asyncio.run(flood())
    finally:
        engine.close()
    refused = [r for r in results if isinstance(r, Busy)]
    assert refused and len(refused) < len(results)
    assert any(isinstance(r, Busy) for r in results[len(PROMPTS):])  # streams wait in the same queue


def test_a_stream_whose_reader_leaves_stops_generating_and_frees_the_worker():
    from rcatune.serving.engine import Engine, ServedModel

    engine = Engine([ServedModel("tiny", load_base(TINY, CPU))])
    long = GenerationSettings(max_new_tokens=600)  # random weights: it would run to the end

    async def leave_after_the_first_delta():
        deltas = engine.stream("tiny", PROMPTS[0], long)
        first = await deltas.__anext__()
        await deltas.aclose()  # what a client disconnect does to the server's stream
        after = await engine.complete("tiny", [PROMPTS[1]], GenerationSettings(max_new_tokens=4))
        return first, after

    try:
        first, after = asyncio.run(leave_after_the_first_delta())
        stopped_at = engine.generators["tiny"].last.completion_tokens
    finally:
        engine.close()
    assert first and after[0].completion_tokens <= 4
    assert engine.abandoned == 1 and stopped_at < 300, stopped_at  # not the 600 it was asked for


def _serve(*args, timeout=120):
    return subprocess.run([sys.executable, "-m", "rcatune.serving", *args], cwd=ROOT, capture_output=True, text=True,
                          timeout=timeout)


def test_a_template_that_differs_from_training_refuses_to_serve_naming_it(adapters, tmp_path):
    import shutil

    changed = tmp_path / "changed"
    shutil.copytree(adapters[0], changed)
    config = json.loads((changed / "tokenizer_config.json").read_text())
    template = (changed / "chat_template.jinja")
    if template.exists():
        template.write_text(template.read_text().replace("<|im_start|>", "<|im_start|> "))
    else:
        config["chat_template"] = config["chat_template"].replace("<|im_start|>", "<|im_start|> ")
        (changed / "tokenizer_config.json").write_text(json.dumps(config))
    result = _serve("--model", f"x={changed}", "--port", "0")
    assert result.returncode == 2
    assert "would not render what training saw" in result.stderr and "chat template differs" in result.stderr
    assert "Traceback" not in result.stderr


def test_cli_errors_say_what_to_do():
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        taken = _serve("--model", f"x={ROOT}", "--port", str(port))
    assert taken.returncode == 2 and f"port {port} on 127.0.0.1 is in use" in taken.stderr
    empty = _serve("--model", f"x={ROOT}", "--port", "0")
    assert empty.returncode == 2 and "holds no model" in empty.stderr and "export/merged" in empty.stderr
    nothing = _serve()
    assert nothing.returncode == 2 and "--version" in nothing.stderr
    help_text = _serve("--help").stdout
    assert "--version N|STAGE" in help_text and "--model NAME=DIR" in help_text and "--max-queue" in help_text


@pytest.mark.timeout(120)
def test_a_stream_whose_generation_fails_ends_with_the_error_and_the_worker_goes_on():
    """Settings the API refuses, sent to the engine directly: transformers raises in the generate thread. The
    stream ends with that error (it used to wait forever, and every later request behind it)."""
    from rcatune.serving.engine import Engine, ServedModel

    engine = Engine([ServedModel("tiny", load_base(TINY, CPU))])
    broken = GenerationSettings(max_new_tokens=16, temperature=1.0, top_p=-1.0, max_seconds=30)

    async def fail_then_answer():
        with pytest.raises(ValueError, match="top_p"):
            async for _ in engine.stream("tiny", PROMPTS[0], broken):
                pass
        return await asyncio.wait_for(engine.complete("tiny", [PROMPTS[1]], SHORT), 30)

    try:
        [after] = asyncio.run(fail_then_answer())
    finally:
        engine.close()
    assert after.completion_tokens > 0 and engine.alive and engine.stuck_for(5) is None


def test_a_plain_request_whose_caller_leaves_stops_at_its_next_token():
    from rcatune.serving.engine import Engine, ServedModel

    engine = Engine([ServedModel("tiny", load_base(TINY, CPU))])
    long = GenerationSettings(max_new_tokens=600, temperature=0.7, seed=3)  # random weights: it runs to the end

    async def leave_early():
        work = asyncio.ensure_future(engine.complete("tiny", [PROMPTS[0]], long))
        await asyncio.sleep(0.2)
        work.cancel()  # what the app does when the client disconnects
        await asyncio.gather(work, return_exceptions=True)
        started = asyncio.get_running_loop().time()
        await engine.complete("tiny", [PROMPTS[1]], GenerationSettings(max_new_tokens=4))
        return asyncio.get_running_loop().time() - started

    try:
        waited = asyncio.run(leave_early())
    finally:
        engine.close()
    assert engine.abandoned == 1
    alone = max(engine.batches)  # one row each; the waits say more: the next request did not sit behind 600 tokens
    assert alone == 1 and waited < 2.0, waited


def test_a_generation_past_its_time_bound_ends_as_length():
    loaded = load_base(TINY, CPU)
    [completion] = Generator(loaded).complete([PROMPTS[0]], GenerationSettings(max_new_tokens=1000, max_seconds=0.05))
    assert completion.finish_reason == "length" and completion.completion_tokens < 1000


def test_a_prompt_beyond_the_context_is_refused_and_max_tokens_is_cut_to_what_is_left():
    from rcatune.inference import ContextTooLong

    generator = Generator(load_base(TINY, CPU))
    words = " ".join(f"w{i}" for i in range(TINY.context_length))
    with pytest.raises(ContextTooLong, match=f"context is {TINY.context_length} tokens"):
        generator.complete([[{"role": "user", "content": words}]], SHORT)
    near = " ".join(f"w{i}" for i in range(TINY.context_length // 10))
    prompt = generator.prompt_tokens([{"role": "user", "content": near}])
    [completion] = generator.complete([[{"role": "user", "content": near}]],
                                      GenerationSettings(max_new_tokens=4 * TINY.context_length))
    assert prompt + completion.completion_tokens <= TINY.context_length
    assert generator.fewest_tokens(words) <= generator.prompt_tokens([{"role": "user", "content": words}])


def test_our_greedy_loop_gives_the_tokens_generate_gives(adapters):
    """Greedy completions without stop sequences decode in rcatune's own loop over the model's forward: the same
    tokens as transformers' generate(), for one row and for a left-padded batch whose rows end at different
    steps, on the base model and through an adapter; sampling and stop sequences still go through generate()."""
    prompts = [*PROMPTS, [{"role": "user", "content": "the checkout service returns 500 for every order " * 6}]]
    settings = GenerationSettings(max_new_tokens=24)
    for loaded in (load_base(TINY, CPU), load_folder(adapters[0], CPU)):
        generator = Generator(loaded)
        assert generator.own_loop

        def both(rows, generator=generator):
            generator.own_loop = False
            theirs = generator.complete(rows, settings)
            generator.own_loop = True
            ours = generator.complete(rows, settings)
            assert [c.token_ids for c in ours] == [c.token_ids for c in theirs]
            assert [(c.text, c.finish_reason) for c in ours] == [(c.text, c.finish_reason) for c in theirs]
            return ours

        assert both(prompts[:1])[0].completion_tokens == 24
        first = both(prompts)
        # an end-of-turn token that some rows reach early and others later or never
        tokenizer, eos = loaded.tokenizer, loaded.tokenizer.eos_token
        row = max(first, key=lambda c: len(set(c.token_ids))).token_ids
        end = row[len(row) // 2]
        tokenizer.eos_token = tokenizer.convert_ids_to_tokens(end)
        try:
            ended = both(prompts)
        finally:
            tokenizer.eos_token = eos
        lengths = [c.token_ids.index(end) + 1 if end in c.token_ids else 24 for c in first]
        assert [c.completion_tokens for c in ended] == lengths and any(c.finish_reason == "stop" for c in ended)
