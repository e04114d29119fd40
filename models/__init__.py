"""Models trained by this project and shipped with it (weights + JSON model cards).

Each `NAME.safetensors` beside a `NAME.json` card is served as NAME. How each was
made (command, data recipe, accuracy) is in its card and in README.md.
"""
