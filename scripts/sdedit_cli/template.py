"""An exported API workflow made into a template for the commands: the flags' settings patched in, placeholders
where each picture differs (its LoadImage file, its seeds), and the prompt of one picture made from it."""
import copy
import dataclasses
import hashlib
import json

# Nodes whose seed a command sets per picture, and the name of that input.
SEED_INPUTS = {"SDEditAddNoise": "seed", "SDEditStrengthSweep": "seed", "KSampler": "seed",
               "KSamplerAdvanced": "noise_seed", "RandomNoise": "noise_seed"}
IMAGE_PLACEHOLDER, SEED_PLACEHOLDER = "<each input image>", "<per-image seed>"


class WorkflowError(ValueError):
    """The workflow does not fit the command (or the flags given); the message says what it needs."""


@dataclasses.dataclass(frozen=True)
class Template:
    """`nodes`: the patched workflow with placeholders; `load_id`: its LoadImage node; `seed_ids`: the nodes whose
    seed is set per picture; `own_seeds`: their seeds in the workflow as exported."""
    nodes: dict
    load_id: str
    seed_ids: tuple
    own_seeds: tuple

    def prompt_for(self, image_name: str, seed: int | None) -> dict:
        """The API prompt for one picture; several seed nodes (e.g. repeats) get seed, seed + 1, ...
        (seed None: the workflow's own seeds)."""
        prompt = copy.deepcopy(self.nodes)
        prompt[self.load_id]["inputs"]["image"] = image_name
        for i, k in enumerate(self.seed_ids):
            prompt[k]["inputs"][SEED_INPUTS[prompt[k]["class_type"]]] = self.own_seeds[i] if seed is None else seed + i
        return prompt

    def hash(self, settings: dict) -> str:
        """Covers the patched workflow and every parameter that changes a result."""
        blob = json.dumps({"workflow": self.nodes, "settings": settings}, sort_keys=True, separators=(",", ":"))
        return hashlib.sha256(blob.encode()).hexdigest()[:16]


def make_template(workflow: dict, *, ckpt_name: str | None = None, strength: float | None = None,
                  prompt: str | None = None, negative: str | None = None, steps: int | None = None,
                  seed_given: bool = False) -> Template:
    """The workflow patched with the command's settings (None: the workflow's own). Raises WorkflowError."""
    nodes = {k: v for k, v in workflow.items() if isinstance(v, dict) and "class_type" in v}
    if not nodes or len(nodes) != len(workflow):
        raise WorkflowError("this is not an API-format workflow (a JSON object of nodes with class_type and "
                            "inputs). In ComfyUI: Workflow -> Export (API).")

    def of(class_type):
        return sorted((k for k, n in nodes.items() if n["class_type"] == class_type), key=node_order)

    def set_input(class_type, name, value, need):
        found = of(class_type)
        if not found:
            needs.append(need)
        for k in found:
            template[k]["inputs"][name] = value

    def text_encoders(socket):
        wired = sorted({n["inputs"][socket][0] for n in nodes.values()
                        if isinstance(n.get("inputs", {}).get(socket), list)}, key=node_order)
        return [k for k in wired if nodes.get(k, {}).get("class_type") == "CLIPTextEncode"]

    needs = []
    loads, saves = of("LoadImage"), of("SaveImage")
    if len(loads) != 1:
        needs.append(f"exactly one LoadImage node, which the batch feeds each image (it has {len(loads)}"
                     + (f": nodes {', '.join(loads)})" if loads else ")"))
    if len(saves) != 1:
        needs.append(f"exactly one SaveImage node, whose picture becomes the output (it has {len(saves)}"
                     + (f": nodes {', '.join(saves)})" if saves else ")"))
    template = copy.deepcopy(nodes)
    if ckpt_name is not None:
        set_input("CheckpointLoaderSimple", "ckpt_name", ckpt_name,
                  "a CheckpointLoaderSimple (Load Checkpoint) node for --ckpt (it has none)")
    if strength is not None:
        set_input("SDEditAddNoise", "strength", strength,
                  "an SDEditAddNoise (SDEdit 2 · Add Noise) node for --strength (it has none; set the strength, "
                  "e.g. KSampler's denoise, in the workflow itself and drop --strength)")
    if steps is not None:
        set_input("SDEditSampler", "steps", steps, "an SDEditSampler (SDEdit 3 · Denoise) node for --steps (it has none)")
    for socket, text, flag in (("positive", prompt, "--prompt"), ("negative", negative, "--negative")):
        if text is None:
            continue
        encoders = text_encoders(socket)
        if not encoders:
            needs.append(f"a CLIPTextEncode node wired to a sampler's `{socket}` input for {flag} (it has none)")
        for k in encoders:
            template[k]["inputs"]["text"] = text
    seed_ids = [k for k in sorted(nodes, key=node_order) if nodes[k]["class_type"] in SEED_INPUTS
                and not isinstance(nodes[k]["inputs"].get(SEED_INPUTS[nodes[k]["class_type"]]), list)]
    if seed_given and not seed_ids:
        needs.append("a node with a seed (" + ", ".join(SEED_INPUTS) + ") for --seed (it has none)")
    if needs:
        raise WorkflowError("the workflow does not fit the batch. It needs " + "; ".join(needs) + ".")
    template[loads[0]]["inputs"]["image"] = IMAGE_PLACEHOLDER
    own_seeds = []
    for k in seed_ids:
        name = SEED_INPUTS[nodes[k]["class_type"]]
        own_seeds.append(nodes[k]["inputs"].get(name))
        template[k]["inputs"][name] = SEED_PLACEHOLDER
    return Template(template, loads[0], tuple(seed_ids), tuple(own_seeds))


def node_order(node_id: str):
    return (0, int(node_id), "") if node_id.isdigit() else (1, 0, node_id)


def image_seed(base_seed: int, name: str) -> int:
    """The seed of one image: from the --seed and the image's path in the input folder only, so a result
    never depends on the order the images run in or on the worker that runs it."""
    return int.from_bytes(hashlib.sha256(f"{base_seed}\0{name}".encode()).digest()[:4], "big")
