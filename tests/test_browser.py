"""The example workflow in the real ComfyUI frontend, loaded as a user loads it from the template browser.

Debian's Chromium (/usr/bin/chromium), driven by playwright, opens the frontend that the real server
serves (comfyui-frontend-package), clicks Comfy menu -> Browse Templates -> Custom Nodes ->
sdedit-img2img -> the sdedit_img2img card, and then checks that every node is known (no missing-nodes
dialog, no schema or link warning, no page error) and that the frontend's own API export of the loaded
graph (app.graphToPrompt) equals the API twin, example_workflows/api/sdedit_img2img.json.
Playwright never downloads a browser here; without /usr/bin/chromium the test fails and says what to install.
"""
import json
import os
import pathlib
import re

import pytest
from conftest import API_WORKFLOW, UI_WORKFLOW

TEMPLATE_MODULE, TEMPLATE = "sdedit-img2img", "sdedit_img2img"
TEMPLATE_URL = f"/api/workflow_templates/{TEMPLATE_MODULE}/{TEMPLATE}.json"
CHROMIUM = pathlib.Path("/usr/bin/chromium")
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
                 "--disable-sync", "--disable-quic", "--no-first-run"]
# A returning user: a fresh one gets the template browser opened on its own at start-up, and with no
# stored settings frontend 1.27.10 throws a TypeError while it registers the canvas navigation defaults.
RETURNING_USER = {"Comfy.TutorialCompleted": True, "Comfy.Canvas.NavigationMode": "legacy",
                  "Comfy.Canvas.LeftMouseClickBehavior": "panning", "Comfy.Canvas.MouseWheelScroll": "zoom"}
APP_READY_S = 120   # first start of the frontend on a slow 2-core machine: parse ~10 MB of JavaScript
STEP_S = 30         # every click and every wait after that

OPEN_DIALOGS_AND_TOASTS = """() => [...document.querySelectorAll('.p-dialog, .p-toast-message')]
    .map(e => e.innerText.trim().replace(/\\s+/g, ' ').slice(0, 300))"""
LOADED_GRAPH = """async () => {
    const nodes = app.graph.nodes.map(n => ({id: n.id, type: n.type,
                                            registered: n.type in LiteGraph.registered_node_types}));
    const settings = app.extensionManager.setting;
    const checks = ['Comfy.Validation.Workflows', 'Comfy.Workflow.ShowMissingNodesWarning',
                    'Comfy.Workflow.ShowMissingModelsWarning'];
    const {output} = await app.graphToPrompt();
    return {nodes, prompt: JSON.parse(JSON.stringify(output)),
            settings: Object.fromEntries(checks.map(k => [k, settings.get(k)]))};
}"""


@pytest.fixture(scope="module")
def frontend(server, checkpoint_path):
    """The real server, with the checkpoints the workflow names present (the test checkpoint under their
    names, so the frontend's missing-models check passes) and a returning user's settings."""
    ui = json.loads(UI_WORKFLOW.read_text())
    for ui_node in ui["nodes"]:
        for model in ui_node.get("properties", {}).get("models", []):
            assert model["directory"] == "checkpoints", model
            alias = server.base / "models" / "checkpoints" / model["name"]
            if not alias.exists():
                alias.symlink_to(checkpoint_path.resolve())
    status, response = server.request("POST", "/api/settings", RETURNING_USER)
    assert status == 200, response
    return server


def test_the_example_loads_from_the_template_browser_and_exports_as_its_api_twin(frontend):
    if not (CHROMIUM.is_file() and os.access(CHROMIUM, os.X_OK)):
        pytest.fail(f"{CHROMIUM} is missing: install Debian's chromium: apt-get install chromium "
                    "(the browser test drives it; playwright's own browser is never downloaded)", pytrace=False)
    from playwright.sync_api import sync_playwright

    ui = json.loads(UI_WORKFLOW.read_text())
    api = json.loads(API_WORKFLOW.read_text())
    page_errors, template_responses = [], []
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS,
                                             timeout=STEP_S * 1000)
        try:
            context = browser.new_context(viewport={"width": 1600, "height": 1000})
            context.set_default_timeout(STEP_S * 1000)
            # Nothing but the local server: the release check and model-size look-ups stay off the network.
            context.route(re.compile(r"^(?!" + re.escape(frontend.url) + "/)"), lambda route: route.abort())
            page = context.new_page()
            page.on("pageerror", lambda error: page_errors.append(f"{error}\n{error.stack}"))
            page.on("response", lambda r: template_responses.append(r) if r.url.endswith(TEMPLATE_URL) else None)

            page.goto(frontend.url, timeout=APP_READY_S * 1000)
            # Ready: the app is set up and has opened its start-up workflow (the default graph).
            page.wait_for_function("() => window.app?.extensionManager?.workflow?.activeWorkflow"
                                   " && app.graph?.nodes.length > 0", timeout=APP_READY_S * 1000, polling=250)

            page.get_by_alt_text("ComfyUI Logo").click()                         # the Comfy menu
            page.get_by_role("menuitem", name="Browse Templates", exact=True).click()
            browser_dialog = page.get_by_role("dialog").filter(has_text="Custom Nodes")
            browser_dialog.get_by_role("option", name=TEMPLATE_MODULE, exact=True).click()
            browser_dialog.get_by_test_id(f"template-workflow-{TEMPLATE}").click()
            # Loaded: the template is the active workflow (set last in app.loadGraphData, after any
            # missing-nodes/models dialog was opened) and the template browser has closed.
            page.wait_for_function(f"() => app.extensionManager.workflow.activeWorkflow?.filename === '{TEMPLATE}'",
                                   polling=100)
            page.get_by_test_id(f"template-workflow-{TEMPLATE}").wait_for(state="detached")
            page.evaluate("() => new Promise(done => requestAnimationFrame(() => setTimeout(done, 0)))")

            popups = page.evaluate(OPEN_DIALOGS_AND_TOASTS)
            loaded = page.evaluate(LOADED_GRAPH)
        finally:
            browser.close()

    assert [r.status for r in template_responses] == [200], \
        f"the card did not fetch {TEMPLATE_URL} from the server once: {[(r.url, r.status) for r in template_responses]}"
    assert loaded["settings"] == dict.fromkeys(loaded["settings"], True), \
        f"the frontend's workflow checks were not all on: {loaded['settings']}"
    assert not popups, f"dialogs or warnings after loading the template: {popups}"
    assert not page_errors, "uncaught errors in the page:\n" + "\n".join(page_errors)
    unknown = [n for n in loaded["nodes"] if not n["registered"]]
    assert not unknown, f"node types the frontend does not know: {unknown}"
    assert sorted((n["id"], n["type"]) for n in loaded["nodes"]) == sorted((n["id"], n["type"]) for n in ui["nodes"])

    prompt = loaded["prompt"]
    differing = {k: {"frontend": prompt.get(k), "api twin": api.get(k)}
                 for k in sorted(set(prompt) | set(api)) if prompt.get(k) != api.get(k)}
    assert not differing, ("the frontend's API export of the template differs from "
                           f"{API_WORKFLOW}:\n{json.dumps(differing, indent=1, ensure_ascii=False)}")
