"""The pack's canvas extension (js/sdedit.js) in the real frontend, on the frontend the pinned ComfyUI
requires and on the newest comfyui-frontend-package (with its Nodes 2.0 setting, Comfy.VueNodes.Enabled,
off and on), each served by a real `main.py --cpu`.

The workspace's input folder starts empty: the templates' pictures are there only because the pack offers
them when the server loads it. Its checkpoints folder holds the test checkpoint (linked also under every model
name the templates give, in the folders they give; diffusion models and VAEs: the small random Wan 2.1's) and header-valid SD3 and Flux checkpoints
(tests/header_checkpoints.py) for the step line.

The newest frontend is fetched from the package registry once (pip download, no dependencies) into
$SDEDIT_CACHE and served with --front-end-root; the host's own frontend is never replaced. Only the
frontend's stable surfaces are used: window.app, LiteGraph, registered commands, data-testid and roles.
Screenshots go to out/screenshots/ (test artefacts).
"""
import json
import os
import pathlib
import re
import subprocess
import sys
import time
import zipfile

import pytest
from conftest import COMFYUI, REPO
from header_checkpoints import header_checkpoint
from harness import checkpoint, families

NEWEST_FRONTEND = "1.58.1"
CACHE = checkpoint.default_cache_dir()
TEST_CKPT = checkpoint.FILE_NAME
SCREENSHOTS = REPO / "out" / "screenshots"
CHROMIUM = pathlib.Path("/usr/bin/chromium")
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
                 "--disable-sync", "--disable-quic", "--no-first-run"]
RETURNING_USER = {"Comfy.TutorialCompleted": True, "Comfy.Canvas.NavigationMode": "legacy",
                  "Comfy.Canvas.LeftMouseClickBehavior": "panning", "Comfy.Canvas.MouseWheelScroll": "zoom"}
APP_READY_S, STEP_S = 180, 60
EXAMPLES = sorted(p.stem for p in (REPO / "example_workflows").glob("*.json"))
FAMILIES = {"SD3": "sd3-header-only.safetensors", "Flux": "flux-header-only.safetensors"}
NODE_IDS = {"SDEditEncode": "SDEdit 1 · Encode", "SDEditAddNoise": "SDEdit 2 · Add Noise",
            "SDEditSampler": "SDEdit 3 · Denoise", "SDEditDecode": "SDEdit 4 · Decode"}


def newest_frontend_root() -> pathlib.Path:
    """The static folder of comfyui-frontend-package NEWEST_FRONTEND, downloaded once beside the test checkpoint."""
    folder = CACHE / f"frontend-{NEWEST_FRONTEND}"
    static = folder / "comfyui_frontend_package" / "static"
    if not (static / "index.html").is_file():
        folder.mkdir(parents=True, exist_ok=True)
        result = subprocess.run([sys.executable, "-m", "pip", "download", "--quiet", "--no-deps", "--dest", str(folder),
                                 f"comfyui-frontend-package=={NEWEST_FRONTEND}"], capture_output=True, text=True)
        wheels = list(folder.glob("comfyui_frontend_package-*.whl"))
        assert result.returncode == 0 and wheels, (
            f"could not download comfyui-frontend-package=={NEWEST_FRONTEND} from the package index:\n{result.stderr}")
        with zipfile.ZipFile(wheels[0]) as wheel:
            wheel.extractall(folder)
    return static


@pytest.fixture(scope="module", params=["pinned", "newest", "newest-vue"])
def canvas(request, tmp_path_factory, checkpoint_path):
    """(server, page, problems, frontend): a real server and a browser page on one frontend, the app loaded;
    "newest-vue" is the newest frontend with Modern Node Design (Nodes 2.0) on, "newest" with it off."""
    if not (CHROMIUM.is_file() and os.access(CHROMIUM, os.X_OK)):
        pytest.fail(f"{CHROMIUM} is missing: apt-get install chromium (playwright's own browser is never "
                    "downloaded)", pytrace=False)
    from harness import ComfyServer, prepare_workspace
    from playwright.sync_api import sync_playwright

    extra = ["--preview-method", "latent2rgb"]
    if request.param.startswith("newest"):
        extra += ["--front-end-root", str(newest_frontend_root())]
    base = prepare_workspace(tmp_path_factory.mktemp(f"canvas-{request.param}"), checkpoint_path)
    for family, name in FAMILIES.items():
        header_checkpoint(base / "models" / "checkpoints" / name, family)
    # The model files the examples name, in their folders (only the checkpoints are run here): diffusion models and
    # VAEs are the small random Wan 2.1's, so the step line reads a real Wan header through UNETLoader.
    wan_unet, wan_vae = families.ensure_wan()
    for example in (REPO / "example_workflows").glob("*.json"):
        for node in json.loads(example.read_text())["nodes"]:
            for model in node.get("properties", {}).get("models", []):
                alias = base / "models" / model["directory"] / model["name"]
                alias.parent.mkdir(parents=True, exist_ok=True)
                target = {"diffusion_models": wan_unet, "vae": wan_vae}.get(model["directory"], checkpoint_path)
                if not alias.exists():
                    alias.symlink_to(target.resolve())
    assert not any((base / "input").iterdir())  # the pack offers the templates' pictures itself
    settings = dict(RETURNING_USER)
    if request.param.startswith("newest"):
        settings["Comfy.VueNodes.Enabled"] = request.param == "newest-vue"
    with ComfyServer(COMFYUI, base, extra_args=extra) as server, sync_playwright() as playwright:
        status, response = server.request("POST", "/api/settings", settings)
        assert status == 200, response
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        try:
            context = browser.new_context(viewport={"width": 1600, "height": 1000})
            context.set_default_timeout(STEP_S * 1000)
            context.route(re.compile(r"^(?!" + re.escape(server.url) + "/)"), lambda route: route.abort())
            page = context.new_page()
            problems = []  # (kind, text, where) of every console error and uncaught error
            page.on("pageerror", lambda error: problems.append(("pageerror", str(error), error.stack or "")))
            page.on("console", lambda m: problems.append(("console", m.text, m.location.get("url", "")))
                    if m.type == "error" else None)
            page.goto(server.url, timeout=APP_READY_S * 1000)
            page.wait_for_function("() => window.app?.extensionManager?.workflow?.activeWorkflow"
                                   " && app.graph?.nodes.length > 0", timeout=APP_READY_S * 1000, polling=250)
            if request.param.startswith("newest"):
                assert page.evaluate("() => app.extensionManager.setting.get('Comfy.VueNodes.Enabled')") is (
                    request.param == "newest-vue")
            yield server, page, problems, request.param
        finally:
            browser.close()


SAVED_IMAGE_SHOWN = """() => { const save = app.graph.nodes.find(n => n.type === 'SaveImage');
    return (save.imgs?.length ?? 0) > 0 || (app.nodeOutputs?.[String(save.id)]?.images?.length ?? 0) > 0; }"""


def new_graph(page):
    page.evaluate("() => app.graph.clear()")


def wait_for_line(page, node_id, expected):
    page.wait_for_function("([id, text]) => app.graph.getNodeById(id)?.widgets"
                           ".find(w => w.name === 'sdedit_step_line')?.element?.textContent === text",
                           arg=[node_id, expected], polling=100)


def pick_checkpoint(page, loader_id, name):
    """Picks `name` in a Load Checkpoint's ckpt_name combo (it must be one the combo offers); returns it."""
    offered = page.evaluate("""([id, name]) => { const w = app.graph.getNodeById(id).widgets
        .find(w => w.name === 'ckpt_name'); const values = w.options.values;
        const list = typeof values === 'function' ? values() : values;
        if (list.includes(name)) { w.value = name; w.callback?.(name); } return list; }""", [loader_id, name])
    assert name in offered, offered
    return name


LINE_SHOWN = """id => { const node = app.graph.getNodeById(id);
    const line = node.widgets.find(w => w.name === 'sdedit_step_line').element;
    const vue = document.querySelector(`[data-node-id="${id}"]`);
    return {shown: line.isConnected && line.getClientRects().length > 0, inVueNode: vue ? vue.contains(line) : null}; }"""


def line_of(plan):
    """The line the canvas must show for a /sdedit/step_plan answer (a strength was found upstream)."""
    if plan["run"] == 0:
        return f"runs 0 of {plan['of']} steps: strength 0 keeps the image"
    assumed = "assumed; " if plan["assumed"] else ""
    return (f"runs {plan['run']} of {plan['of']} steps from σ = {plan['sigma']:.3f} on {plan['schedule']}'s schedule "
            f"({assumed}strength {plan['strength']:.2f})")


def backend_line(server, strength, steps, mode, ckpt_name=None):
    """The line as the backend's own rule makes it (nodes/sdedit_math.py through nodes/routes.py), asked of
    the running server, whose checkpoints folder the route reads."""
    query = f"strength={strength}&steps={steps}&step_mode={mode}" + (f"&ckpt_name={ckpt_name}" if ckpt_name else "")
    return line_of(server.get(f"/sdedit/step_plan?{query}"))


def hosts_sigma(family, strength):
    """σ at `strength` on the schedule the host's own model class for `family` carries (comfy.model_base)."""
    import comfy.model_base
    import comfy.model_sampling
    import comfy.supported_models as sm
    from sdedit_img2img.nodes.sdedit_math import start_sigma
    if family == "SD1.5":
        return start_sigma(comfy.model_sampling.ModelSamplingDiscrete(), strength)
    config, model_type = {"SD3": (sm.SD3, comfy.model_base.ModelType.FLOW),
                          "Flux": (sm.Flux, comfy.model_base.ModelType.FLUX)}[family]
    return start_sigma(comfy.model_base.model_sampling(config({}), model_type), strength)


def test_the_pack_script_loads_and_registers_its_extension(canvas):
    server, page, problems, _ = canvas
    script_urls = server.get("/extensions")
    assert any(url.endswith("/sdedit.js") for url in script_urls), script_urls
    assert page.evaluate("() => app.extensions.some(e => e.name === 'SDEdit.Img2Img')")


def test_node_search_finds_and_adds_the_four_nodes(canvas):
    _, page, _, _ = canvas
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    x, y, width, height = page.evaluate("() => { const r = app.canvasEl.getBoundingClientRect();"
                                        " return [r.x, r.y, r.width, r.height]; }")
    added = {}
    for node_id, display in NODE_IDS.items():
        new_graph(page)  # an empty canvas each time: frontends place the new node in different spots
        search = page.locator("input[role=combobox]:visible").first
        for _ in range(10):  # a double click on the empty canvas opens the node search box
            page.mouse.dblclick(x + width * 0.4, y + height * 0.4)
            page.wait_for_timeout(1000)
            if search.is_visible():
                break
        else:
            page.screenshot(path=str(SCREENSHOTS / "search-box-missing.png"))
            pytest.fail("the node search box did not open on a double click on the canvas")
        page.keyboard.type(display, delay=20)
        page.wait_for_timeout(800)
        page.keyboard.press("Enter")
        page.wait_for_function("() => app.graph.nodes.length > 0", polling=100)
        added[node_id] = page.evaluate("() => app.graph.nodes.map(n => n.type)")
    assert added == {node_id: [node_id] for node_id in NODE_IDS}


def test_each_step_has_its_own_colour(canvas):
    _, page, _, frontend = canvas
    new_graph(page)
    colours = page.evaluate("""types => types.map(t => { const n = LiteGraph.createNode(t); app.graph.add(n);
                               return [n.color, n.bgcolor]; })""", list(NODE_IDS))
    assert all(c and b for c, b in colours) and len({tuple(c) for c in colours}) == 4, colours
    if frontend == "newest-vue":  # Nodes 2.0 draws each node as a DOM element: its background is the colour
        page.wait_for_function("n => document.querySelectorAll('[data-node-id]').length === n", arg=len(NODE_IDS))
        shown = page.evaluate("""() => app.graph.nodes.map(n => { const el = document.querySelector(
            `[data-node-id="${n.id}"] [data-testid="node-inner-wrapper"]`);
            return el && getComputedStyle(el).getPropertyValue('--node').trim().toLowerCase(); })""")
        assert shown == [b.lower() for _, b in colours], shown


def test_step_line_follows_the_strength_and_equals_the_backend(canvas):
    server, page, _, frontend = canvas
    new_graph(page)
    ids = page.evaluate("() => app.extensionManager.command.execute('SDEdit.InsertImg2ImgGraph')"
                        " .then(() => app.graph.nodes.map(n => [n.type, n.id]))")
    ids = dict(ids)
    noise, sampler = ids["SDEditAddNoise"], ids["SDEditSampler"]
    ckpt = pick_checkpoint(page, ids["CheckpointLoaderSimple"], TEST_CKPT)
    set_widget = "([id, name, value]) => { app.graph.getNodeById(id).widgets.find(w => w.name === name).value = value; }"
    cases = [(0.6, 20, "proportional"), (0.35, 20, "proportional"), (0.58, 25, "proportional"), (0.05, 10, "proportional"),
             (1.0, 30, "proportional"), (0.6, 20, "all"), (0.25, 8, "all"), (0.0, 20, "all"), (0.9, 7, "all")]
    for strength, steps, mode in cases:
        page.evaluate(set_widget, [noise, "strength", strength])
        page.evaluate(set_widget, [sampler, "steps", steps])
        page.evaluate(set_widget, [sampler, "step_mode", mode])
        from sdedit_img2img.nodes import routes  # the route's numbers are the backend's own rule
        route = server.get(f"/sdedit/step_plan?strength={strength}&steps={steps}&step_mode={mode}"
                           f"&ckpt_name={ckpt}")
        assert (route["run"], route["of"]) == (routes.answer(strength, steps, mode)["run"], routes.answer(strength, steps, mode)["of"])
        assert (route["schedule"], route["assumed"]) == ("SD1.5", False)
        assert route["sigma"] == pytest.approx(hosts_sigma("SD1.5", strength), abs=1e-9)
        wait_for_line(page, sampler, line_of(route))
    # Shown on the canvas (DOM widgets are hidden off screen: centre the node first), inside the node's
    # own element under Nodes 2.0.
    page.evaluate("id => { app.canvas.centerOnNode(app.graph.getNodeById(id)); app.graph.setDirtyCanvas(true, true); }",
                  sampler)
    page.wait_for_function(f"id => ({LINE_SHOWN})(id).shown", arg=sampler, polling=100)
    assert page.evaluate(LINE_SHOWN, sampler)["inVueNode"] is (True if frontend == "newest-vue" else None)
    # Through a reroute: the strength is still found; unwired, the line says it is unknown.
    page.evaluate(set_widget, [noise, "strength", 0.45])
    page.evaluate("""([noise, sampler]) => { const r = LiteGraph.createNode('Reroute'); app.graph.add(r);
                     const n = app.graph.getNodeById(noise), s = app.graph.getNodeById(sampler);
                     n.connect(0, r, 0); r.connect(0, s, s.findInputSlot('noisy_latent')); }""", [noise, sampler])
    wait_for_line(page, sampler, backend_line(server, 0.45, 7, "all", ckpt))
    page.evaluate("id => { const s = app.graph.getNodeById(id); s.disconnectInput(s.findInputSlot('noisy_latent')); }",
                  sampler)
    wait_for_line(page, sampler, "strength unknown: connect SDEdit 2 · Add Noise (7 steps, all)")
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SCREENSHOTS / f"step-line-{frontend}.png"))


def test_step_line_recovers_when_the_server_fails_to_answer_for_a_while(canvas):
    """A step plan the server did not answer (no server while it restarts: the request fails; or a 503) is asked
    again at the next poll, never kept: the line says it is waiting, then recovers, with no unhandled rejection."""
    server, page, problems, _ = canvas
    new_graph(page)
    ids = dict(page.evaluate("() => app.extensionManager.command.execute('SDEdit.InsertImg2ImgGraph')"
                             " .then(() => app.graph.nodes.map(n => [n.type, n.id]))"))
    noise, sampler = ids["SDEditAddNoise"], ids["SDEditSampler"]
    ckpt = pick_checkpoint(page, ids["CheckpointLoaderSimple"], TEST_CKPT)
    steps = page.evaluate("id => app.graph.getNodeById(id).widgets.find(w => w.name === 'steps').value", sampler)
    set_strength = "([id, v]) => { app.graph.getNodeById(id).widgets.find(w => w.name === 'strength').value = v; }"
    waiting = ("id => app.graph.getNodeById(id).widgets.find(w => w.name === 'sdedit_step_line')"
               "?.element?.textContent.startsWith('waiting for the server')")
    before = len(problems)
    for strength, fail in [(0.47, lambda route: route.abort()),  # the request fails: no server
                           (0.53, lambda route: route.fulfill(status=503, body="restarting"))]:
        page.route("**/sdedit/step_plan?*", fail)
        page.evaluate(set_strength, [noise, strength])  # a query not asked before
        page.wait_for_function(waiting, arg=sampler, polling=100)
        page.wait_for_timeout(1500)  # several polls, each asking again and failing
        page.unroute("**/sdedit/step_plan?*")
        wait_for_line(page, sampler, backend_line(server, strength, steps, "proportional", ckpt))
    ours = problems[before:]
    assert not [p for p in ours if p[0] == "pageerror"], ours
    # What remains is the browser's own note on each failed request; keep it out of the last test's tally.
    assert all(p[0] == "console" and "/sdedit/step_plan" in p[2] for p in ours), ours
    del problems[before:]


def test_step_line_tells_the_tiles_and_model_calls_with_tiling_on(canvas):
    server, page, _, _ = canvas
    new_graph(page)
    ids = dict(page.evaluate("() => app.extensionManager.command.execute('SDEdit.InsertImg2ImgGraph')"
                             " .then(() => app.graph.nodes.map(n => [n.type, n.id]))"))
    noise, sampler, encode = ids["SDEditAddNoise"], ids["SDEditSampler"], ids["SDEditEncode"]
    ckpt = pick_checkpoint(page, ids["CheckpointLoaderSimple"], TEST_CKPT)
    set_widget = "([id, name, value]) => { app.graph.getNodeById(id).widgets.find(w => w.name === name).value = value; }"
    image = page.evaluate("id => app.graph.getNodeById(id).widgets.find(w => w.name === 'image').value", ids["LoadImage"])
    from PIL import Image
    width, height = Image.open(REPO / "example_workflows" / "input" / image).size
    page.evaluate(set_widget, [noise, "strength", 0.35])
    page.evaluate(set_widget, [sampler, "steps", 20])
    page.evaluate(set_widget, [sampler, "tile_size", 256])
    page.evaluate(set_widget, [sampler, "tiling", "on"])
    query = f"strength=0.35&steps=20&step_mode=proportional&ckpt_name={ckpt}&tiling=on&tile_size=256&tile_overlap=128"
    route = server.get(f"/sdedit/step_plan?{query}&tile_batch=0&width={width}&height={height}")
    tiles = route["tiles"]
    assert tiles["tiles"] > 1 and tiles["calls"] == 1
    wait_for_line(page, sampler, line_of(route) + f" · {tiles['tiles']} tiles (256-px tiles, 128-px overlap), "
                                                  "1+ model call (as memory allows) per step")
    page.evaluate(set_widget, [sampler, "tile_batch", 2])
    calls = -(-tiles["tiles"] // 2)
    wait_for_line(page, sampler, line_of(route) + f" · {tiles['tiles']} tiles (256-px tiles, 128-px overlap), "
                                                  f"{calls} model calls per step")
    page.evaluate("id => { const e = app.graph.getNodeById(id); e.disconnectInput(e.findInputSlot('image')); }", encode)
    wait_for_line(page, sampler, line_of(route) + " · tiled (256-px tiles, 128-px overlap; picture size unknown)")
    page.evaluate(set_widget, [sampler, "tiling", "off"])
    wait_for_line(page, sampler, line_of(route))


def test_step_line_quotes_the_schedule_of_the_checkpoint_the_graph_loads(canvas):
    """SD1.5, SD3 and Flux checkpoints picked in Load Checkpoint: σ on that model's schedule (the host's own
    model class, read from the file's header); a ModelSampling node on the way, or a name the route cannot
    read, quotes SD1.5's and says it is assumed."""
    server, page, _, frontend = canvas
    new_graph(page)
    ids = dict(page.evaluate("() => app.extensionManager.command.execute('SDEdit.InsertImg2ImgGraph')"
                             " .then(() => app.graph.nodes.map(n => [n.type, n.id]))"))
    loader, sampler = ids["CheckpointLoaderSimple"], ids["SDEditSampler"]
    page.evaluate("id => { app.graph.getNodeById(id).widgets.find(w => w.name === 'strength').value = 0.6; }",
                  ids["SDEditAddNoise"])
    for family, name in [("SD1.5", TEST_CKPT), *FAMILIES.items()]:
        pick_checkpoint(page, loader, name)
        plan = server.get(f"/sdedit/step_plan?strength=0.6&steps=20&step_mode=proportional&ckpt_name={name}")
        assert (plan["schedule"], plan["assumed"]) == (family, False), plan
        assert plan["sigma"] == pytest.approx(hosts_sigma(family, 0.6), abs=1e-9), plan
        if family != "SD1.5":
            assert 0 < plan["sigma"] < 1  # a flow model's σ, nothing like SD1.5's 2.280
        wait_for_line(page, sampler, line_of(plan))
    # A model patch that changes the schedule between the loader and Add Noise: the file's is not quoted.
    page.evaluate("""([loader, noise]) => { const m = LiteGraph.createNode('ModelSamplingSD3'); app.graph.add(m);
                     const l = app.graph.getNodeById(loader), n = app.graph.getNodeById(noise);
                     l.connect(0, m, 0); m.connect(0, n, n.findInputSlot('model')); }""", [loader, ids["SDEditAddNoise"]])
    assumed = server.get("/sdedit/step_plan?strength=0.6&steps=20&step_mode=proportional")
    assert (assumed["schedule"], assumed["assumed"]) == ("SD1.5", True)
    wait_for_line(page, sampler, line_of(assumed))
    assert "on SD1.5's schedule (assumed; strength 0.60)" in line_of(assumed)
    # Names the route cannot read fall back the same way, saying why.
    for name, reason in [("no-such.safetensors", "not in the checkpoints folder"), ("../../comfyui.log", "not in")]:
        plan = server.get(f"/sdedit/step_plan?strength=0.6&steps=20&step_mode=proportional&ckpt_name={name}")
        assert (plan["schedule"], plan["assumed"]) == ("SD1.5", True) and reason in plan["reason"], plan


def test_one_click_graph_runs_and_its_image_appears(canvas):
    server, page, _, frontend = canvas
    new_graph(page)
    page.evaluate("() => app.extensionManager.command.execute('SDEdit.InsertImg2ImgGraph')")
    loader = page.evaluate("() => app.graph.nodes.find(n => n.type === 'CheckpointLoaderSimple').id")
    pick_checkpoint(page, loader, TEST_CKPT)  # the combo's first entry is another test file
    prompt = page.evaluate("async () => (await app.graphToPrompt()).output")
    assert sorted(n["class_type"] for n in prompt.values()) == sorted(
        ["CheckpointLoaderSimple", "LoadImage", "CLIPTextEncode", "CLIPTextEncode", *NODE_IDS, "SaveImage"])
    assert all("sdedit_step_line" not in n["inputs"] for n in prompt.values())
    # Small and quick on the CPU: the test checkpoint, 4 steps.
    page.evaluate("""() => { const s = app.graph.nodes.find(n => n.type === 'SDEditSampler');
                             s.widgets.find(w => w.name === 'steps').value = 4; }""")
    page.evaluate("() => app.extensionManager.command.execute('Comfy.QueuePrompt')")
    page.wait_for_function(SAVED_IMAGE_SHOWN, timeout=300_000, polling=500)
    images = page.evaluate("""() => { const save = app.graph.nodes.find(n => n.type === 'SaveImage');
                                      return app.nodeOutputs[String(save.id)].images; }""")
    saved = server.base / "output" / images[0].get("subfolder", "") / images[0]["filename"]
    assert saved.is_file() and saved.stat().st_size > 0
    page.screenshot(path=str(SCREENSHOTS / f"one-click-{frontend}.png"))


RUN_STEPS = 1  # every template, run as loaded but for its step count (a CPU): the graph is the template's
# Templates on models no test machine can hold (the video one's umt5-xxl text encoder has 5.7 B parameters): loaded
# here, run in tests/test_editing_server.py on small random files with a test node in place of the text encoder.
NOT_RUN_HERE = {"sdedit_video"}
# Templates whose API twins tests/test_editing_server.py (and test_process_server.py: the sweep) run to their images
# and check: here, on every frontend, the prompt Run posts is checked against the twin, and nothing runs.
# The others run to their images on the pinned frontend. (What the server runs is no frontend's: CI's minutes go
# where they tell. Every template running here too cost 35 of CI's 74 minutes.)
RUN_HEADLESS = {"sdedit_flowedit", "sdedit_region", "sdedit_remove", "sdedit_repeats", "sdedit_strength_map",
                "sdedit_strokes", "sdedit_upscale", "sdedit_strength_sweep"}


def history_ids(server):
    return set(server.get("/history"))


def queued_ids(server):
    queue = server.get("/queue")
    return {item[1] for item in queue["queue_running"] + queue["queue_pending"]}


@pytest.mark.parametrize("example", EXAMPLES)
def test_every_example_loads_from_the_template_browser_and_runs(canvas, example):
    server, page, _, frontend = canvas
    ui = json.loads((REPO / "example_workflows" / f"{example}.json").read_text())
    open_template(page, example)
    loaded = page.evaluate("() => app.graph.nodes.map(n => [n.id, n.type, n.type in LiteGraph.registered_node_types])")
    assert sorted((str(i), t) for i, t, _ in loaded) == sorted((str(n["id"]), n["type"]) for n in ui["nodes"])
    assert all(known for *_, known in loaded), loaded
    api = json.loads((REPO / "example_workflows" / "api" / f"{example}.json").read_text())
    prompt = page.evaluate("async () => JSON.parse(JSON.stringify((await app.graphToPrompt()).output))")
    # Compared as the server reads them: without _meta (newer frontends add cnr_id there) and without
    # inputs the node does not declare (display widgets such as Preview Any's, which frontends differ on).
    info = server.get("/object_info")

    def declared(p):
        out = {}
        for key, n in p.items():
            spec = info[n["class_type"]]["input"]
            names = {*spec.get("required", {}), *spec.get("optional", {}), *spec.get("hidden", {})}
            out[key] = {"class_type": n["class_type"],
                        "inputs": {k: v for k, v in n["inputs"].items() if k in names}}
        return out
    assert declared(prompt) == declared(api)
    # The pictures (or video) it loads are in the combo as loaded: the pack offered them to the fresh input folder.
    pictures = page.evaluate("""() => app.graph.nodes.filter(n => ['LoadImage', 'LoadImageMask', 'LoadVideo'].includes(n.type))
        .map(n => { const w = n.widgets.find(w => w.name === (n.type === 'LoadVideo' ? 'file' : 'image'));
                    const v = w.options.values;
                    return [w.value, (typeof v === 'function' ? v() : v).includes(w.value)]; })""")
    assert pictures and all(offered for _, offered in pictures), pictures
    if example == "sdedit_region":  # Encode's line: the crop the backend's rule makes from the loaded files
        [encode] = [n for n in ui["nodes"] if n["type"] == "SDEditEncode"]
        plan = server.get("/sdedit/crop_plan?image=sdedit_region.png&mask_from=LoadImageMask&mask_image="
                          "sdedit_region_mask.png&channel=red&crop_size=512&crop_padding=32&crop_factor=1.5")
        [(width, height)] = plan["crops"]
        assert plan["work"] == [512, 512] and plan["picture"] == [2048, 1536], plan
        wait_for_line(page, encode["id"], f"crops 1 region ({width}×{height} px) → 512×512 (latent 64×64)")
        page.evaluate("id => { app.graph.getNodeById(id).widgets.find(w => w.name === 'crop_to_mask').value = false; }",
                      encode["id"])
        wait_for_line(page, encode["id"], "edits the whole picture (crop_to_mask off)")
        page.evaluate("id => { app.graph.getNodeById(id).widgets.find(w => w.name === 'crop_to_mask').value = true; }",
                      encode["id"])
    if example == "sdedit_img2img":
        SCREENSHOTS.mkdir(parents=True, exist_ok=True)
        page.screenshot(path=str(SCREENSHOTS / f"example-{frontend}.png"))
    if example == "sdedit_video":  # the step line follows UNETLoader to the Wan file's header: σ on Wan's schedule
        widgets = {n["type"]: n["widgets_values"] for n in ui["nodes"]}
        [denoise] = [n["id"] for n in ui["nodes"] if n["type"] == "SDEditSampler"]
        strength, (steps, *_, mode) = widgets["SDEditAddNoise"][0], widgets["SDEditSampler"][:5]
        plan = server.get(f"/sdedit/step_plan?strength={strength}&steps={steps}&step_mode={mode}"
                          f"&unet_name={widgets['UNETLoader'][0]}")
        assert (plan["schedule"], plan["assumed"]) == ("Wan 2.1", False) and 0 < plan["sigma"] < 1, plan
        wait_for_line(page, denoise, line_of(plan))
    if example == "sdedit_flowedit":  # FlowEdit's line: the backend's levels, and the model calls per level
        check_flowedit_line(server, page, api)
    if example in NOT_RUN_HERE:
        return
    # Pick the test checkpoint in Load Checkpoint's combo, fewer steps for the CPU, and press Run.
    [loader] = [n["id"] for n in ui["nodes"] if n["type"] == "CheckpointLoaderSimple"]
    pick_checkpoint(page, loader, TEST_CKPT)
    page.evaluate("""steps => { for (const n of app.graph.nodes) { const w = n.widgets?.find(w => w.name === 'steps');
                                                                  if (w) w.value = steps; } }""", RUN_STEPS)
    if frontend != "pinned" or example in RUN_HEADLESS:
        # The frontend's part: the prompt Run posts, answered as the server answers a prompt it accepts. What the
        # server runs is the twin (declared(prompt) == declared(api) above), run by the server tests.
        posted = []

        def accept(route):
            if route.request.method != "POST":
                return route.continue_()
            posted.append(route.request.post_data_json)
            route.fulfill(status=200, content_type="application/json",
                          body=json.dumps({"prompt_id": f"not-run-{example}", "number": 0, "node_errors": {}}))
        queue_url = re.compile(r"/(api/)?prompt$")
        page.route(queue_url, accept)
        try:
            page.get_by_test_id("queue-button").first.click()
            deadline = time.monotonic() + 60
            while not posted:
                assert time.monotonic() < deadline, f"{example}: Run posted no prompt within 60 s"
                page.wait_for_timeout(250)
        finally:
            page.unroute(queue_url)
        prompt = posted[0]["prompt"]
        assert {k: n["class_type"] for k, n in prompt.items()} == {k: n["class_type"] for k, n in api.items()}
        assert prompt[str(loader)]["inputs"]["ckpt_name"] == TEST_CKPT
        return
    before = history_ids(server)
    page.get_by_test_id("queue-button").first.click()
    deadline = time.monotonic() + 60  # queued: in the server's queue (running or pending) or already done
    while not (new := queued_ids(server) | history_ids(server) - before):
        assert time.monotonic() < deadline, f"{example}: Run queued nothing within 60 s"
        time.sleep(0.25)
    [prompt_id] = new
    entry = server.wait(prompt_id, timeout=1200)  # 512x384 through the full-size VAE on a busy CPU
    assert entry["status"]["status_str"] == "success", (example, entry["status"])
    ran = {n["class_type"] for n in entry["prompt"][2].values()}
    assert {"CheckpointLoaderSimple", "SaveImage"} <= ran, ran
    assert entry["prompt"][2][str(loader)]["inputs"]["ckpt_name"] == TEST_CKPT
    saved = server.saved_images(entry)
    assert saved and all(p.is_file() and p.stat().st_size > 0 for p in saved), entry["outputs"]


def flowedit_line(plan, calls):
    assumed = "assumed; " if plan["assumed"] else ""
    return (f"FlowEdit: {plan['run']} levels from σ = {plan['sigma']:.3f} on {plan['schedule']}'s schedule "
            f"({assumed}strength {plan['strength']:.2f}), {calls} model call{'' if calls == 1 else 's'} per level")


def check_flowedit_line(server, page, api):
    """Source and target share one model call per level (nodes/flowedit.py) unless exactly one cfg is 1, whose
    branch then needs no uncond; `average` draws multiply the calls."""
    [(node_id, node)] = [(k, n) for k, n in api.items() if n["class_type"] == "SDEditFlowEdit"]
    [noise] = [n for n in api.values() if n["class_type"] == "SDEditAddNoise"]
    [loader] = [n for n in api.values() if n["class_type"] == "CheckpointLoaderSimple"]
    fe = node["inputs"]
    assert fe["source_cfg"] != 1 and fe["target_cfg"] != 1, fe
    plan = server.get(f"/sdedit/step_plan?strength={noise['inputs']['strength']}&steps={fe['steps']}"
                      f"&step_mode={fe['step_mode']}&ckpt_name={loader['inputs']['ckpt_name']}")
    assert plan["run"] > 0, plan
    set_widget = "([id, name, value]) => { app.graph.getNodeById(id).widgets.find(w => w.name === name).value = value; }"
    wait_for_line(page, int(node_id), flowedit_line(plan, 1))
    for name, value, calls in [("source_cfg", 1.0, 2), ("average", 3, 6), ("target_cfg", 1.0, 3)]:
        page.evaluate(set_widget, [int(node_id), name, value])
        wait_for_line(page, int(node_id), flowedit_line(plan, calls))
    for name in ("source_cfg", "target_cfg", "average"):
        page.evaluate(set_widget, [int(node_id), name, fe.get(name, 1)])
    wait_for_line(page, int(node_id), flowedit_line(plan, 1))


def test_the_templates_not_run_here_run_headless():
    """RUN_HEADLESS holds only templates whose API twin a server test runs (the files read, not imported)."""
    source = (REPO / "tests" / "test_editing_server.py").read_text()
    headless = set(re.findall(r'run\(server, prompt_of\("(\w+)"', source)) | set(
        re.findall(r'prompt = prompt_of\("(\w+)"[^\n]*\n(?:.*\n){0,6}?\s+out = run\(server, prompt\)', source))
    sweep = (REPO / "tests" / "test_process_server.py").read_text()
    if re.search(r"prompt = with_checkpoint\(SWEEP_API, checkpoint_path\)\n(?:.*\n){0,3}?\s+entry = server\.run\(prompt\)",
                 sweep):
        headless.add("sdedit_strength_sweep")
    assert RUN_HEADLESS <= headless, RUN_HEADLESS - headless
    assert RUN_HEADLESS < set(EXAMPLES) - NOT_RUN_HERE, "some template must run to its image in the browser"


def test_no_errors_from_the_pack_scripts(canvas):
    *_, problems, frontend = canvas
    ours = [p for p in problems if "sdedit" in (p[1] + p[2]).lower()]
    assert not ours, f"errors from the pack's scripts on the {frontend} frontend: {ours}"


def open_template(page, example):
    """Opens an example from the template browser, as a user does; waits until it is the active workflow."""
    page.evaluate("() => app.extensionManager.command.execute('Comfy.BrowseTemplates')")
    dialog = page.get_by_role("dialog")
    card = dialog.get_by_test_id(f"template-workflow-{example}")
    if not card.is_visible():  # the templates of custom nodes sit under the pack's own entry in the dialog's nav
        dialog.get_by_text(re.compile(r"^\s*sdedit[-_]img2img\s*$", re.I)).first.click()
    card.click()
    # Opened again in the same page (an earlier test opened it), the frontend names it "<example> (2)", ...
    page.wait_for_function("name => { const f = app.extensionManager.workflow.activeWorkflow?.filename;"
                           " return f === name || /^ \\(\\d+\\)$/.test(f?.slice(name.length) ?? '') && f.startsWith(name); }",
                           arg=example, polling=100)
    card.wait_for(state="detached")


# Boxes in graph units: [x0, y0, x1, y1], a node's with its title bar.
LAYOUT = """() => {
    const title = LiteGraph.NODE_TITLE_HEIGHT;
    const box = n => [n.pos[0], n.pos[1] - title, n.pos[0] + n.size[0], n.pos[1] + n.size[1]];
    const inside = (a, b) => a[0] >= b[0] - 1 && a[1] >= b[1] - 1 && a[2] <= b[2] + 1 && a[3] <= b[3] + 1;
    const overlap = (a, b) => a[0] < b[2] - 1 && b[0] < a[2] - 1 && a[1] < b[3] - 1 && b[1] < a[3] - 1;
    const groups = [], notes = [], short = [];
    for (const g of app.graph._groups ?? app.graph.groups ?? []) {
        const gb = [g.pos[0], g.pos[1], g.pos[0] + g.size[0], g.pos[1] + g.size[1]];
        for (const n of app.graph.nodes) {
            const nb = box(n);
            if (overlap(nb, gb) && !inside(nb, gb)) groups.push(`${n.type} #${n.id} sticks out of group "${g.title}"`);
        }
    }
    for (const note of app.graph.nodes.filter(n => /Note/.test(n.type))) {
        for (const n of app.graph.nodes) {
            if (n !== note && overlap(box(n), box(note))) notes.push(`the note #${note.id} overlaps ${n.type} #${n.id}`);
        }
    }
    for (const n of app.graph.nodes) {
        const need = n.computeSize();
        if (n.size[1] + 1 < need[1]) short.push(`${n.type} #${n.id} is ${n.size[1]} high, its widgets need ${need[1]}`);
    }
    return {groups, notes, short};
}"""

# The drawn line of one node, measured where it is drawn (the view centred on the node).
LINE_DRAWN = """id => {
    const n = app.graph.getNodeById(id);
    const w = n.widgets.find(w => w.name === 'sdedit_step_line'), el = w.element;
    const r = el.getBoundingClientRect();
    return {text: el.textContent, visible: el.getClientRects().length > 0 && r.width > 0,
            widgetHeight: w.computedHeight, wants: w.computeSize?.()[1], styleHeight: el.style.height,
            nodeSize: [...n.size],
            scrollWidth: el.scrollWidth, clientWidth: el.clientWidth,
            scrollHeight: el.scrollHeight, clientHeight: el.clientHeight};
}"""


@pytest.mark.parametrize("example", EXAMPLES)
def test_every_template_looks_right_when_opened(canvas, example):
    """The live lines under Encode and Denoise are whole (the text's measured width and height fit inside the
    line, which wraps, inside the node, which grows), every node holds its widgets, groups enclose their nodes
    and notes overlap nothing; a screenshot of each template goes to out/screenshots/."""
    server, page, _, frontend = canvas
    open_template(page, example)
    ids = page.evaluate("() => app.graph.nodes.filter(n => n.widgets?.some(w => w.name === 'sdedit_step_line'))"
                        ".map(n => n.id)")
    cut = []
    for node_id in ids:
        page.wait_for_function("id => { const t = app.graph.getNodeById(id).widgets"
                               ".find(w => w.name === 'sdedit_step_line').element.textContent;"
                               " return t && t !== '…'; }", arg=node_id, polling=100)
        page.evaluate("id => { app.canvas.ds.scale = 1; app.canvas.centerOnNode(app.graph.getNodeById(id));"
                      " app.graph.setDirtyCanvas(true, true); }", node_id)
        page.wait_for_timeout(400)  # a few frames: the DOM widgets follow the canvas on draw
        line = page.evaluate(LINE_DRAWN, node_id)
        assert line["visible"], (example, node_id, line)
        if line["scrollWidth"] > line["clientWidth"] + 1 or line["scrollHeight"] > line["clientHeight"] + 1:
            cut.append(f"#{node_id}: {line}")
        elif example == "sdedit_img2img":  # the node as drawn, for docs/canvas.md (docs/images/canvas_step_line.png)
            clip = page.evaluate("""id => { const n = app.graph.getNodeById(id), ds = app.canvas.ds;
                const r = app.canvas.canvas.getBoundingClientRect(), t = LiteGraph.NODE_TITLE_HEIGHT;
                const [x, y] = ds.convertOffsetToCanvas([n.pos[0] - 12, n.pos[1] - t - 12]);
                return {x: r.left + x, y: r.top + y, width: (n.size[0] + 24) * ds.scale,
                        height: (n.size[1] + t + 24) * ds.scale}; }""", node_id)
            SCREENSHOTS.mkdir(parents=True, exist_ok=True)
            node_type = page.evaluate("id => app.graph.getNodeById(id).type", node_id)
            page.screenshot(path=str(SCREENSHOTS / f"line-{node_type}-{frontend}.png"), clip=clip)
    layout = page.evaluate(LAYOUT)
    # What each node needs on this frontend, for tools/fit_templates.py (which fits the saved sizes to it).
    measured = SCREENSHOTS / f"layout-{frontend}.json"
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    known = json.loads(measured.read_text()) if measured.is_file() else {}
    known[example] = page.evaluate("() => Object.fromEntries(app.graph.nodes.map(n => [n.id, [...n.computeSize()]]))")
    measured.write_text(json.dumps(known, indent=1))
    page.evaluate("() => app.extensionManager.command.execute('Comfy.Canvas.FitView')")
    page.wait_for_timeout(400)
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SCREENSHOTS / f"template-{example}-{frontend}.png"))
    problems = cut + layout["short"] + layout["groups"] + layout["notes"]
    assert not problems, f"{example} on the {frontend} frontend: " + "; ".join(problems)
