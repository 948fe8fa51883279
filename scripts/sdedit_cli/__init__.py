"""What the commands of scripts/ share: the workflow template and its per-picture prompt (template), and for the
batch command its output folder (output_folder) and its Ray pipeline (pipeline)."""
