"""The example workflows' assets, drawn with Pillow, deterministically (tools/make_example_assets.py runs them).

common   paths, the checkpoint, the prompts and sampler settings, colours, fonts and drawing helpers
basic    the sample picture, its thumbnail, the strength-sweep workflows and thumbnail
editing  the stroke painting and its mask, the strokes and repeats workflows and thumbnails
video    the input video (written with PyAV) and the video example's workflows and thumbnail
"""
