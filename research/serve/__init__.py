"""Using a finished workdir: generate.py samples text from a language-model run."""
