"""The soak of bench/soak.py (harness/soak.py), shortened for CI: 20 consecutive prompts through one real server, with the
same checks (every prompt succeeds and its picture is readable at the right size, resident memory after
warm-up grows < 5 %, no temporary file left behind). The full run's figures: bench/results/soak.md."""
from conftest import COMFYUI
from harness import soak


def test_20_prompts_through_one_server(tmp_path, checkpoint_path):
    with soak.start_server(checkpoint_path, tmp_path, COMFYUI) as server:
        # warm-up: every sampler (9) once, and so every size (7)
        figures = soak.run_soak(server, checkpoint_path.name, prompts=20, max_seconds=900,
                                warmup=len(soak.SAMPLERS))
    assert figures["problems"] == [], soak.table(figures)
    assert figures["prompts"] == figures["outputs"] == 20
    assert figures["growth"] < soak.GROWTH_LIMIT and figures["left_behind"] == []
