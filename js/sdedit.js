// The SDEdit canvas extension: one colour per step, a live line on Denoise saying what will run, and a
// one-click "SDEdit image-to-image" graph. Only the frontend's extension API; the only requests go to the
// local server (the backend's own step rule), through api.fetchApi so no URL or folder name is hard-coded.
import { app } from "../../scripts/app.js";
import { api } from "../../scripts/api.js";

const EXTENSION = "SDEdit.Img2Img";
const INSERT_COMMAND = "SDEdit.InsertImg2ImgGraph";
const INSERT_LABEL = "SDEdit image-to-image";
const LINE_WIDGET = "sdedit_step_line";

// The denoise nodes (step 3): each gets the step line, read from its steps/step_mode widgets and the Add
// Noise upstream of its noisy_latent. SDEditSamplerCustom (the host's GUIDER and SAMPLER) may not exist yet.
export const DENOISE_TYPES = ["SDEditSampler", "SDEditSamplerCustom", "SDEditFlowEdit"];

// One colour per step, numbered as the nodes are (and the example thumbnail): 1 Encode, 2 Add Noise, 3 Denoise
// (both kinds), 4 Decode.
export const STEP_COLOURS = {
    SDEditEncode: { color: "#2a4d6e", bgcolor: "#3b6a96" },    // blue
    SDEditAddNoise: { color: "#6e4a1f", bgcolor: "#96662b" },  // amber
    SDEditSampler: { color: "#2e5e3a", bgcolor: "#3f8050" },        // green
    SDEditSamplerCustom: { color: "#2e5e3a", bgcolor: "#3f8050" },  // green, the same step
    SDEditFlowEdit: { color: "#2e5e3a", bgcolor: "#3f8050" },       // green: FlowEdit in place of Denoise
    SDEditDecode: { color: "#5a2e6e", bgcolor: "#7b3f96" },    // purple
};

const typeOf = (node) => node?.comfyClass ?? node?.type;
const widget = (node, name) => node?.widgets?.find((w) => w.name === name);

function isWired(node, name) {
    const slot = node.findInputSlot(name);
    if (slot < 0) return false;
    return node.isInputConnected ? node.isInputConnected(slot) : node.inputs[slot].link != null;
}

/** The first node upstream of `node`'s input `name` that `found` accepts, followed back through reroutes
 *  and nodes that pass a `type` on; null where it cannot be followed or `stop` rejects a node on the way. */
function upstream(node, name, type, found, stop = () => false) {
    if (!node.graph) return null;  // nodeCreated runs before the node is added to a graph
    let current = node;
    let slot = node.findInputSlot(name);
    const seen = new Set();
    while (slot >= 0 && current && !seen.has(current.id)) {
        seen.add(current.id);
        const origin = current.getInputNode(slot);
        if (!origin || stop(origin)) return null;
        if (found(origin)) return origin;
        slot = origin.inputs?.findIndex((i) => i.type === type || i.type === "*") ?? -1;
        current = origin;
    }
    return null;
}

const addNoiseOf = (node) => upstream(node, "noisy_latent", "LATENT", (n) => typeOf(n) === "SDEditAddNoise");

/** The strength of the Add Noise node that feeds `node`'s noisy_latent, followed back through reroutes
 *  and nodes that pass a LATENT on; null where it cannot be followed (or the strength is wired in). */
export function upstreamStrength(node) {
    const origin = addNoiseOf(node);
    if (!origin) return null;
    const value = Number(widget(origin, "strength")?.value);
    return isWired(origin, "strength") || !Number.isFinite(value) ? null : value;
}

// The loaders whose file the backend can read the schedule from, and the widget (and query parameter) naming it.
const MODEL_FILE_WIDGETS = { CheckpointLoaderSimple: "ckpt_name", UNETLoader: "unet_name" };

/** {param, name}: the file of the Load Checkpoint (ckpt_name) or Load Diffusion Model (UNETLoader: unet_name,
 *  e.g. Wan) whose MODEL reaches that Add Noise's model input (through reroutes and nodes that pass a MODEL
 *  on, e.g. LoRA), for the backend to read the model's schedule from the file's header; null where it cannot
 *  be followed, or a ModelSampling* node on the way changes the schedule. */
export function upstreamModelFile(node) {
    const noise = addNoiseOf(node);
    const loader = noise && upstream(noise, "model", "MODEL", (n) => Object.hasOwn(MODEL_FILE_WIDGETS, typeOf(n) ?? ""),
                                     (n) => String(typeOf(n)).startsWith("ModelSampling"));
    const param = loader ? MODEL_FILE_WIDGETS[typeOf(loader)] : null;
    const name = param && !isWired(loader, param) ? widget(loader, param)?.value : null;
    return typeof name === "string" && name ? { param, name } : null;
}

/** The picture's size in px as Encode will see it, where the canvas can tell: the image of the Load Image
 *  upstream of the Encode that feeds this node's Add Noise, through reroutes, IMAGE nodes and ImageScaleBy
 *  (its factor) or ImageScale (its size); null where it cannot be told. For the tiling count only. */
export function upstreamPictureSize(node) {
    const noise = addNoiseOf(node);
    const encode = noise && upstream(noise, "latent", "LATENT", (n) => typeOf(n) === "SDEditEncode");
    let current = encode, factor = 1;
    const seen = new Set();
    while (current && !seen.has(current.id)) {
        seen.add(current.id);
        const slot = current.inputs?.findIndex((i) => i.type === "IMAGE" || i.type === "*") ?? -1;
        const origin = slot >= 0 ? current.getInputNode(slot) : null;
        if (!origin) return null;
        const type = String(typeOf(origin));
        if (type === "ImageScale") {
            const [w, h] = [Number(widget(origin, "width")?.value), Number(widget(origin, "height")?.value)];
            return w > 0 && h > 0 ? { width: w, height: h } : null;
        }
        if (type === "ImageScaleBy") factor *= Number(widget(origin, "scale_by")?.value) || NaN;
        else if (/scale|upscale|crop|resize|pad/i.test(type)) return null;  // a size the canvas cannot follow
        const image = origin.imgs?.[0];
        if (image?.naturalWidth > 0) {
            const size = { width: Math.round(image.naturalWidth * factor), height: Math.round(image.naturalHeight * factor) };
            return Number.isFinite(size.width) && Number.isFinite(size.height) ? size : null;
        }
        current = origin;
    }
    return null;
}

/** The tiling widgets of a Denoise node as query parameters (and the picture size where known); null when off. */
function tilingQuery(node) {
    if (widget(node, "tiling")?.value !== "on") return null;
    const query = {};
    for (const name of ["tile_size", "tile_overlap", "tile_batch"]) {
        const value = widget(node, name)?.value;
        if (value !== undefined) query[name] = String(value);
    }
    // Encode's size_mode sets the latent's size; with crop_to_mask the latent is the crops' (size unknown here).
    const noise = addNoiseOf(node);
    const encode = noise && upstream(noise, "latent", "LATENT", (n) => typeOf(n) === "SDEditEncode");
    const sizeMode = widget(encode, "size_mode")?.value;
    if (sizeMode) query.size_mode = String(sizeMode);
    const size = widget(encode, "crop_to_mask")?.value ? null : upstreamPictureSize(node);
    if (size) Object.assign(query, { width: String(size.width), height: String(size.height) });
    return query;
}

/** " · tiled: …" for the line, from the backend's answer. */
function tilingText(tiles) {
    if (!tiles) return "";
    if (tiles.error) return ` · tiling: ${tiles.error}`;
    const size = `${tiles.tile_px}-px tiles, ${tiles.overlap_px}-px overlap`;
    if (tiles.tiles === undefined) return ` · tiled (${size}; picture size unknown)`;
    const calls = tiles.tile_batch ? `${tiles.calls} model call${tiles.calls === 1 ? "" : "s"}`
                                   : `${tiles.calls}+ model call${tiles.calls === 1 ? "" : "s"} (as memory allows)`;
    return ` · ${tiles.tiles} tile${tiles.tiles === 1 ? "" : "s"} (${size}), ${calls} per step`;
}

/** The backend's answer to `path?key`, asked once per key: an answer (a 400's {error} included) is kept, a failed
 *  request (no server, e.g. while it restarts; or a reply that is not the route's JSON) is forgotten, so the next
 *  refresh asks again. */
function answerOf(cache, path, key) {
    if (!cache.has(key)) {
        const asked = api.fetchApi(`${path}?${key}`).then((r) => {
            if (!r.ok && r.status !== 400) throw new Error(`${path} answered ${r.status}`);
            return r.json();
        });
        asked.catch(() => { if (cache.get(key) === asked) cache.delete(key); });
        cache.set(key, asked);
    }
    return cache.get(key);
}

const plans = new Map();  // query -> the backend's answer (or a pending promise)

async function stepPlan(strength, steps, mode, modelFile, tiling = null) {
    const query = new URLSearchParams({ strength: String(strength), steps: String(steps), step_mode: mode });
    if (modelFile) query.set(modelFile.param, modelFile.name);
    if (tiling) {
        query.set("tiling", "on");
        for (const [name, value] of Object.entries(tiling)) query.set(name, value);
    }
    return answerOf(plans, "/sdedit/step_plan", query.toString());
}

/** {text, title} of the line for a Denoise node, from the backend's rule. σ is quoted on the schedule of
 *  the checkpoint or diffusion model the graph loads where the backend could read it, else on SD1.5's,
 *  marked "assumed". */
export async function stepLine(node) {
    const steps = Number(widget(node, "steps")?.value);
    const mode = widget(node, "step_mode")?.value ?? "proportional";
    const strength = upstreamStrength(node);
    const flowEdit = typeOf(node) === "SDEditFlowEdit";
    const title = flowEdit ? "What SDEdit 3 · FlowEdit will run" : "What SDEdit 3 · Denoise will run";
    if (strength === null) return { text: `strength unknown: connect SDEdit 2 · Add Noise (${steps} steps, ${mode})`, title };
    const plan = await stepPlan(strength, steps, mode, upstreamModelFile(node), tilingQuery(node));
    if (plan.error) return { text: `cannot plan: ${plan.error}`, title };
    if (plan.run === 0) return { text: `runs 0 of ${plan.of} steps: strength 0 keeps the image`, title };
    const schedule = plan.assumed ? `${plan.schedule}'s schedule (assumed; strength ${strength.toFixed(2)})`
                                  : `${plan.schedule}'s schedule (strength ${strength.toFixed(2)})`;
    if (flowEdit) {  // source and target batched in one call per noise draw of `average`, unless the host's cfg-1
                     // shortcut drops the uncond of one branch only (nodes/flowedit.py: FlowEditGuider)
        const cfg1 = (name) => Math.abs(Number(widget(node, name)?.value) - 1) < 1e-9;
        const branches = cfg1("source_cfg") === cfg1("target_cfg") ? 1 : 2;
        const calls = branches * Math.max(1, Number(widget(node, "average")?.value) || 1);
        return { text: `FlowEdit: ${plan.run} levels from σ = ${plan.sigma.toFixed(3)} on ${schedule}, ${calls} model call${calls === 1 ? "" : "s"} per level${tilingText(plan.tiles)}`,
                 title: `${title}; σ on ${plan.schedule}'s noise schedule: ${plan.reason}` };
    }
    return { text: `runs ${plan.run} of ${plan.of} steps from σ = ${plan.sigma.toFixed(3)} on ${schedule}${tilingText(plan.tiles)}`,
             title: `${title}; σ on ${plan.schedule}'s noise schedule: ${plan.reason}` };
}

// --- Encode's crop_to_mask: what will be cropped, from the backend's rule on the files the loaders read ---

const crops = new Map();  // query -> the backend's answer (or a pending promise)

/** The Load Image (or Load Image (as Mask)) whose output reaches `node`'s input `name` directly or through
 *  reroutes only: a node that changes the picture on the way would make the answer wrong. */
function loaderOf(node, name, types) {
    return upstream(node, name, "*", (n) => types.includes(typeOf(n)), (n) => !types.includes(typeOf(n)) &&
                    !String(typeOf(n)).includes("Reroute"));
}

/** {text, title} of the line for an Encode node. */
export async function cropLine(node) {
    const title = "What SDEdit 1 · Encode will crop (crop_to_mask)";
    if (!widget(node, "crop_to_mask")?.value) return { text: "edits the whole picture (crop_to_mask off)", title };
    const size = Number(widget(node, "crop_size")?.value);
    const general = { text: `crops each masked region to ${size} px (long side); sizes known when run`, title };
    const image = loaderOf(node, "image", ["LoadImage"]);
    const maskNode = loaderOf(node, "mask", ["LoadImage", "LoadImageMask"]);
    if (!image || !maskNode || isWired(image, "image")) return general;
    const query = new URLSearchParams({ image: widget(image, "image")?.value ?? "", mask_from: typeOf(maskNode),
                                        crop_size: String(size),
                                        crop_padding: String(widget(node, "crop_padding")?.value),
                                        crop_factor: String(widget(node, "crop_factor")?.value) });
    if (typeOf(maskNode) === "LoadImageMask") {
        query.set("mask_image", widget(maskNode, "image")?.value ?? "");
        query.set("channel", widget(maskNode, "channel")?.value ?? "alpha");
    } else if (maskNode !== image) return general;
    const plan = await answerOf(crops, "/sdedit/crop_plan", query.toString());
    if (plan.error) return { text: `cannot plan the crops: ${plan.error}`, title };
    if (!plan.crops.length) return { text: "the mask is empty: nothing to crop", title };
    const [w, h] = plan.work, cell = plan.cell_px;  // the backend's pixels per latent cell
    const sizes = plan.crops.map(([cw, ch]) => `${cw}×${ch}`).join(", ");
    const n = plan.crops.length;
    return { text: `crops ${n} region${n > 1 ? "s" : ""} (${sizes} px) → ${w}×${h} (latent ${w / cell}×${h / cell})`,
             title: `${title}; picture ${plan.picture[0]}×${plan.picture[1]} px, VAE factor ${cell} assumed` };
}

// The live line wraps at the node's width, and the node grows to hold it: never cut off.
const LINE_FONT = "12px sans-serif";
const LINE_HEIGHT = 16;      // px per wrapped line
const LINE_PADDING_X = 6;    // px each side inside the line
const LINE_MARGIN_X = 15;    // px the host's DOM widgets leave each side of the node
let lineMeasure = null;

/** The wrapped line's [lines, height in px] at a node width: words measured in the line's own font. */
export function wrappedLineSize(text, nodeWidth) {
    lineMeasure ??= document.createElement("canvas").getContext("2d");
    lineMeasure.font = LINE_FONT;
    const room = Math.max(40, nodeWidth - 2 * LINE_MARGIN_X - 2 * LINE_PADDING_X);
    let lines = 1, used = 0;
    for (const word of String(text).split(/\s+/).filter(Boolean)) {
        const w = lineMeasure.measureText((used ? " " : "") + word).width;
        if (used && used + w > room) { lines += 1; used = lineMeasure.measureText(word).width; }
        else used += w;
    }
    return [lines, lines * LINE_HEIGHT + 4];  // the text's height with the line's padding
}

function addStepLine(node, compute = stepLine, tip = "What SDEdit 3 · Denoise will run") {
    const line = document.createElement("div");
    line.className = "sdedit-step-line";
    line.title = tip;
    Object.assign(line.style, { font: LINE_FONT, lineHeight: `${LINE_HEIGHT}px`, padding: `2px ${LINE_PADDING_X}px`,
                                color: "#e8f5e9", whiteSpace: "normal", overflowWrap: "anywhere",
                                overflow: "hidden" });
    line.textContent = "…";
    // The widget's height: the text's, and the margins the frontend keeps above and below a DOM widget's element
    // (10 px each by default; it adds 4 px to a fixed-size widget itself).
    // It wraps at the node's own width (the host asks with its narrowest width when it sizes a node).
    const height = (width) => wrappedLineSize(line.textContent, Math.max(width ?? 0, node.size[0]))[1]
        + 2 * (w?.margin ?? 10) - 4;
    // The frontend lays a DOM widget out by getMinHeight/getMaxHeight (newer) or computeSize (older): both follow
    // the wrapped text.
    let w = null;
    w = node.addDOMWidget(LINE_WIDGET, "sdedit_step_line", line, {
        serialize: false, getValue: () => "", getMinHeight: () => height(), getMaxHeight: () => height() });
    w.serialize = false;  // a canvas hint: never in the saved workflow or the prompt
    w.computeSize = (width) => [width, height(width)];
    let shown = "";
    node.sdeditRefresh = async () => {
        let text, title;
        try {
            ({ text, title } = await compute(node));
        } catch (error) {  // the server did not answer: say so, and the next poll asks again
            [text, title] = [`waiting for the server… (${error?.message ?? error})`, tip];
        }
        if (text !== shown) {
            line.textContent = shown = text;
            growToFit(node);
        }
        if (line.title !== title) line.title = title;
    };
}

/** Makes a node tall enough for its widgets (the wrapped line included); never shrinks what the user sized. */
function growToFit(node) {
    const height = node.computeSize()[1];
    if (node.size[1] < height) {
        node.setSize([node.size[0], height]);
        app.graph?.setDirtyCanvas(true, true);
    }
}

function refreshAll() {
    for (const node of app.graph?.nodes ?? []) node.sdeditRefresh?.();
}

function addNode(type, pos, values = {}) {
    const node = LiteGraph.createNode(type);
    node.pos = pos;
    app.graph.add(node);
    for (const [name, value] of Object.entries(values)) {
        const w = widget(node, name);
        if (w) w.value = value;
    }
    return node;
}

// Host nodes name outputs by type (MODEL, CLIP), V3 nodes by role (latent): match either.
function link(from, output, to, input) {
    const slot = from.outputs.findIndex((o) => o.name === output || o.type === output);
    from.connect(slot, to, to.findInputSlot(input));
}

/** Inserts Load Checkpoint, Load Image, two CLIP Text Encode, the four SDEdit nodes and Save Image, wired. */
export function insertImg2ImgGraph() {
    const [x, y] = app.canvas?.graph_mouse ?? [0, 0];
    const ckpt = addNode("CheckpointLoaderSimple", [x, y]);
    const image = addNode("LoadImage", [x, y + 160]);
    const positive = addNode("CLIPTextEncode", [x + 340, y], { text: "a photograph, highly detailed" });
    const negative = addNode("CLIPTextEncode", [x + 340, y + 220], { text: "blurry, low quality" });
    const encode = addNode("SDEditEncode", [x + 340, y + 440]);
    const noise = addNode("SDEditAddNoise", [x + 700, y + 440]);
    const denoise = addNode("SDEditSampler", [x + 1020, y]);
    const decode = addNode("SDEditDecode", [x + 1360, y]);
    const save = addNode("SaveImage", [x + 1600, y], { filename_prefix: "sdedit/img2img" });
    link(ckpt, "CLIP", positive, "clip");
    link(ckpt, "CLIP", negative, "clip");
    link(image, "IMAGE", encode, "image");
    link(ckpt, "VAE", encode, "vae");
    link(ckpt, "MODEL", noise, "model");
    link(encode, "LATENT", noise, "latent");
    link(ckpt, "MODEL", denoise, "model");
    link(positive, "CONDITIONING", denoise, "positive");
    link(negative, "CONDITIONING", denoise, "negative");
    link(noise, "LATENT", denoise, "noisy_latent");
    link(denoise, "LATENT", decode, "latent");
    link(ckpt, "VAE", decode, "vae");
    link(decode, "IMAGE", save, "images");
    app.graph.setDirtyCanvas(true, true);
    return [ckpt, image, positive, negative, encode, noise, denoise, decode, save].map((n) => n.id);
}

app.registerExtension({
    name: EXTENSION,
    commands: [{ id: INSERT_COMMAND, label: INSERT_LABEL, icon: "pi pi-images", function: insertImg2ImgGraph }],
    menuCommands: [{ path: ["Extensions", "SDEdit"], commands: [INSERT_COMMAND] }],
    // The canvas' right-click menu, on frontends that offer this hook.
    getCanvasMenuItems: () => [null, { content: INSERT_LABEL, callback: () => insertImg2ImgGraph() }],
    nodeCreated(node) {
        const colours = STEP_COLOURS[typeOf(node)];
        if (colours) Object.assign(node, colours);
        if (DENOISE_TYPES.includes(typeOf(node))) addStepLine(node);
        if (typeOf(node) === "SDEditEncode") addStepLine(node, cropLine, "What SDEdit 1 · Encode will crop");
    },
    loadedGraphNode(node) {
        // A saved workflow keeps the node's old size: make room for the line.
        if (!DENOISE_TYPES.includes(typeOf(node)) && typeOf(node) !== "SDEditEncode") return;
        growToFit(node);
    },
    setup() {
        // Widget callbacks and link events differ between frontend versions; a light poll that only
        // asks the server when (strength, steps, mode) changed follows all of them the same way.
        setInterval(refreshAll, 250);
    },
});
