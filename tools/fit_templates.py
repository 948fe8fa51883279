"""Makes the example workflows look right when opened: every node as tall as its widgets need on the frontends the
canvas tests open them on (measured there: out/screenshots/layout-*.json, written by
tests/test_canvas.py::test_every_template_looks_right_when_opened), nodes below a grown node moved down, each group
enclosing its nodes, and notes below every node they would overlap.

    python tools/fit_templates.py            (after the canvas tests ran; rerun them to check)

Run it again after tools/make_example_assets.py rewrote a workflow.
"""
import json
import pathlib

REPO = pathlib.Path(__file__).resolve().parents[1]
EXAMPLES = REPO / "example_workflows"
MEASURED = REPO / "out" / "screenshots"
TITLE = 30  # LiteGraph.NODE_TITLE_HEIGHT
PAD = 20    # room around a group's nodes, and below its title


def box(n):
    return [n["pos"][0], n["pos"][1] - TITLE, n["pos"][0] + n["size"][0], n["pos"][1] + n["size"][1]]


def overlap(a, b):
    return a[0] < b[2] and b[0] < a[2] and a[1] < b[3] and b[1] < a[3]


def needs() -> dict:
    """{example: {node id: [width, height]}}: the most any measured frontend needs."""
    out: dict = {}
    for path in sorted(MEASURED.glob("layout-*.json")):
        for example, sizes in json.loads(path.read_text()).items():
            for node_id, (w, h) in sizes.items():
                have = out.setdefault(example, {}).setdefault(str(node_id), [0, 0])
                have[0], have[1] = max(have[0], w), max(have[1], h)
    return out


def fit(ui: dict, need: dict) -> dict:
    nodes = {str(n["id"]): n for n in ui["nodes"]}
    notes = [n for n in ui["nodes"] if "Note" in n["type"]]
    # 1. Members of each group, as the frontend counts them now (a node whose top-left corner is inside it); a
    #    group only as high as its title (a banner) holds every node that is not a note.
    members = []
    for g in ui.get("groups", []):
        x, y, w, h = g["bounding"]
        inside = [n for n in ui["nodes"] if "Note" not in n["type"] and x <= n["pos"][0] <= x + w
                  and y <= n["pos"][1] - TITLE <= y + h]
        members.append(inside if h > 60 else [n for n in ui["nodes"] if "Note" not in n["type"]])
    # 2. Heights: as much as the widgets need (+8 px), then nodes below a grown one, in its column, move down.
    for node_id, (_, h) in need.items():
        n = nodes.get(node_id)
        if n is None or n["size"][1] >= h + 8:
            continue
        grow = h + 8 - n["size"][1]
        old = box(n)
        n["size"][1] = h + 8
        for other in ui["nodes"]:
            b = box(other)
            if other is not n and b[1] >= old[3] - 1 and b[0] < old[2] and old[0] < b[2] and "Note" not in other["type"]:
                other["pos"][1] += grow
    # 3. Groups enclose their members.
    for g, inside in zip(ui.get("groups", []), members):
        if inside:
            boxes = [box(n) for n in inside]
            x0, y0 = min(b[0] for b in boxes) - PAD, min(b[1] for b in boxes) - PAD - 40
            x1, y1 = max(b[2] for b in boxes) + PAD, max(b[3] for b in boxes) + PAD
            g["bounding"] = [x0, y0, x1 - x0, y1 - y0]
    # 4. Notes overlap nothing: below the lowest node or group they would touch.
    for note in notes:
        for _ in range(20):
            hit = [box(n) for n in ui["nodes"] if n is not note and overlap(box(n), box(note))]
            hit += [[g["bounding"][0], g["bounding"][1], g["bounding"][0] + g["bounding"][2],
                     g["bounding"][1] + g["bounding"][3]] for g in ui.get("groups", [])
                    if overlap([g["bounding"][0], g["bounding"][1], g["bounding"][0] + g["bounding"][2],
                                g["bounding"][1] + g["bounding"][3]], box(note))]
            if not hit:
                break
            note["pos"][1] = max(b[3] for b in hit) + TITLE + PAD
    return ui


def main() -> None:
    measured = needs()
    if not measured:
        raise SystemExit(f"no measurements in {MEASURED}: run the canvas tests first "
                         "(pytest tests/test_canvas.py -k looks_right)")
    for path in sorted(EXAMPLES.glob("*.json")):
        ui = json.loads(path.read_text())
        before = json.dumps(ui)
        fit(ui, measured.get(path.stem, {}))
        if json.dumps(ui) != before:
            path.write_text(json.dumps(ui, indent=2, ensure_ascii=False) + "\n")
            print(f"fitted {path.relative_to(REPO)}")


if __name__ == "__main__":
    main()
